"""Plain-Python references (no torch) that the vectorised code is tested against.

Boxes are ``[x1, y1, x2, y2]`` lists of floats, continuous edges. Overlap follows fcndetect's convention:
sides are widened to at least ``MIN_SIDE`` for the overlap test, so zero-area duplicates have IoU 1.
"""

from __future__ import annotations

import math
from typing import Any

MIN_SIDE = 1e-3


def iou(a: list[float], b: list[float]) -> float:
    a = [a[0], a[1], max(a[2], a[0] + MIN_SIDE), max(a[3], a[1] + MIN_SIDE)]
    b = [b[0], b[1], max(b[2], b[0] + MIN_SIDE), max(b[3], b[1] + MIN_SIDE)]
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union


def rank_order(scores: list[float]) -> list[int]:
    """Indices by decreasing score; ties keep input order."""
    return sorted(range(len(scores)), key=lambda i: -scores[i])


def nms_avg(boxes, scores, labels, thr):
    """DDFD's NMS-avg, literally: ``[(mean box, seed score, label, cluster size, seed index)]``."""
    alive = rank_order(scores)
    out = []
    while alive:
        seed = alive[0]
        cluster = [i for i in alive if i == seed or (labels[i] == labels[seed] and iou(boxes[seed], boxes[i]) > thr)]
        mean = [sum(boxes[i][k] for i in cluster) / len(cluster) for k in range(4)]
        out.append((mean, scores[seed], labels[seed], len(cluster), seed))
        alive = [i for i in alive if i not in cluster]
    return out


def nms_max(boxes, scores, labels, thr):
    """Greedy NMS-max: kept indices by decreasing score."""
    keep: list[int] = []
    for i in rank_order(scores):
        if all(labels[k] != labels[i] or iou(boxes[k], boxes[i]) <= thr for k in keep):
            keep.append(i)
    return keep


def log_odds(logits: list[float], group: list[int]) -> float:
    """``log(p / (1 - p))`` of a class group under the softmax of ``logits``, in exact float arithmetic."""
    m = max(logits)
    inside = sum(math.exp(logits[k] - m) for k in group)
    outside = sum(math.exp(logits[k] - m) for k in range(len(logits)) if k not in group)
    return math.log(inside) - math.log(outside)


def mtcnn_logits(net: Any, x: Any) -> Any:
    """``[B, 2]`` face/non-face logits of an original MTCNN net (the input of its final softmax), for
    ``[B, 3, h, w]`` input: what the converted network must reproduce."""
    layer = net.dense6_1 if hasattr(net, "dense6_1") else net.dense5_1
    out: list[Any] = []
    handle = layer.register_forward_hook(lambda m, a, o: out.append(o))
    try:
        net(x)
    finally:
        handle.remove()
    return out[0]


def suppress_contained(boxes, scores, labels, thr):
    """Greedy containment rule: kept indices by decreasing score; a box goes when more than ``thr`` of its
    (widened) area lies inside a kept better box of its label."""
    keep: list[int] = []
    for i in rank_order(scores):
        a = [boxes[i][0], boxes[i][1], max(boxes[i][2], boxes[i][0] + MIN_SIDE), max(boxes[i][3], boxes[i][1] + MIN_SIDE)]
        own = (a[2] - a[0]) * (a[3] - a[1])
        inside = False
        for k in keep:
            if labels[k] != labels[i]:
                continue
            c = [boxes[k][0], boxes[k][1], max(boxes[k][2], boxes[k][0] + MIN_SIDE), max(boxes[k][3], boxes[k][1] + MIN_SIDE)]
            ix = max(0.0, min(a[2], c[2]) - max(a[0], c[0]))
            iy = max(0.0, min(a[3], c[3]) - max(a[1], c[1]))
            inside = inside or ix * iy / own > thr
        if not inside:
            keep.append(i)
    return keep
