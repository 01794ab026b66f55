"""Tracks over synthetic boxes: ids kept through crossings and gaps, low scores never start a track, and the
regions that cover a track's gaps, its stride's frames in between, and its hold before and after."""

from __future__ import annotations

import numpy as np
import pytest

from fcndetect.track import Tracker, TrackerConfig, box_iou_matrix


def _box(cx: float, cy: float, side: float = 40.0) -> list[float]:
    return [cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2]


def test_iou_matrix_against_hand_values():
    a = np.array([[0, 0, 10, 10], [0, 0, 0, 0]], float)
    b = np.array([[5, 0, 15, 10], [20, 20, 30, 30], [0, 0, 10, 10]], float)
    iou = box_iou_matrix(a, b)
    assert iou.shape == (2, 3)
    np.testing.assert_allclose(iou[0], [50 / 150, 0.0, 1.0])
    np.testing.assert_allclose(iou[1], [0.0, 0.0, 0.0])  # an empty box: 0, never a division by zero


def test_two_faces_crossing_keep_their_ids():
    """Two faces move towards each other at 8 px a frame, pass through one another and go on: the motion
    tells them apart where the boxes overlap."""
    tr = Tracker(TrackerConfig(hold=2, max_gap=4))
    seen = {"a": [], "b": []}
    for k in range(40):
        xa, xb = 40 + 8 * k, 352 - 8 * k
        boxes = np.array([_box(xa, 100), _box(xb, 108)])
        order = [0, 1] if k % 2 else [1, 0]  # the detector's order changes from frame to frame
        ids = tr.update(k, k / 25, boxes[order], np.array([0.99, 0.99]))
        got = dict(zip(order, ids))
        seen["a"].append(int(got[0]))
        seen["b"].append(int(got[1]))
    assert len(set(seen["a"])) == len(set(seen["b"])) == 1 and seen["a"][0] != seen["b"][0]


def test_short_gaps_keep_the_id_and_are_interpolated_long_ones_start_a_new_track():
    tr = Tracker(TrackerConfig(hold=2, max_gap=4, grow=0.0))
    ids = {}
    for k in range(30):
        if k in (10, 11, 12) or 20 <= k < 26:  # missed 3 frames (kept), then 6 frames (> max_gap: a new track)
            tr.update(k, k * 0.04, np.zeros((0, 4)), np.zeros(0))
            continue
        ids[k] = int(tr.update(k, k * 0.04, np.array([_box(100 + 5 * k, 100)]), np.array([0.99]))[0])
    assert {ids[k] for k in range(0, 20) if k in ids} == {1} and {ids[k] for k in range(26, 30)} == {2}
    # regions of the 3-frame gap: the box where the face moved, interpolated between frames 9 and 13
    tr2 = Tracker(TrackerConfig(hold=2, max_gap=4, grow=0.0, smoothing=1.0))
    for k in range(14):
        if k not in (10, 11, 12):
            tr2.update(k, k * 0.04, np.array([_box(100 + 5 * k, 100)]), np.array([0.99]))
    for k in range(14):
        boxes, tids = tr2.regions(k, k * 0.04)
        assert len(boxes) and set(tids) == {1}, k
        np.testing.assert_allclose(boxes[-1], _box(100 + 5 * k, 100), atol=1e-6)


def test_low_scores_extend_a_track_but_never_start_one():
    tr = Tracker(TrackerConfig(high=0.9, low=0.3, hold=0, max_gap=2))
    ids = tr.update(0, 0.0, np.array([_box(100, 100), _box(300, 100)]), np.array([0.95, 0.5]))
    assert ids.tolist() == [1, 0]  # the low one starts nothing
    ids = tr.update(1, 0.04, np.array([_box(104, 100), _box(300, 100)]), np.array([0.5, 0.5]))
    assert ids.tolist() == [1, 0]  # a low one extends the track it matches; the other still starts nothing
    ids = tr.update(2, 0.08, np.array([_box(300, 100), _box(108, 100)]), np.array([0.2, 0.95]))
    assert ids.tolist() == [0, 1]  # under low: ignored


