"""Evaluation of detections against ground-truth boxes: annotation readers, matching, metrics and report.

Boxes everywhere are ``float64`` arrays ``[N, 4]`` ``[x1, y1, x2, y2]`` in image pixels with continuous
edges (``[0, 0, W, H]`` is the whole image), and must have ``x2 >= x1`` and ``y2 >= y1``.

The package depends only on the standard library and numpy (matplotlib is imported lazily by
:func:`plot_curves`), so it can be used on its own; it never imports torch.

Modules: ``readers`` (annotation formats), ``detections_jsonl`` (detection files, ranked by logit where the
records carry one, else by score), ``matching`` (images to ground-truth keys, detections to boxes),
``metrics`` (AP, recall at N false positives, :class:`EvalReport`), ``report`` (table, plots); ``parsing``
and ``errors`` hold what they share.

Pipeline::

    gt = load_annotations("wider_face_val_bbx_gt.txt")          # {gt_key: boxes [G, 4]}
    read = read_detections_jsonl("out.jsonl")                   # detections {image: (boxes [D, 4], keys [D])}
    report = evaluate(read.detections, gt, iou_thresholds=(0.5,), ranking=read.ranking)
    print(format_table(report))
    json.dumps(report.to_json())
"""

from __future__ import annotations

from .detections_jsonl import (
    DetectionsFile,
    detections_from_records,
    load_detections_jsonl,
    load_detections_jsonl_with_errors,
    read_detections_jsonl,
)
from .errors import AmbiguousMatchError, AnnotationError
from .matching import box_iou, match_image, match_images, normalize_key
from .metrics import EvalReport, ImageResult, ThresholdResult, evaluate
from .readers import FORMATS, detect_format, load_annotations
from .report import format_table, plot_curves

__all__ = [
    "FORMATS",
    "AnnotationError",
    "AmbiguousMatchError",
    "ThresholdResult",
    "ImageResult",
    "EvalReport",
    "load_annotations",
    "detect_format",
    "load_detections_jsonl",
    "load_detections_jsonl_with_errors",
    "read_detections_jsonl",
    "detections_from_records",
    "DetectionsFile",
    "normalize_key",
    "match_images",
    "box_iou",
    "match_image",
    "evaluate",
    "format_table",
    "plot_curves",
]
