"""The Detections dataclass: selection, length, concatenation, records at fixed precision with logits."""

from __future__ import annotations

import numpy as np
import pytest

from fcndetect.detections import Detections, ScoreMap, sigmoid


def _dets(n: int = 4, names=("face", "cat")) -> Detections:
    logits = np.array([9.0, 3.5, 20.0, -1.0][:n], np.float32)
    return Detections(
        boxes=np.arange(4 * n, dtype=np.float32).reshape(n, 4),
        scores=sigmoid(logits),
        labels=np.array([0, 1, 0, 1][:n]),
        class_names=names,
        image_size=(64, 48),
        logits=logits,
    )


def test_len_and_boolean_selection():
    d = _dets()
    assert len(d) == 4
    sel = d[d.scores > 0.9]
    assert len(sel) == 3 and sel.logits.tolist() == [9.0, 3.5, 20.0]
    assert sel.boxes.tolist() == d.boxes[[0, 1, 2]].tolist() and sel.image_size == d.image_size


def test_index_slice_and_int_selection():
    d = _dets()
    assert d[[2, 0]].logits.tolist() == [20.0, 9.0]
    assert d[1:3].labels.tolist() == [1, 0]
    one = d[3]
    assert len(one) == 1 and one.label_names == ["cat"]
    with pytest.raises(IndexError):
        d[np.array([True, False])]


def test_concat_joins_in_order_and_refuses_mismatches():
    d = _dets()
    joined = Detections.concat([d[:1], d[2:]])
    assert joined.logits.tolist() == [9.0, 20.0, -1.0] and len(joined) == 3
    with pytest.raises(ValueError):
        Detections.concat([d, _dets(names=("dog", "cat"))])
    with pytest.raises(ValueError):
        Detections.concat([])


def test_mismatched_lengths_are_refused():
    with pytest.raises(ValueError, match="logits"):
        Detections(np.zeros((2, 4)), np.zeros(2), np.zeros(2), ("a",), (1, 1), logits=np.zeros(3))


def test_records_carry_unsaturated_logits():
    d = _dets()
    recs = d.to_records()
    assert recs[0] == {"box": [0.0, 1.0, 2.0, 3.0], "score": 0.99988, "logit": 9.0, "label": "face"}
    assert recs[2]["score"] == 1.0 and recs[2]["logit"] == 20.0  # the probability saturates, the logit not


def test_logits_default_to_the_scores_log_odds():
    d = Detections(np.zeros((1, 4)), np.array([0.75]), np.array([0]), ("a",), (1, 1))
    assert d.logits.tolist() == [pytest.approx(np.log(3.0))]


def test_sigmoid_is_stable_and_scoremap_scores():
    x = np.array([-200.0, -1.0, 0.0, 1.0, 200.0], np.float32)
    s = sigmoid(x)
    assert s.dtype == np.float32 and np.isfinite(s).all()
    assert s.tolist() == pytest.approx([0.0, 1 / (1 + np.e), 0.5, 1 / (1 + np.exp(-1)), 1.0])
    sm = ScoreMap(1.0, 1.0, 1.0, x.reshape(1, 1, 5))
    assert sm.scores.shape == (1, 1, 5)


def test_concat_keeps_landmarks_that_only_some_parts_have():
    from dataclasses import replace

    d = _dets()
    points = np.arange(2 * 10, dtype=np.float32).reshape(2, 5, 2)
    with_points = replace(d[:2], landmarks=points)
    joined = Detections.concat([with_points, d[2:]])
    assert joined.landmarks is not None and joined.landmarks.shape == (4, 5, 2)
    np.testing.assert_array_equal(joined.landmarks[:2], points)
    assert np.isnan(joined.landmarks[2:]).all()
    records = joined.to_records()
    assert [("landmarks" in r) for r in records] == [True, True, False, False]
    assert records[1]["landmarks"][0] == [10.0, 11.0]
    assert Detections.concat([d[:2], d[2:]]).landmarks is None
