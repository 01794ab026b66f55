"""Box utilities: thresholding, NMS-max, NMS-avg (DDFD), clipping.

All boxes are ``[N, 4]`` float tensors ``[x1, y1, x2, y2]`` in image pixels with continuous edges
(``[0, 0, W, H]`` is the whole image). NMS-max is torchvision's; this module adds what it lacks.
"""

from __future__ import annotations

import torch
from torchvision.ops import batched_nms, box_iou, clip_boxes_to_image

__all__ = ["nms_max", "nms_avg", "clip_boxes", "refine_boxes", "box_iou"]


def nms_max(boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Per-label greedy NMS keeping the best-scoring box of each overlap group.

    Args:
        boxes: ``[N, 4]`` xyxy.
        scores: ``[N]``.
        labels: ``[N]`` int64; boxes of different labels never suppress each other.
        iou_threshold: a box is discarded if its IoU with a kept, better box is > this.

    Returns:
        ``[M]`` int64 indices of kept boxes, by decreasing score.
    """
    return batched_nms(boxes.float(), scores.float(), labels, iou_threshold)


def nms_avg(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    labels: torch.Tensor,
    iou_threshold: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """DDFD's NMS-avg: cluster by overlap, average each cluster's boxes, keep its best score.

    Greedy, per label: the best remaining box seeds a cluster made of itself and every remaining box of the
    same label whose IoU with the seed is > ``iou_threshold``; the cluster is replaced by the mean of its
    boxes with the seed's score, and removed. Repeats until no box is left.

    Args:
        boxes: ``[N, 4]`` xyxy.
        scores: ``[N]``.
        labels: ``[N]`` int64.
        iou_threshold: overlap that joins a box to a seed's cluster.

    Returns:
        ``(boxes [M, 4], scores [M], labels [M], sizes [M])``: averaged boxes, best scores, labels and
        cluster sizes (number of boxes merged), by decreasing score.
    """
    n = boxes.shape[0]
    if n == 0:
        empty = torch.zeros(0, dtype=torch.int64)
        return boxes.new_zeros((0, 4)), scores.new_zeros((0,)), labels.new_zeros((0,)), empty
    order = torch.argsort(scores, descending=True, stable=True)
    b, s, lab = boxes[order].double(), scores[order], labels[order]
    alive = torch.ones(n, dtype=torch.bool)
    out_boxes, out_scores, out_labels, out_sizes = [], [], [], []
    seed = 0
    # One iteration per cluster (not per window), each O(N): memory stays O(N) for any number of boxes.
    while seed < n:
        iou = box_iou(b[seed : seed + 1], b)[0]
        cluster = alive & (lab == lab[seed]) & (iou > iou_threshold)
        cluster[seed] = True
        out_boxes.append(b[cluster].mean(dim=0))
        out_scores.append(s[seed])
        out_labels.append(lab[seed])
        out_sizes.append(int(cluster.sum()))
        alive &= ~cluster
        remaining = torch.nonzero(alive[seed:])
        seed = seed + int(remaining[0]) if remaining.numel() else n
    return (
        torch.stack(out_boxes).to(boxes.dtype),
        torch.stack(out_scores),
        torch.stack(out_labels),
        torch.tensor(out_sizes, dtype=torch.int64),
    )


def clip_boxes(boxes: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """Clip ``[N, 4]`` xyxy boxes to ``[0, 0, width, height]``."""
    return clip_boxes_to_image(boxes, (height, width))


def refine_boxes(boxes: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """Apply box-regression offsets (MTCNN convention).

    Args:
        boxes: ``[N, 4]`` xyxy windows.
        offsets: ``[N, 4]`` ``[dx1, dy1, dx2, dy2]`` in units of the box's width (x) and height (y).

    Returns:
        ``[N, 4]`` xyxy: ``x1 + dx1 * w, y1 + dy1 * h, x2 + dx2 * w, y2 + dy2 * h``.
    """
    wh = (boxes[:, 2:] - boxes[:, :2]).repeat(1, 2)
    return boxes + offsets.to(boxes.dtype) * wh
