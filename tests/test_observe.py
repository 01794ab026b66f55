"""Observing a detection: the one pyramid loop reports its steps (grayscale included) to the current observer,
the cascade its stages' survivors, and watching changes no number."""

from __future__ import annotations

import numpy as np
import torch

from fcndetect import Detector
from fcndetect.bench import time_pipeline
from fcndetect.cascade import cascade_candidates
from fcndetect.observe import KeptWindows, Observer, StepTimer, observer, observing
from fcndetect.stages import Cascade


def test_observing_installs_and_restores_the_observer():
    base = observer()
    with observing(StepTimer()) as outer:
        assert observer() is outer
        with observing(KeptWindows()) as inner:
            assert observer() is inner
        assert observer() is outer
    assert observer() is base and type(base) is Observer


def test_the_pyramid_loop_reports_each_step_and_watching_changes_nothing(photo_array):
    det = Detector(None, model="face-pnet", stages=(), stage_thresholds=(), grayscale=True, threshold=0.6)
    image = photo_array[:120, :160]
    plain = det(image)
    with observing(StepTimer()) as timer:
        watched = det(image)
    np.testing.assert_array_equal(plain.boxes, watched.boxes)
    np.testing.assert_array_equal(plain.logits, watched.logits)
    names = [n for n, _ in timer.steps]
    levels = det.levels(160, 120)
    assert names[:2] == ["grayscale", "pyramid plan"] and names[-1] == "post-processing (threshold, boxes, NMS)"
    assert names[2:-1] == [s for j, lv in enumerate(levels)
                           for s in (f"resize L{j} {lv.width}x{lv.height}", f"network L{j} (face-pnet)")]
    assert all(t >= 0 for _, t in timer.steps) and timer.candidates == []
    # the benchmark times the detector's own loop: the grayscale step is no longer skipped
    assert [n for n, _ in time_pipeline(det, image, repeat=1).steps] == names


def test_the_cascade_takes_stage_objects_and_reports_each_stage(photo_array):
    """cascade_candidates is handed the stages (no detector): raising the last stage's threshold in the
    stage object alone keeps a subset of the windows; the observer sees every stage's survivors."""
    det = Detector(threshold=0.5)
    image = det._prepare(photo_array)
    outputs = det._pyramid_outputs([image])[0]
    cascade = det._cascade()
    assert [s.name for s in cascade.stages] == [*det.config.stages, det.config.model]
    assert [s.regress for s in cascade.stages] == [False] * (len(cascade.stages) - 1) + [det.config.regress]
    with observing(KeptWindows()) as kept:
        found = cascade_candidates(image, outputs, cascade)
    assert [n for n, _ in kept.windows] == [s.name for s in cascade.stages]
    assert torch.equal(kept.windows[-1][1].float(), found.boxes) and len(found) >= 1
    last = cascade.stages[-1]
    stricter = Cascade((*cascade.stages[:-1], type(last)(last.model, 0.99, last.regress)), cascade.nms_iou,
                       cascade.fusion, cascade.flip)
    strict = cascade_candidates(image, outputs, stricter).logits
    assert torch.all(torch.sigmoid(strict) > 0.99)
    assert set(strict.tolist()) <= set(found.logits.tolist()) and strict.shape[0] < len(found)
