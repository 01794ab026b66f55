"""Detection metrics: per-image greedy matching, global ranking, AP, recall at N false positives and at a
precision; the :class:`EvalReport` that holds them.

Boxes are ``float64`` arrays ``[N, 4]`` ``[x1, y1, x2, y2]`` in image pixels with continuous edges
(``[0, 0, W, H]`` is the whole image). Detections are ranked by the values given as their scores: a logit
where the detector wrote one (it never saturates), else a score of any range.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from .matching import as_boxes, as_scores, match_image, match_images

JSON_DECIMALS = 6

#: Ranking keys a report can name: a detection's ``logit`` (unbounded log-odds) or its ``score``.
RANKING_KEYS: tuple[str, ...] = ("logit", "score")


@dataclass
class ThresholdResult:
    """Metrics at one IoU threshold, and the curves behind them.

    Attributes:
        iou: IoU threshold.
        ap: all-point interpolated average precision (NaN without ground truth).
        recall_at_fp: number of false positives N -> highest recall with at most N false positives.
        recall_at_precision: precision p -> highest recall at a rank whose precision is >= p (0.0 if none).
        max_recall: recall with all detections.
        n_gt, n_det, n_tp, n_fp: ground-truth boxes, detections, true and false positives.
        scores: ``[n_det]`` detection ranking keys (logits or scores) by rank (descending, stable).
        recall, precision: ``[n_det]`` recall / precision after each rank.
        cum_fp: ``[n_det]`` int64 cumulative false positives after each rank.
    """

    iou: float
    ap: float
    recall_at_fp: dict[int, float]
    recall_at_precision: dict[float, float]
    max_recall: float
    n_gt: int
    n_det: int
    n_tp: int
    n_fp: int
    scores: np.ndarray = field(repr=False)
    recall: np.ndarray = field(repr=False)
    precision: np.ndarray = field(repr=False)
    cum_fp: np.ndarray = field(repr=False)


@dataclass
class ImageResult:
    """Counts of one image.

    Attributes:
        image: detection image path, or None for a ground-truth image without detections.
        gt_key: matched ground-truth key, or None: the image is not in the ground truth, so it was scored as a
            negative (all its detections are false positives).
        n_gt, n_det: ground-truth boxes and detections of the image.
        tp, fp: IoU threshold -> true / false positives.
    """

    image: str | None
    gt_key: str | None
    n_gt: int
    n_det: int
    tp: dict[float, int]
    fp: dict[float, int]


def _key(x: float) -> str:
    """``x`` formatted with ``%g``, for JSON mapping keys."""
    return format(float(x), "g")


def _round(x: float) -> float | None:
    """``x`` rounded to :data:`JSON_DECIMALS`, NaN as None."""
    return None if math.isnan(x) else round(float(x), JSON_DECIMALS)


@dataclass
class EvalReport:
    """Result of :func:`evaluate`: one :class:`ThresholdResult` per IoU threshold and one :class:`ImageResult`
    per image (detection images first, in input order, then ground-truth images without detections).

    Attributes:
        results: one per IoU threshold, in the order given.
        images: one per image.
        ranking: the ranking key the detections' values are (one of :data:`RANKING_KEYS`), or None if
            unknown.
    """

    results: list[ThresholdResult]
    images: list[ImageResult]
    ranking: str | None = None

    @property
    def n_images_without_gt(self) -> int:
        """Detection images that matched no ground-truth key, so were scored as negatives: each of their
        detections is a false positive."""
        return sum(1 for im in self.images if im.image is not None and im.gt_key is None)

    def to_json(self) -> dict[str, object]:
        """JSON-ready dict; floats rounded to 6 decimals, NaN as null; mapping keys formatted with ``%g``.

        Keys: ``ranking`` (the ranking key, or null), ``n_images_without_gt`` (see
        :attr:`n_images_without_gt`), ``results`` (one object per IoU threshold) and ``images``.
        """
        return {
            "ranking": self.ranking,
            "n_images_without_gt": self.n_images_without_gt,
            "results": [
                {
                    "iou": _round(r.iou),
                    "ap": _round(r.ap),
                    "recall_at_fp": {str(n): _round(v) for n, v in r.recall_at_fp.items()},
                    "recall_at_precision": {_key(p): _round(v) for p, v in r.recall_at_precision.items()},
                    "max_recall": _round(r.max_recall),
                    "n_gt": r.n_gt,
                    "n_det": r.n_det,
                    "n_tp": r.n_tp,
                    "n_fp": r.n_fp,
                }
                for r in self.results
            ],
            "images": [
                {
                    "image": im.image,
                    "gt_key": im.gt_key,
                    "n_gt": im.n_gt,
                    "n_det": im.n_det,
                    "tp": {_key(t): n for t, n in im.tp.items()},
                    "fp": {_key(t): n for t, n in im.fp.items()},
                }
                for im in self.images
            ],
        }


def _average_precision(recall: np.ndarray, precision: np.ndarray) -> float:
    """All-point interpolated AP (VOC2010+): precision made non-increasing from the right, summed over recall
    steps."""
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[0.0], precision, [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    steps = np.nonzero(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[steps + 1] - mrec[steps]) * mpre[steps + 1]))


def evaluate(
    detections: Mapping[str, tuple[np.ndarray, np.ndarray]],
    ground_truth: Mapping[str, np.ndarray],
    iou_thresholds: Sequence[float] = (0.5,),
    fp_points: Sequence[int] = (10, 31, 50, 65, 95, 167),
    precisions: Sequence[float] = (0.5, 0.8, 0.9, 0.95),
    image_keys: Mapping[str, str | None] | None = None,
    ranking: str | None = None,
) -> EvalReport:
    """Score detections against ground truth.

    Every detection image is evaluated (one without ground truth is scored as a negative: all its detections
    are false positives; :attr:`EvalReport.n_images_without_gt` counts these images); ground-truth images
    without detections count all their boxes as missed. Per image, detections are matched with
    :func:`match_image`; then all detections are ranked globally by the values given as their scores
    (descending, stable: ties keep the order of ``detections``' images and of boxes within an image) into
    cumulative TP / FP counts, recall ``= TP / n_gt`` and precision ``= TP / (TP + FP)`` after each rank.

    * ``ap``: all-point interpolated AP (VOC2010+).
    * ``recall_at_fp[N]``: highest recall reached with at most N false positives (FDDB / ROC style).
    * ``recall_at_precision[p]``: highest recall at a rank whose (raw) precision is >= p; 0.0 if none.
    * ``max_recall``: recall with all detections.

    With no ground-truth box at all, recall-based values and AP are NaN.

    Args:
        detections: image path -> ``(boxes [D, 4] xyxy, ranking keys [D] of any range)``: logits where
            the detector gives them (probabilities saturate at 1.0 and cannot rank), else scores.
        ground_truth: key -> ``[G, 4]`` xyxy (as from :func:`load_annotations`).
        iou_thresholds: IoU thresholds in (0, 1], one result each.
        fp_points: false-positive counts >= 0 for ``recall_at_fp``.
        precisions: precisions in [0, 1] for ``recall_at_precision``.
        image_keys: detection image -> ground-truth key or None; None computes it with :func:`match_images`
            (which raises :class:`AmbiguousMatchError` on ambiguous names).
        ranking: which key the values in ``detections`` are (one of :data:`RANKING_KEYS`), recorded in the
            report; None if unknown.

    Returns:
        :class:`EvalReport`.

    Raises:
        ValueError: bad arrays or parameters, unknown keys in ``image_keys``, or two detection images mapped to
            the same ground-truth key.
    """
    thresholds, fps, precs = _checked_parameters(iou_thresholds, fp_points, precisions, ranking)
    mapping = _image_mapping(detections, ground_truth, image_keys)
    used = {gt for gt in mapping.values() if gt is not None}
    gts = {k: as_boxes(v, f"ground_truth[{k!r}]") for k, v in ground_truth.items()}
    n_gt = sum(len(v) for v in gts.values())
    empty = np.zeros((0, 4))
    items = []
    for det, (boxes, scores) in detections.items():
        boxes = as_boxes(boxes, f"detections[{det!r}] boxes")
        scores = as_scores(scores, len(boxes), f"detections[{det!r}] scores")
        items.append((det, mapping[det], boxes, scores))
    all_scores = np.concatenate([s for *_, s in items]) if items else np.zeros(0)
    order = np.argsort(-all_scores, kind="stable")

    images = [ImageResult(det, gt, 0 if gt is None else len(gts[gt]), len(b), {}, {}) for det, gt, b, _ in items]
    images += [ImageResult(None, k, len(v), 0, {t: 0 for t in thresholds}, {t: 0 for t in thresholds})
               for k, v in gts.items() if k not in used]  # fmt: skip
    results = []
    for t in thresholds:
        flags = []
        for im, (_, gt, boxes, scores) in zip(images, items):
            tp = match_image(boxes, scores, empty if gt is None else gts[gt], t)
            im.tp[t], im.fp[t] = int(tp.sum()), int(len(tp) - tp.sum())
            flags.append(tp)
        ranked_tp = np.concatenate(flags)[order] if flags else np.zeros(0, bool)
        results.append(_threshold_result(t, ranked_tp, all_scores[order], n_gt, fps, precs))
    return EvalReport(results=results, images=images, ranking=ranking)


def _checked_parameters(
    iou_thresholds: Sequence[float], fp_points: Sequence[int], precisions: Sequence[float], ranking: str | None
) -> tuple[list[float], list[int], list[float]]:
    """``(thresholds, fp_points, precisions)`` of :func:`evaluate` as lists; ValueError for a bad value."""
    thresholds = [float(t) for t in iou_thresholds]
    if not thresholds or any(not 0 < t <= 1 for t in thresholds) or len(set(thresholds)) != len(thresholds):
        raise ValueError(f"iou_thresholds must be distinct values in (0, 1], got {list(iou_thresholds)}")
    fps = [int(n) for n in fp_points]
    if any(n < 0 or n != f for n, f in zip(fps, fp_points)):
        raise ValueError(f"fp_points must be non-negative integers, got {list(fp_points)}")
    precs = [float(p) for p in precisions]
    if any(not 0 <= p <= 1 for p in precs):
        raise ValueError(f"precisions must be in [0, 1], got {list(precisions)}")
    if ranking is not None and ranking not in RANKING_KEYS:
        raise ValueError(f"ranking must be one of {', '.join(RANKING_KEYS)} or None, got {ranking!r}")
    return thresholds, fps, precs


def _image_mapping(
    detections: Mapping[str, object], ground_truth: Mapping[str, object], image_keys: Mapping[str, str | None] | None
) -> dict[str, str | None]:
    """Detection image -> ground-truth key or None: ``image_keys`` checked against ``ground_truth``, or
    :func:`match_images` when None. ValueError when two detection images map to one key."""
    if image_keys is None:
        mapping = match_images(detections.keys(), ground_truth.keys())
    else:
        mapping = {}
        for det in detections:
            gt = image_keys.get(det)
            if gt is not None and gt not in ground_truth:
                raise ValueError(f"image_keys maps {det!r} to {gt!r}, which is not a ground-truth key")
            mapping[det] = gt
    used: dict[str, str] = {}
    for det, gt in mapping.items():
        if gt is not None:
            if gt in used:
                raise ValueError(f"detection images {used[gt]!r} and {det!r} both map to ground-truth key {gt!r}")
            used[gt] = det
    return mapping


def _threshold_result(
    iou: float, tp: np.ndarray, scores: np.ndarray, n_gt: int, fps: Sequence[int], precs: Sequence[float]
) -> ThresholdResult:
    """Curves and metrics at one IoU threshold from ``tp`` (``[n_det]`` bool true-positive flags in rank
    order) and ``scores`` (``[n_det]`` ranking keys in the same order), ``n_gt`` ground-truth boxes in all."""
    cum_tp = np.cumsum(tp)
    cum_fp = np.cumsum(~tp)
    precision = cum_tp / np.arange(1, len(tp) + 1)
    if n_gt:
        recall = cum_tp / n_gt
        ap = _average_precision(recall, precision)
        rec_fp = {n: float(recall[k - 1]) if (k := int(np.searchsorted(cum_fp, n, "right"))) else 0.0 for n in fps}
        rec_p = {p: float(recall[precision >= p].max(initial=0.0)) for p in precs}
        max_recall = float(recall[-1]) if len(recall) else 0.0
    else:
        recall = np.full(len(tp), np.nan)
        ap = max_recall = math.nan
        rec_fp = {n: math.nan for n in fps}
        rec_p = {p: math.nan for p in precs}
    n_tp = int(tp.sum())
    return ThresholdResult(
        iou=iou, ap=ap, recall_at_fp=rec_fp, recall_at_precision=rec_p, max_recall=max_recall,
        n_gt=n_gt, n_det=len(tp), n_tp=n_tp, n_fp=len(tp) - n_tp,
        scores=scores, recall=recall, precision=precision, cum_fp=cum_fp.astype(np.int64),
    )  # fmt: skip
