"""The pure post-processing: group log-odds against an exact reference, and postprocess() on synthetic maps
(no weights), with NMS against tests/oracles.py."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import oracles
from fcndetect.config import DetectorConfig
from fcndetect.geometry import Geometry, cells_to_boxes
from fcndetect.postprocess import LevelOutput, group_logits, postprocess
from fcndetect.pyramid import Level

GEOM = Geometry(stride=4, offset=0.0, window=12, receptive_field=12, rf_offset=0)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("groups", [[[1]], [[0], [1]], [[2, 3], [0]], [[0, 1, 2], [4]]])
def test_group_logits_match_exact_log_odds(seed, groups):
    k = 2 if groups in ([[1]], [[0], [1]]) else 5
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, k, 3, 4, generator=g, dtype=torch.float64) * 12  # many saturated cells
    out = group_logits(logits, groups)
    assert out.shape == (2, len(groups), 3, 4)
    for b in range(2):
        for gi, grp in enumerate(groups):
            for i in range(3):
                for j in range(4):
                    ref = oracles.log_odds(logits[b, :, i, j].tolist(), grp)
                    assert float(out[b, gi, i, j]) == pytest.approx(ref, abs=1e-9, rel=1e-9)


def test_group_logits_do_not_saturate_where_probabilities_do():
    logits = torch.tensor([[0.0, 18.0], [0.0, 25.0], [0.0, 40.0]]).T[None, :, :, None]  # [1, 2, 3, 1]
    probs = torch.softmax(logits, dim=1)[0, 1, :, 0]
    assert probs.tolist() == [1.0, 1.0, 1.0]  # float32 cannot rank these
    assert group_logits(logits, [[1]])[0, 0, :, 0].tolist() == [18.0, 25.0, 40.0]
    five = torch.tensor([0.0, 1.0, 30.0, 31.0, 2.0])[None, :, None, None]  # a two-class group of five
    assert float(group_logits(five, [[2, 3]])) == pytest.approx(oracles.log_odds(five.flatten().tolist(), [2, 3]))


def _level(scale: float, w: int, h: int) -> Level:
    return Level(scale=scale, width=w, height=h, sx=scale, sy=scale)


def _outputs(seed: int, n_levels: int = 3) -> list[LevelOutput]:
    g = torch.Generator().manual_seed(seed)
    outs = []
    for k in range(n_levels):
        s = 0.8**k
        lv = _level(s, int(100 * s), int(80 * s))
        h, w = (lv.height - 12) // 4 + 1, (lv.width - 12) // 4 + 1
        logits = torch.randn(2, h, w, generator=g) * 4
        outs.append(LevelOutput(lv, logits, torch.randn(4, h, w, generator=g) * 0.05))
    return outs


def _reference(outputs, cfg, image_size):
    """Plain loops: threshold on sigmoid, cell box, regression, oracle NMS, clip, sort by logit, cap."""
    boxes, keys, labels = [], [], []
    for out in outputs:
        lv = out.level
        g_, h, w = out.logits.shape
        for c in range(g_):
            for i in range(h):
                for j in range(w):
                    logit = float(out.logits[c, i, j])
                    if 1 / (1 + math.exp(-logit)) <= cfg.threshold:
                        continue
                    x1 = (GEOM.offset + GEOM.stride * j) / lv.sx
                    y1 = (GEOM.offset + GEOM.stride * i) / lv.sy
                    bw, bh = GEOM.window / lv.sx, GEOM.window / lv.sy
                    d = [float(v) for v in out.regression[:, i, j]] if out.regression is not None else [0.0] * 4
                    boxes.append([x1 + d[0] * bw, y1 + d[1] * bh, x1 + bw + d[2] * bw, y1 + bh + d[3] * bh])
                    keys.append(logit)
                    labels.append(c)
    if cfg.nms == "avg":
        clusters = [r for r in oracles.nms_avg(boxes, keys, labels, cfg.nms_iou) if r[3] >= cfg.min_neighbors]
        res = [(r[0], r[1], r[2]) for r in clusters]
    else:
        res = [(boxes[i], keys[i], labels[i]) for i in oracles.nms_max(boxes, keys, labels, cfg.nms_iou)]
    width, height = image_size
    res = [([min(max(b[0], 0), width), min(max(b[1], 0), height), min(max(b[2], 0), width),
             min(max(b[3], 0), height)], k, lab) for b, k, lab in res]
    res.sort(key=lambda r: -r[1])
    return res[: cfg.max_det]


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("nms,min_neighbors", [("avg", 1), ("avg", 3), ("max", 1)])
def test_postprocess_matches_plain_reference(seed, nms, min_neighbors):
    cfg = DetectorConfig(threshold=0.9, nms=nms, nms_iou=0.3, min_neighbors=min_neighbors, max_det=15)
    outs = _outputs(seed)
    dets = postprocess(outs, GEOM, cfg, ("a", "b"), (100, 80))
    ref = _reference(outs, cfg, (100, 80))
    assert len(dets) == len(ref) > 0
    for k, (box, key, lab) in enumerate(ref):
        assert dets.boxes[k].tolist() == pytest.approx(box, abs=1e-3)
        assert float(dets.logits[k]) == pytest.approx(key, abs=1e-5)
        assert int(dets.labels[k]) == lab
    np.testing.assert_allclose(dets.scores, 1 / (1 + np.exp(-dets.logits.astype(np.float64))), rtol=1e-6)
    assert np.all(np.diff(dets.logits) <= 0) and (dets.scores > 0.9).all()


def test_nms_avg_really_averages_windows():
    """Two neighbouring cells above threshold on one level: the detection is their mean box."""
    logits = torch.full((1, 3, 3), -5.0)
    logits[0, 1, 1], logits[0, 1, 2] = 6.0, 5.0
    out = LevelOutput(_level(1.0, 20, 20), logits)
    dets = postprocess([out], GEOM, DetectorConfig(threshold=0.5, nms="avg", nms_iou=0.3), ("x",), (20, 20))
    a, b = cells_to_boxes(torch.tensor([1, 1]), torch.tensor([1, 2]), GEOM).tolist()
    assert len(dets) == 1
    assert dets.boxes[0].tolist() == pytest.approx([(u + v) / 2 for u, v in zip(a, b)])
    assert float(dets.logits[0]) == 6.0


def test_score_maps_carry_geometry_and_logits():
    outs = _outputs(0, 2)
    dets = postprocess(outs, GEOM, DetectorConfig(threshold=0.99), ("a", "b"), (100, 80), return_maps=True)
    assert dets.score_maps is not None and len(dets.score_maps) == 2
    for sm, out in zip(dets.score_maps, outs):
        assert sm.geometry == GEOM
        np.testing.assert_array_equal(sm.logits, out.logits.numpy())
        np.testing.assert_allclose(sm.scores, torch.sigmoid(out.logits).numpy(), rtol=1e-6)


def test_nothing_above_threshold_gives_empty_detections():
    out = LevelOutput(_level(1.0, 20, 20), torch.full((2, 3, 3), -3.0))
    dets = postprocess([out], GEOM, DetectorConfig(threshold=0.5), ("a", "b"), (20, 20))
    assert len(dets) == 0 and dets.logits.shape == (0,)


def test_containment_drops_a_window_nested_in_a_better_one():
    """Two cells of different levels: a small window inside a large, better one. IoU-based NMS keeps both;
    the containment rule keeps the large one only."""
    big = LevelOutput(_level(0.25, 20, 20), torch.full((1, 3, 3), -9.0))
    big.logits[0, 0, 0] = 8.0  # window [0, 0, 48, 48] in the image
    small = LevelOutput(_level(1.0, 60, 60), torch.full((1, 13, 13), -9.0))
    small.logits[0, 3, 3] = 5.0  # window [12, 12, 24, 24], inside it
    cfg = DetectorConfig(threshold=0.5, nms="avg", nms_iou=0.3)
    assert len(postprocess([big, small], GEOM, cfg, ("x",), (60, 60))) == 2
    dets = postprocess([big, small], GEOM, cfg.replace(containment=0.8), ("x",), (60, 60))
    assert len(dets) == 1 and dets.logits.tolist() == [8.0]
