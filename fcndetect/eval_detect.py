"""Detections for evaluation, fresh from images: what ``fcndetect eval IMAGES`` scores.

The arrays hold exactly the numbers a saved record holds (``Detections.to_records()``: its rounded ``box``,
and its ``logit`` where present, else its ``score``), read by the same code as a saved ``detections.jsonl``
(:func:`fcndetect.evaluate.detections_from_records`), so a fresh run and its saved file evaluate identically.
Kept out of :mod:`fcndetect.evaluate`, which never imports torch.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import numpy as np

from .evaluate import DetectionsFile, detections_from_records

if TYPE_CHECKING:
    from .detector import Detector


def detect_for_eval(
    detector: Detector,
    inputs: Iterable[str | os.PathLike[str]],
    on_error: Callable[[str, str], None] | None = None,
) -> DetectionsFile:
    """Run ``detector`` over ``inputs`` (files, folders, globs, as :meth:`Detector.run` takes them).

    Args:
        detector: the detector to evaluate.
        inputs: image files, folders (recursive) and glob patterns.
        on_error: called as ``on_error(image, reason)`` for each input that fails, when it fails.

    Returns:
        ``detections``: image path as the run gives it (folder joined with the name) -> ``(boxes [D, 4] float64
        [x1, y1, x2, y2] in image pixels, ranking keys [D] float64)``; ``errors``: failed image -> reason;
        ``ranking``: ``"logit"``, ``"score"``, or None without any detection.
    """
    dets: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    errors: dict[str, str] = {}
    ranking: str | None = None
    for result in detector.run(list(inputs)):  # images are matched to ground truth by path suffix, then name
        if result.error is not None:
            errors[result.image] = result.error
            if on_error is not None:
                on_error(result.image, result.error)
        elif result.detections is not None:
            boxes, keys, ranking = detections_from_records(result.detections.to_records(), ranking=ranking)
            dets[result.image] = (boxes, keys)
    return DetectionsFile(detections=dets, errors=errors, ranking=ranking)
