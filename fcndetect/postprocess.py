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
from .detections import OPTIONAL_FIELDS, Detections, ScoreMap
from .geometry import Geometry, cells_to_boxes
from .pyramid import Level
from .rotation import quad_boxes
from .windows import Windows

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
) -> Windows:
    """Every cell whose probability ``sigmoid(logit)`` exceeds ``threshold``, as a window in image pixels
    (refined by the level's regression where there is one).

    Args:
        outputs: one :class:`LevelOutput` per pyramid level.
        geometry: where each cell looks.
        threshold: probability a cell must exceed.
        level_nms_iou: if given, NMS-max within each level at this IoU (a cascade's first stage).

    Returns:
        the windows (boxes float32, logits float32, labels int64) on the CPU, levels in order, cells in
        row-major order within a level; landmarks where every level's regression carries them.
    """
    parts = []
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
        found = Windows(boxes, logits[g, i, j].float().cpu(), g.cpu(), landmarks=points)
        if level_nms_iou is not None:
            found = found[nms_max(found.boxes, found.logits, found.labels, level_nms_iou)]
        parts.append(found)
    return Windows.cat(parts)


def finalize(
    windows: Windows,
    config: DetectorConfig,
    class_names: tuple[str, ...],
    image_size: tuple[int, int],
    maps: list[ScoreMap] | None = None,
) -> Detections:
    """NMS-max or NMS-avg ranked by logit, the containment rule, clipping, sorting by logit, ``max_det``.

    Args:
        windows: the image's windows (:class:`~fcndetect.windows.Windows`). NMS-avg averages the landmarks
            within a cluster like the boxes, NMS-max keeps the seed's; landmarks are not clipped. With
            rotations (``angles`` and ``quads``), a detection keeps its seed's angle.
        config: reads ``nms``, ``nms_iou``, ``min_neighbors``, ``containment``, ``clip``, ``max_det``.
        class_names: ``G`` names; image_size: ``(width, height)``; maps: attached as ``score_maps``.
    """
    width, height = image_size
    if len(windows) == 0:
        dets = Detections.empty(class_names, (width, height))
        dets.score_maps = maps
        return dets
    w = windows
    if config.nms == "avg":
        boxes, logits, labels, sizes, seeds, cluster = nms_avg_indexed(w.boxes, w.logits, w.labels, config.nms_iou)
        # with rotations, a cluster's shape (rotated window, box, landmarks) is the mean over its windows found
        # at the seed's angle: windows of other angles vote for the cluster, not for its shape
        k, weight, angles, quads, landmarks = seeds.shape[0], None, None, None, None
        if w.angles is not None and w.quads is not None:
            angles = w.angles[seeds]
            weight = w.angles == angles[cluster]
            quads = cluster_mean(w.quads.reshape(-1, 8), cluster, k, weight).reshape(-1, 4, 2).float()
            boxes = quad_boxes(quads)
        if w.landmarks is not None:
            landmarks = cluster_mean(w.landmarks.reshape(-1, 10), cluster, k, weight).reshape(-1, 5, 2)
        w = Windows(boxes, logits, labels, landmarks, angles, quads)[sizes >= config.min_neighbors]
    else:
        w = w[nms_max(w.boxes, w.logits, w.labels, config.nms_iou)]
    if config.containment is not None:
        w = w[suppress_contained(w.boxes, w.logits, w.labels, config.containment)]
    if config.clip:
        w = w.replace(boxes=clip_boxes(w.boxes, width, height))
    w = w[torch.argsort(w.logits, descending=True, stable=True)[: config.max_det]].float()
    optional = {name: getattr(w, name) for name in OPTIONAL_FIELDS}
    return Detections(
        boxes=w.boxes.numpy(), scores=torch.sigmoid(w.logits).numpy(), labels=w.labels.numpy().astype(np.int64),
        class_names=class_names, image_size=(width, height), logits=w.logits.numpy(), score_maps=maps,
        **{name: t.numpy() if t is not None else None for name, t in optional.items()},
    )


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
    maps = score_maps(outputs, geometry) if return_maps else None
    return finalize(level_windows(outputs, geometry, config.threshold), config, class_names, image_size, maps)
