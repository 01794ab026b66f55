"""Matching: detection images to ground-truth keys by path, and one image's detections to its ground-truth
boxes by IoU.

Boxes are ``float64`` arrays ``[N, 4]`` ``[x1, y1, x2, y2]`` in image pixels with continuous edges
(``[0, 0, W, H]`` is the whole image), with ``x2 >= x1`` and ``y2 >= y1``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence

import numpy as np
from numpy.typing import ArrayLike

from .errors import AmbiguousMatchError


def normalize_key(key: str) -> str:
    """Normalise an image path for matching: ``\\`` -> ``/``, repeated ``/`` collapsed, leading ``./`` removed."""
    key = re.sub(r"/{2,}", "/", key.strip().replace("\\", "/"))
    while key.startswith("./"):
        key = key[2:]
    return key


# ----------------------------------------------------------------------------------------------------------
# Image matching


def _suffix_len(a: Sequence[str], b: Sequence[str]) -> int:
    """How many trailing elements ``a`` and ``b`` share."""
    n = 0
    while n < len(a) and n < len(b) and a[-1 - n] == b[-1 - n]:
        n += 1
    return n


def match_images(
    det_keys: Iterable[str],
    gt_keys: Iterable[str],
    *,
    ambiguous: str = "error",
) -> dict[str, str | None]:
    """Map each detection image path to its ground-truth key.

    Rules, after :func:`normalize_key` on both sides, first that applies:

    1. exact relative-path match;
    2. same file name: the ground-truth key sharing the longest common path suffix (most trailing folders);
    3. same file-name stem (name without extension, e.g. FDDB keys ``2002/08/11/big/img_591``), again by the
       longest common path suffix;
    4. None: the image has no annotated faces, so all its detections are false positives.

    A tie at the longest suffix is ambiguous. So is a ground-truth key reached by several detection images:
    the strictly best one (exact > name > stem, then longer suffix) keeps it, the others map to None; equally
    good ones are ambiguous. Matching is case-sensitive.

    Args:
        det_keys: detection image paths (absolute or relative).
        gt_keys: ground-truth keys (as returned by :func:`load_annotations`).
        ambiguous: ``"error"`` raises :class:`AmbiguousMatchError`; ``"none"`` maps ambiguous images to None.

    Returns:
        detection image path (as given) -> ground-truth key (as given) or None.
    """
    if ambiguous not in ("error", "none"):
        raise ValueError(f"ambiguous must be 'error' or 'none', got {ambiguous!r}")
    gt_by_norm: dict[str, str] = {}
    for key in gt_keys:
        gt_by_norm.setdefault(normalize_key(key), key)
    by_name: dict[str, list[tuple[str, list[str]]]] = {}
    by_stem: dict[str, list[tuple[str, list[str]]]] = {}
    for norm in gt_by_norm:
        parts = norm.split("/")
        by_name.setdefault(parts[-1], []).append((norm, parts[:-1]))
        by_stem.setdefault(os.path.splitext(parts[-1])[0], []).append((norm, parts[:-1]))

    result: dict[str, str | None] = {}
    quality: dict[str, tuple[int, int]] = {}
    unsure: dict[str, list[str]] = {}
    for det in det_keys:
        norm = normalize_key(det)
        if norm in gt_by_norm:
            result[det], quality[det] = gt_by_norm[norm], (3, 0)
            continue
        parts = norm.split("/")
        rank, candidates = 2, by_name.get(parts[-1])
        if not candidates:
            rank, candidates = 1, by_stem.get(os.path.splitext(parts[-1])[0])
        if not candidates:
            result[det] = None
            continue
        lengths = [_suffix_len(parts[:-1], folders) for _, folders in candidates]
        best = max(lengths)
        winners = [gt_by_norm[c] for (c, _), n in zip(candidates, lengths) if n == best]
        if len(winners) > 1:
            result[det], unsure[det] = None, winners
        else:
            result[det], quality[det] = winners[0], (rank, best)

    claimants: dict[str, list[str]] = {}
    for det, gt in result.items():
        if gt is not None:
            claimants.setdefault(gt, []).append(det)
    for gt, dets in claimants.items():
        if len(dets) < 2:
            continue
        top = max(quality[d] for d in dets)
        best_dets = [d for d in dets if quality[d] == top]
        for d in dets:
            if d not in best_dets or len(best_dets) > 1:
                result[d] = None
            if len(best_dets) > 1 and d in best_dets:
                unsure[d] = [gt]
    if unsure and ambiguous == "error":
        raise AmbiguousMatchError(unsure)
    return result


# ----------------------------------------------------------------------------------------------------------
# Boxes


def as_boxes(boxes: object, name: str) -> np.ndarray:
    """``boxes`` as a ``[N, 4]`` float64 ``[x1, y1, x2, y2]`` array; ValueError (naming ``name``) unless
    finite with ``x2 >= x1`` and ``y2 >= y1``."""
    arr = np.asarray(boxes, dtype=np.float64)
    if arr.size == 0:
        return arr.reshape(0, 4)
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ValueError(f"{name}: expected boxes of shape [N, 4], got {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name}: boxes must be finite")
    if (arr[:, 2] < arr[:, 0]).any() or (arr[:, 3] < arr[:, 1]).any():
        raise ValueError(f"{name}: boxes must have x2 >= x1 and y2 >= y1")
    return arr


def as_scores(scores: ArrayLike, n: int, name: str) -> np.ndarray:
    """``scores`` as a ``[n]`` float64 array of finite values of any range; ValueError (naming ``name``)
    otherwise."""
    arr = np.asarray(scores, dtype=np.float64).reshape(-1) if np.size(scores) else np.zeros(0)
    if arr.shape != (n,):
        raise ValueError(f"{name}: expected {n} scores (one per box), got shape {np.shape(scores)}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name}: scores must be finite")
    return arr


def box_iou(boxes1: np.ndarray, boxes2: np.ndarray) -> np.ndarray:
    """Intersection over union of every pair of boxes.

    Args:
        boxes1: ``[N, 4]`` xyxy.
        boxes2: ``[M, 4]`` xyxy.

    Returns:
        ``[N, M]`` float64 IoU in [0, 1]; 0 where the union is empty (two zero-area boxes).
    """
    a = as_boxes(boxes1, "boxes1")
    b = as_boxes(boxes2, "boxes2")
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = np.clip(rb - lt, 0, None)
    inter = wh[..., 0] * wh[..., 1]
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def match_image(
    det_boxes: np.ndarray,
    det_scores: np.ndarray,
    gt_boxes: np.ndarray,
    iou_threshold: float,
) -> np.ndarray:
    """Greedy matching of one image's detections to its ground truth.

    Detections are taken by descending ranking key (ties keep input order); each is matched to the *still
    unmatched* ground-truth box of highest IoU, if that IoU is ``>= iou_threshold`` (ties: lowest index).
    Unlike the original PASCAL devkit, a detection whose best box is already taken can still match its next
    best box.

    Args:
        det_boxes: ``[D, 4]`` xyxy.
        det_scores: ``[D]`` ranking keys of any range (logits or probabilities).
        gt_boxes: ``[G, 4]`` xyxy.
        iou_threshold: minimum IoU of a true positive.

    Returns:
        ``[D]`` bool true-positive flags, in the input detection order.
    """
    det_boxes = as_boxes(det_boxes, "det_boxes")
    det_scores = as_scores(det_scores, len(det_boxes), "det_scores")
    gt_boxes = as_boxes(gt_boxes, "gt_boxes")
    tp = np.zeros(len(det_boxes), dtype=bool)
    if len(det_boxes) == 0 or len(gt_boxes) == 0:
        return tp
    iou = box_iou(det_boxes, gt_boxes)
    taken = np.zeros(len(gt_boxes), dtype=bool)
    for i in np.argsort(-det_scores, kind="stable"):
        row = np.where(taken, -1.0, iou[i])
        j = int(np.argmax(row))
        if row[j] >= iou_threshold:
            taken[j] = True
            tp[i] = True
    return tp

