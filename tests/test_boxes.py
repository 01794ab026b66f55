"""NMS-max / NMS-avg against plain-Python references."""

from __future__ import annotations

import random

import pytest
import torch

from fcndetect.boxes import clip_boxes, nms_avg, nms_max, refine_boxes


def _iou(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _ref_nms_avg(boxes, scores, labels, thr):
    order = sorted(range(len(boxes)), key=lambda i: -scores[i])  # stable: ties keep input order
    alive = list(order)
    out = []
    while alive:
        seed = alive[0]
        cluster = [i for i in alive if i == seed or (labels[i] == labels[seed] and _iou(boxes[seed], boxes[i]) > thr)]
        mean = [sum(boxes[i][k] for i in cluster) / len(cluster) for k in range(4)]
        out.append((mean, scores[seed], labels[seed], len(cluster)))
        alive = [i for i in alive if i not in cluster]
    return out


def _ref_nms_max(boxes, scores, labels, thr):
    order = sorted(range(len(boxes)), key=lambda i: -scores[i])
    keep = []
    for i in order:
        if all(labels[k] != labels[i] or _iou(boxes[k], boxes[i]) <= thr for k in keep):
            keep.append(i)
    return keep


def _random_boxes(seed, n, n_labels=2):
    rng = random.Random(seed)
    boxes, scores, labels = [], [], []
    for _ in range(n):
        cx, cy, s = rng.uniform(0, 100), rng.uniform(0, 100), rng.uniform(5, 40)
        boxes.append([cx - s / 2, cy - s / 2, cx + s / 2 + rng.uniform(-3, 3), cy + s / 2])
        scores.append(rng.random())
        labels.append(rng.randrange(n_labels))
    return boxes, scores, labels


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("thr", [0.0, 0.3, 0.5, 0.9])
def test_nms_avg_matches_reference(seed, thr):
    boxes, scores, labels = _random_boxes(seed, 60)
    ref = _ref_nms_avg(boxes, scores, labels, thr)
    b, s, lab, sizes = nms_avg(torch.tensor(boxes), torch.tensor(scores), torch.tensor(labels), thr)
    assert len(ref) == b.shape[0]
    for (rb, rs, rl, rn), ob, os_, ol, on in zip(ref, b, s, lab, sizes):
        assert ob.tolist() == pytest.approx(rb, abs=1e-4)
        assert float(os_) == pytest.approx(rs) and int(ol) == rl and int(on) == rn


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("thr", [0.3, 0.5])
def test_nms_max_matches_reference(seed, thr):
    boxes, scores, labels = _random_boxes(seed, 60)
    keep = nms_max(torch.tensor(boxes), torch.tensor(scores), torch.tensor(labels), thr)
    assert keep.tolist() == _ref_nms_max(boxes, scores, labels, thr)


def test_nms_avg_hand_example():
    boxes = torch.tensor([[0.0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60], [0, 0, 10, 10]])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.95])
    labels = torch.tensor([0, 0, 0, 1])
    b, s, lab, n = nms_avg(boxes, scores, labels, 0.3)
    # label 1 box alone (0.95); cluster of the two overlapping label-0 boxes averaged (0.9); far box (0.7)
    assert b.tolist() == [[0, 0, 10, 10], [0.5, 0.5, 10.5, 10.5], [50, 50, 60, 60]]
    assert s.tolist() == pytest.approx([0.95, 0.9, 0.7]) and lab.tolist() == [1, 0, 0] and n.tolist() == [1, 2, 1]


def test_nms_avg_empty():
    b, s, lab, n = nms_avg(torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=torch.int64), 0.3)
    assert b.shape == (0, 4) and s.shape == (0,) and n.shape == (0,)


def test_refine_and_clip():
    boxes = torch.tensor([[10.0, 20, 58, 68]])
    out = refine_boxes(boxes, torch.tensor([[0.1, -0.1, 0.2, 0.0]]))
    assert out.tolist() == [pytest.approx([14.8, 15.2, 67.6, 68.0])]
    assert clip_boxes(torch.tensor([[-5.0, -1, 30, 90]]), 20, 50).tolist() == [[0, 0, 20, 50]]
