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
from .boxes import clip_boxes, nms_avg, nms_max, refine_boxes
from .detections import Detections, ScoreMap
from .geometry import Geometry, cells_to_boxes
from .pyramid import Level

__all__ = ["LevelOutput", "group_logits", "postprocess", "LOGIT_LIMIT"]

#: Log-odds are clipped to ``[-LOGIT_LIMIT, LOGIT_LIMIT]`` (a group holding every class has odds of infinity).
LOGIT_LIMIT = 1e4


@dataclass(frozen=True)
class LevelOutput:
    """The dense network's output on one pyramid level of one image.

    Attributes:
        level: the pyramid level (scale and exact per-axis factors).
        logits: ``[G, H', W']`` float class-group log-odds (see :func:`group_logits`).
        regression: ``[4, H', W']`` MTCNN box-regression offsets ``[dx1, dy1, dx2, dy2]`` in window sides, or
            ``None`` (no regression head, or regression off).
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
    width, height = image_size
    all_boxes, all_logits, all_labels = [], [], []
    maps: list[ScoreMap] = []
    for out in outputs:
        level, logits, reg = out.level, out.logits, out.regression
        if return_maps:
            maps.append(ScoreMap(level.scale, level.sx, level.sy, logits.float().cpu().numpy(), geometry))
        # compare probabilities in float32, exactly as documented (score > threshold), not a rounded logit
        g, i, j = torch.nonzero(torch.sigmoid(logits.float()) > config.threshold, as_tuple=True)
        if g.numel() == 0:
            continue
        cell_boxes = cells_to_boxes(i.cpu(), j.cpu(), geometry, (level.sx, level.sy))
        if reg is not None:
            cell_boxes = refine_boxes(cell_boxes, reg[:, i, j].T.float().cpu())
        all_boxes.append(cell_boxes)
        all_logits.append(logits[g, i, j].float().cpu())
        all_labels.append(g.cpu())
    if not all_boxes:
        dets = Detections.empty(class_names, (width, height))
        dets.score_maps = maps if return_maps else None
        return dets
    boxes = torch.cat(all_boxes)
    logit_t = torch.cat(all_logits)
    labels = torch.cat(all_labels)
    if config.nms == "avg":
        boxes, logit_t, labels, sizes = nms_avg(boxes, logit_t, labels, config.nms_iou)
        keep = sizes >= config.min_neighbors
        boxes, logit_t, labels = boxes[keep], logit_t[keep], labels[keep]
    else:
        keep = nms_max(boxes, logit_t, labels, config.nms_iou)
        boxes, logit_t, labels = boxes[keep], logit_t[keep], labels[keep]
    if config.clip:
        boxes = clip_boxes(boxes, width, height)
    order = torch.argsort(logit_t, descending=True, stable=True)[: config.max_det]
    logits_np = logit_t[order].numpy().astype(np.float32)
    return Detections(
        boxes=boxes[order].numpy().astype(np.float32),
        scores=torch.sigmoid(logit_t[order]).numpy().astype(np.float32),
        labels=labels[order].numpy().astype(np.int64),
        class_names=class_names,
        image_size=(width, height),
        logits=logits_np,
        score_maps=maps if return_maps else None,
    )
