"""From dense network outputs to :class:`~fcndetect.detections.Detections`: pure functions, no weights.

The steps, per image: class-group log-odds from the network's logits (:func:`group_logits`), then for every
pyramid level the cells whose probability ``sigmoid(logit)`` exceeds the threshold become boxes
(:func:`fcndetect.geometry.cells_to_boxes`), refined by the box-regression head where there is one; then
NMS-max or NMS-avg ranked by logit, clipping, sorting by logit and the ``max_det`` cap (:func:`postprocess`).

Boxes are ``[x1, y1, x2, y2]`` floats in the original image's pixels, with continuous edges.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .config import DetectorConfig
from .boxes import clip_boxes, cluster_mean, nms_avg_indexed, nms_max, refine_boxes, suppress_contained
from .detections import Detections, ScoreMap
from .geometry import Geometry, cells_to_boxes
from .pyramid import Level
from .rotation import quad_boxes

__all__ = ["LevelOutput", "group_logits", "window_landmarks", "apply_regression", "level_windows", "finalize", "score_maps", "postprocess", "LOGIT_LIMIT"]

#: Log-odds are clipped to ``[-LOGIT_LIMIT, LOGIT_LIMIT]`` (a group holding every class has odds of infinity).
LOGIT_LIMIT = 1e4


@dataclass(frozen=True)
class LevelOutput:
    """The dense network's output on one pyramid level of one image.

    Attributes:
        level: the pyramid level (scale and exact per-axis factors).
        logits: ``[G, H', W']`` float class-group log-odds (see :func:`group_logits`).
        regression: ``[4, H', W']`` MTCNN box-regression offsets ``[dx1, dy1, dx2, dy2]`` in window sides, or
            ``[14, H', W']`` with the five landmarks after them (O-Net: ``x1..x5, y1..y5`` in window sides
            from the window's top-left corner), or ``None`` (no regression head, or regression off).
    """

    level: Level
    logits: torch.Tensor
    regression: torch.Tensor | None = None


def group_logits(logits: torch.Tensor, groups: Sequence[Sequence[int]]) -> torch.Tensor:
    """Log-odds of each class group under the softmax over ``K`` classes.

    For a group ``S``: ``log(p_S / (1 - p_S))`` with ``p_S = sum_{k in S} softmax(logits)_k``, computed as
    ``logsumexp(logits[S]) - logsumexp(logits[not S])`` so that it never saturates (for two classes it is
    exactly ``logits[1] - logits[0]``). Clipped to ``[-LOGIT_LIMIT, LOGIT_LIMIT]``.

    Args:
        logits: ``[B, K, H, W]`` class logits.
        groups: ``G`` lists of class indices.

    Returns:
        ``[B, G, H, W]`` log-odds, in the dtype of ``logits``.
    """
    k = logits.shape[1]
    if k == 2 and all(len(g) == 1 for g in groups):  # the common two-class case, exact and cheap
        return torch.stack([logits[:, g[0]] - logits[:, 1 - g[0]] for g in groups], dim=1)
    lse_all = torch.logsumexp(logits, dim=1)  # [B, H, W]
    out = []
    for g in groups:
        idx = list(g)
        lse_in = torch.logsumexp(logits[:, idx], dim=1)
        log_p = (lse_in - lse_all).clamp_max(0.0)
        # log(p / (1 - p)) = log p - log1p(-p): accurate while p <= 1/2; above, sum the complement exactly.
        lo = log_p - torch.log1p(-torch.exp(log_p).clamp_max(1.0 - 1e-7))
        high = log_p > -math.log(2.0)
        if bool(high.any()):
            rest = [c for c in range(k) if c not in set(idx)]
            if rest:
                lse_out = torch.logsumexp(logits[:, rest], dim=1)
                lo = torch.where(high, lse_in - lse_out, lo)
            else:
                lo = torch.full_like(lo, LOGIT_LIMIT)
        out.append(lo)
    return torch.stack(out, dim=1).clamp(-LOGIT_LIMIT, LOGIT_LIMIT)


def window_landmarks(windows: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """Landmarks in image pixels from a landmark head's output (MTCNN's convention).

    Args:
        windows: ``[N, 4]`` xyxy windows the network saw (before box regression).
        offsets: ``[N, 10]``: ``x1..x5`` then ``y1..y5`` in window sides from the window's top-left corner.

    Returns:
        ``[N, 5, 2]`` points ``(x, y)``: left eye, right eye, nose, left and right mouth corner.
    """
    wh = windows[:, 2:] - windows[:, :2]
    xs = windows[:, :1] + offsets[:, :5].to(windows.dtype) * wh[:, :1]
    ys = windows[:, 1:2] + offsets[:, 5:10].to(windows.dtype) * wh[:, 1:]
    return torch.stack([xs, ys], dim=2)


def apply_regression(windows: torch.Tensor, offsets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A regression head's output applied to the windows the network saw.

    Args:
        windows: ``[N, 4]`` xyxy windows.
        offsets: ``[N, 4]`` MTCNN box offsets, or ``[N, 14]`` with O-Net's ten landmark values after them.

    Returns:
        ``(boxes [N, 4], landmarks [N, 5, 2] or None)``: refined boxes (:func:`fcndetect.boxes.refine_boxes`)
        and, for a 14-value head, the landmarks (:func:`window_landmarks`, relative to the unrefined window).
    """
    points = window_landmarks(windows, offsets[:, 4:14]) if offsets.shape[1] >= 14 else None
    return refine_boxes(windows, offsets[:, :4]), points