def test_hold_before_and_after_follows_the_motion():
    """A face detected in frames 5..9 only, moving 10 px a frame: with hold 3 it is covered in frames 2..12,
    the held boxes extrapolated along its velocity (inertia 1) and grown by the given fraction per frame."""
    cfg = TrackerConfig(hold=3, max_gap=3, grow=0.1, inertia=1.0, smoothing=1.0)
    tr = Tracker(cfg)
    times = [k * 0.04 for k in range(16)]
    covered = {}
    for k in range(16):
        boxes = np.array([_box(100 + 10 * k, 100)]) if 5 <= k <= 9 else np.zeros((0, 4))
        tr.update(k, times[k], boxes, np.full(len(boxes), 0.99))
        if k >= tr.lag:
            j = k - tr.lag
            covered[j] = tr.regions(j, times[j])[0]
    for j in range(16 - tr.lag, 16):
        covered[j] = tr.regions(j, times[j])[0]
    assert [j for j in range(16) if len(covered[j])] == list(range(2, 13))
    for j in (2, 12):
        d = abs(j - 5) if j < 5 else j - 9
        cx = 100 + 10 * j
        side = 40 * (1 + 0.1 * d)
        np.testing.assert_allclose(covered[j][0], _box(cx, 100, side), atol=1e-6)


def test_regions_between_stride_frames_are_interpolated_in_time():
    """Detections every 4th frame of a variable-rate video: a frame in between is covered at the position its
    timestamp gives, not at its index's."""
    tr = Tracker(TrackerConfig(hold=0, max_gap=8, grow=0.0, smoothing=1.0))
    times = [0.0, 0.04, 0.08, 0.20, 0.24]  # frame 3 came late (a dropped frame before it)
    tr.update(0, times[0], np.array([_box(100, 100, 100)]), np.array([0.99]))
    tr.update(4, times[4], np.array([_box(160, 100, 100)]), np.array([0.99]))  # 250 px/s
    boxes, ids = tr.regions(3, times[3])
    assert ids.tolist() == [1]
    np.testing.assert_allclose(boxes[0], _box(150, 100, 100), atol=1e-6)  # 5/6 of the way, not 3/4


def test_bad_settings_and_order_are_refused():
    with pytest.raises(ValueError, match="low <= high"):
        TrackerConfig(high=0.2, low=0.5)
    with pytest.raises(ValueError, match=">= 0"):
        TrackerConfig(hold=-1)
    tr = Tracker()
    tr.update(3, 0.1, np.zeros((0, 4)), np.zeros(0))
    with pytest.raises(ValueError, match="frames must increase"):
        tr.update(3, 0.1, np.zeros((0, 4)), np.zeros(0))


def test_a_short_lookahead_covers_long_gaps_by_prediction():
    """With a look-ahead of 2 frames and detections every 10th frame (a large stride), the frames between are
    covered by the track's prediction (``hold_after``), never left bare, and the memory stays 2 frames."""
    cfg = TrackerConfig(hold=2, max_gap=20, hold_after=9, lookahead=2, grow=0.0, inertia=1.0, smoothing=1.0)
    tr = Tracker(cfg)
    assert tr.lag == 2
    got = {}
    for k in range(31):
        boxes = np.array([_box(100 + 2 * k, 100)]) if k % 10 == 0 else np.zeros((0, 4))
        ids = tr.update(k, k * 0.04, boxes, np.full(len(boxes), 0.99))
        assert set(ids.tolist()) <= {1}
        if k >= tr.lag:
            got[k - tr.lag] = tr.regions(k - tr.lag, (k - tr.lag) * 0.04)[0]
    assert all(len(got[j]) for j in got)  # every frame covered
    np.testing.assert_allclose(got[15][0], _box(130, 100), atol=1e-6)  # 5 frames on from frame 10's box
