"""Tests of the fcndetect.evaluate package itself: its public names, and that importing it leaves torch out."""

from __future__ import annotations

import subprocess
import sys

import fcndetect.evaluate as ev

# The public API of the single-module fcndetect.evaluate that the package replaced.
MODULE_API = {
    "FORMATS", "AnnotationError", "AmbiguousMatchError", "ThresholdResult", "ImageResult", "EvalReport",
    "load_annotations", "detect_format", "load_detections_jsonl", "load_detections_jsonl_with_errors",
    "normalize_key", "match_images", "box_iou", "match_image", "evaluate", "format_table", "plot_curves",
}  # fmt: skip


def test_public_names():
    assert MODULE_API <= set(ev.__all__)
    assert [name for name in ev.__all__ if not hasattr(ev, name)] == []


def test_import_does_not_load_torch():
    code = "import sys, fcndetect.evaluate; print(sorted(m for m in sys.modules if m.split('.')[0] == 'torch')[:3])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
