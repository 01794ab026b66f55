"""eval_detect: a fresh run's detections, as the numbers a saved record holds, and each failed input."""

from __future__ import annotations

import numpy as np

from fcndetect.eval_detect import detect_for_eval
from fcndetect.evaluate import detections_from_records


def test_fresh_detections_are_the_saved_records(face_detector, samples, tmp_path):
    missing = str(tmp_path / "missing.png")
    failed = []
    read = detect_for_eval(face_detector, [str(samples / "astronaut.png"), missing],
                           on_error=lambda image, reason: failed.append((image, reason)))
    assert list(read.errors) == [missing] and failed == [(missing, read.errors[missing])]
    assert "no such file" in read.errors[missing]
    records = face_detector(str(samples / "astronaut.png")).to_records()
    boxes, keys, ranking = detections_from_records(records)
    got_boxes, got_keys = read.detections[str(samples / "astronaut.png")]
    assert read.ranking == ranking == "logit" and len(got_boxes) >= 1
    np.testing.assert_array_equal(got_boxes, boxes)
    np.testing.assert_array_equal(got_keys, keys)
    assert keys[0] == records[0]["logit"]