def level_windows(
    outputs: Sequence[LevelOutput], geometry: Geometry, threshold: float, level_nms_iou: float | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Every cell whose probability ``sigmoid(logit)`` exceeds ``threshold``, as a box in image pixels
    (refined by the level's regression where there is one).

    Args:
        outputs: one :class:`LevelOutput` per pyramid level.
        geometry: where each cell looks.
        threshold: probability a cell must exceed.
        level_nms_iou: if given, NMS-max within each level at this IoU (a cascade's first stage).

    Returns:
        ``(boxes [N, 4] float32, logits [N] float32, labels [N] int64, landmarks [N, 5, 2] or None)`` on the
        CPU, levels in order, cells in row-major order within a level; landmarks where the regression carries
        them.
    """
    all_boxes, all_logits, all_labels, all_points = [], [], [], []
    for out in outputs:
        level, logits, reg = out.level, out.logits, out.regression
        # compare probabilities in float32, exactly as documented (score > threshold), not a rounded logit
        g, i, j = torch.nonzero(torch.sigmoid(logits.float()) > threshold, as_tuple=True)
        if g.numel() == 0:
            continue
        boxes = cells_to_boxes(i.cpu(), j.cpu(), geometry, (level.sx, level.sy))
        points = None
        if reg is not None:
            boxes, points = apply_regression(boxes, reg[:, i, j].T.float().cpu())
        keys, labels = logits[g, i, j].float().cpu(), g.cpu()
        if level_nms_iou is not None:
            keep = nms_max(boxes, keys, labels, level_nms_iou)
            boxes, keys, labels = boxes[keep], keys[keep], labels[keep]
            points = points[keep] if points is not None else None
        all_boxes.append(boxes)
        all_logits.append(keys)
        all_labels.append(labels)
        all_points.append(points)
    if not all_boxes:
        return torch.zeros((0, 4)), torch.zeros(0), torch.zeros(0, dtype=torch.int64), None
    points_kept = [p for p in all_points if p is not None]
    landmarks = torch.cat(points_kept) if len(points_kept) == len(all_points) else None
    return torch.cat(all_boxes), torch.cat(all_logits), torch.cat(all_labels), landmarks


def finalize(
    boxes: torch.Tensor,
    logits: torch.Tensor,
    labels: torch.Tensor,
    config: DetectorConfig,
    class_names: tuple[str, ...],
    image_size: tuple[int, int],
    maps: list[ScoreMap] | None = None,
    landmarks: torch.Tensor | None = None,
    angles: torch.Tensor | None = None,
    quads: torch.Tensor | None = None,
) -> Detections:
    """NMS-max or NMS-avg ranked by logit, the containment rule, clipping, sorting by logit, ``max_det``.

    Args:
        boxes: ``[N, 4]`` windows in image pixels; logits: ``[N]`` ranking keys; labels: ``[N]`` int64.
        config: reads ``nms``, ``nms_iou``, ``min_neighbors``, ``containment``, ``clip``, ``max_det``.
        class_names: ``G`` names; image_size: ``(width, height)``; maps: attached as ``score_maps``.
        landmarks: ``[N, 5, 2]`` points of each window, or ``None``; NMS-avg averages them within a cluster
            like the boxes, NMS-max keeps the seed's. Landmarks are not clipped.
        angles, quads: ``[N]`` rotation (degrees) and ``[N, 4, 2]`` rotated-window corners of each window
            (:mod:`fcndetect.rotation`), or ``None``; a detection keeps its seed's.
    """
    width, height = image_size
    if boxes.shape[0] == 0:
        dets = Detections.empty(class_names, (width, height))
        dets.score_maps = maps
        return dets
    if config.nms == "avg":
        all_angles, all_quads = angles, quads
        boxes, logits, labels, sizes, seeds, cluster = nms_avg_indexed(boxes, logits, labels, config.nms_iou)
        # with rotations, a cluster's shape (rotated window, box, landmarks) is the mean over its windows found
        # at the seed's angle: windows of other angles vote for the cluster, not for its shape
        k, weight = seeds.shape[0], None
        if all_angles is not None and all_quads is not None:
            angles = all_angles[seeds]
            weight = all_angles == angles[cluster]
            quads = cluster_mean(all_quads.reshape(-1, 8), cluster, k, weight).reshape(-1, 4, 2).float()
            boxes = quad_boxes(quads)
        if landmarks is not None:
            landmarks = cluster_mean(landmarks.reshape(-1, 10), cluster, k, weight).reshape(-1, 5, 2)
        keep = sizes >= config.min_neighbors
    else:
        keep = nms_max(boxes, logits, labels, config.nms_iou)
    boxes, logits, labels = boxes[keep], logits[keep], labels[keep]
    landmarks, angles, quads = _take(keep, landmarks, angles, quads)
    if config.containment is not None:
        keep = suppress_contained(boxes, logits, labels, config.containment)
        boxes, logits, labels = boxes[keep], logits[keep], labels[keep]
        landmarks, angles, quads = _take(keep, landmarks, angles, quads)
    if config.clip:
        boxes = clip_boxes(boxes, width, height)
    order = torch.argsort(logits, descending=True, stable=True)[: config.max_det]
    return Detections(
        boxes=boxes[order].float().numpy(),
        scores=torch.sigmoid(logits[order].float()).numpy(),
        labels=labels[order].numpy().astype(np.int64),
        class_names=class_names,
        image_size=(width, height),
        logits=logits[order].float().numpy(),
        score_maps=maps,
        landmarks=landmarks[order].float().numpy() if landmarks is not None else None,
        angles=angles[order].float().numpy() if angles is not None else None,
        quads=quads[order].float().numpy() if quads is not None else None,
    )


def _take(index: torch.Tensor, *tensors: torch.Tensor | None) -> tuple[torch.Tensor | None, ...]:
    """Each tensor indexed by ``index`` (``None`` stays ``None``)."""
    return tuple(t[index] if t is not None else None for t in tensors)


def score_maps(outputs: Sequence[LevelOutput], geometry: Geometry) -> list[ScoreMap]:
    """Each level's logits as a :class:`~fcndetect.detections.ScoreMap` (numpy, with the geometry)."""
    return [ScoreMap(o.level.scale, o.level.sx, o.level.sy, o.logits.float().cpu().numpy(), geometry) for o in outputs]


def postprocess(
    outputs: Sequence[LevelOutput],
    geometry: Geometry,
    config: DetectorConfig,
    class_names: tuple[str, ...],
    image_size: tuple[int, int],
    return_maps: bool = False,
) -> Detections:
    """Threshold the levels' maps, map cells to boxes, regress, NMS, clip, sort by logit, cap.

    Args:
        outputs: one :class:`LevelOutput` per pyramid level of the image.
        geometry: the dense network's geometry (where each cell looks).
        config: reads ``threshold`` (on ``sigmoid(logit)``), ``nms``, ``nms_iou``, ``min_neighbors``, ``clip``,
            ``max_det``; nothing else.
        class_names: ``G`` names, one per class group.
        image_size: ``(width, height)`` of the original image.
        return_maps: attach each level's :class:`~fcndetect.detections.ScoreMap`.

    Returns:
        the image's detections, by decreasing logit (ties: level order, then row-major cell order).
    """
    boxes, logits, labels, landmarks = level_windows(outputs, geometry, config.threshold)
    maps = score_maps(outputs, geometry) if return_maps else None
    return finalize(boxes, logits, labels, config, class_names, image_size, maps, landmarks)
