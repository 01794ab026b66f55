"""Detection AP on held-out annotated photos with WIDER's ignore rule: a detection that matches an ignored
face (invalid, or smaller than the evaluation's smallest face) counts neither as a hit nor as a false positive,
and the ignored face is not a miss."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from .data import box_iou
from .faces import FacePhoto, ignore_mask

__all__ = ["EVAL_IOU", "EVAL_MIN_FACE", "ap_of", "drop_ignored", "fold_ap", "fold_ground_truth"]

#: faces smaller than this (either side) are ignored when measuring, as on WIDER FACE's hard-set practice
EVAL_MIN_FACE = 20.0
#: the IoU at which a detection hits a face
EVAL_IOU = 0.3


def drop_ignored(boxes: np.ndarray, scores: np.ndarray, valid: np.ndarray, ignored: np.ndarray,
                 iou: float = EVAL_IOU) -> tuple[np.ndarray, np.ndarray]:
    """Detections ``boxes [D, 4]`` xyxy with ``scores [D]`` minus those that overlap an ``ignored [I, 4]`` face
    at IoU >= ``iou`` more than any ``valid [V, 4]`` face: ``(boxes [D', 4], scores [D'])``."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    scores = np.asarray(scores, np.float64).reshape(-1)
    if not len(boxes) or not len(ignored):
        return boxes, scores
    best_i = box_iou(boxes, ignored).max(1)
    best_v = box_iou(boxes, valid).max(1) if len(valid) else np.zeros(len(boxes))
    keep = ~((best_i >= iou) & (best_i > best_v))
    return boxes[keep], scores[keep]


def fold_ground_truth(photos: Sequence[FacePhoto], min_face: float = EVAL_MIN_FACE,
                      ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``path -> (valid [V, 4], ignored [I, 4])`` with the evaluation's ignore rule (the photo's own ignored
    boxes plus faces smaller than ``min_face``)."""
    out = {}
    for ph in photos:
        ign = ph.ignore | ignore_mask(ph.boxes, np.zeros(len(ph.boxes), bool), min_face)
        out[ph.path] = (ph.boxes[~ign], ph.boxes[ign])
    return out


def fold_ap(detect: Callable[[str], tuple[np.ndarray, np.ndarray]], photos: Sequence[FacePhoto],
            min_face: float = EVAL_MIN_FACE, iou: float = EVAL_IOU) -> dict[str, float]:
    """AP, max recall and detection count of ``detect`` (a photo path -> ``(boxes [D, 4], ranking keys [D])``)
    on ``photos`` at IoU ``iou``, with :func:`drop_ignored`."""
    gt = fold_ground_truth(photos, min_face)
    dets: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for path, (valid, ignored) in gt.items():
        boxes, scores = detect(path)
        dets[path] = drop_ignored(boxes, scores, valid, ignored, iou)
    return ap_of(dets, {k: v[0] for k, v in gt.items()}, iou)


def ap_of(dets: Mapping[str, tuple[np.ndarray, np.ndarray]], gt: Mapping[str, np.ndarray],
          iou: float = EVAL_IOU) -> dict[str, float]:
    """``{"ap", "max_recall", "detections", "faces"}`` of detections against ground truth at IoU ``iou``."""
    from ..evaluate import evaluate

    results: list[dict[str, Any]] = evaluate(dets, gt, iou_thresholds=(iou,)).to_json()["results"]  # type: ignore[assignment]
    r = results[0]

    def num(v: Any) -> float:  # JSON writes NaN as null
        return float("nan") if v is None else float(v)

    return {"ap": num(r["ap"]), "max_recall": num(r["max_recall"]), "detections": int(r["n_det"]),
            "faces": int(sum(len(v) for v in gt.values()))}
