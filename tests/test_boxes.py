"""NMS-max / NMS-avg against the plain-Python references of tests/oracles.py."""

from __future__ import annotations

import random

import pytest
import torch

import oracles
from fcndetect.boxes import clip_boxes, nms_avg, nms_avg_indexed, nms_max, refine_boxes, suppress_contained


def _random_boxes(seed, n, n_labels=2):
    rng = random.Random(seed)
    boxes, scores, labels = [], [], []
    for _ in range(n):
        cx, cy, s = rng.uniform(0, 100), rng.uniform(0, 100), rng.uniform(5, 40)
        boxes.append([cx - s / 2, cy - s / 2, cx + s / 2 + rng.uniform(-3, 3), cy + s / 2])
        scores.append(rng.random())
        labels.append(rng.randrange(n_labels))
    return boxes, scores, labels


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("thr", [0.0, 0.3, 0.5, 0.9])
def test_nms_avg_matches_reference(seed, thr):
    boxes, scores, labels = _random_boxes(seed, 60)
    ref = oracles.nms_avg(boxes, scores, labels, thr)
    b, s, lab, sizes = nms_avg(torch.tensor(boxes), torch.tensor(scores), torch.tensor(labels), thr)
    assert len(ref) == b.shape[0]
    for (rb, rs, rl, rn, _seed), ob, os_, ol, on in zip(ref, b, s, lab, sizes):
        assert ob.tolist() == pytest.approx(rb, abs=1e-4)
        assert float(os_) == pytest.approx(rs) and int(ol) == rl and int(on) == rn


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("thr", [0.3, 0.5])
def test_nms_max_matches_reference(seed, thr):
    boxes, scores, labels = _random_boxes(seed, 60)
    keep = nms_max(torch.tensor(boxes), torch.tensor(scores), torch.tensor(labels), thr)
    assert keep.tolist() == oracles.nms_max(boxes, scores, labels, thr)


def test_nms_avg_hand_example():
    boxes = torch.tensor([[0.0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60], [0, 0, 10, 10]])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.95])
    labels = torch.tensor([0, 0, 0, 1])
    b, s, lab, n = nms_avg(boxes, scores, labels, 0.3)
    # label 1 box alone (0.95); cluster of the two overlapping label-0 boxes averaged (0.9); far box (0.7)
    assert b.tolist() == [[0, 0, 10, 10], [0.5, 0.5, 10.5, 10.5], [50, 50, 60, 60]]
    assert s.tolist() == pytest.approx([0.95, 0.9, 0.7]) and lab.tolist() == [1, 0, 0] and n.tolist() == [1, 2, 1]


def test_nms_avg_empty():
    b, s, lab, n = nms_avg(torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=torch.int64), 0.3)
    assert b.shape == (0, 4) and s.shape == (0,) and n.shape == (0,)


def test_refine_and_clip():
    boxes = torch.tensor([[10.0, 20, 58, 68]])
    out = refine_boxes(boxes, torch.tensor([[0.1, -0.1, 0.2, 0.0]]))
    assert out.tolist() == [pytest.approx([14.8, 15.2, 67.6, 68.0])]
    assert clip_boxes(torch.tensor([[-5.0, -1, 30, 90]]), 20, 50).tolist() == [[0, 0, 20, 50]]


def _clustered_boxes(seed, n, n_labels=2, ties=False):
    """Many overlapping boxes at a few sizes (a pyramid's windows around a few objects), some degenerate."""
    rng = random.Random(seed)
    centres = [(rng.uniform(0, 200), rng.uniform(0, 200), rng.uniform(8, 60)) for _ in range(6)]
    boxes, scores, labels = [], [], []
    for k in range(n):
        cx, cy, s = centres[rng.randrange(len(centres))]
        s *= rng.choice([0.8, 1.0, 1.26])
        x1, y1 = cx + rng.uniform(-0.4, 0.4) * s, cy + rng.uniform(-0.4, 0.4) * s
        if k % 17 == 0:  # zero-area boxes, some duplicated
            boxes.append([round(x1), round(y1), round(x1), round(y1) + rng.choice([0, 3])])
        else:
            boxes.append([x1, y1, x1 + s, y1 + s])
        scores.append(round(rng.random(), 1) if ties else rng.random())
        labels.append(rng.randrange(n_labels))
    return boxes, scores, labels


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("thr", [0.0, 0.3, 0.6, 1.0])
@pytest.mark.parametrize("ties", [False, True])
def test_nms_avg_seeds_are_nms_max_keep_and_match_reference(seed, thr, ties):
    boxes, scores, labels = _clustered_boxes(seed, 120, ties=ties)
    b, s, lab, sizes, seeds, cluster = nms_avg_indexed(
        torch.tensor(boxes, dtype=torch.float64), torch.tensor(scores), torch.tensor(labels), thr)
    keep = nms_max(torch.tensor(boxes, dtype=torch.float64), torch.tensor(scores), torch.tensor(labels), thr)
    assert seeds.tolist() == keep.tolist() == oracles.nms_max(boxes, scores, labels, thr)
    ref = oracles.nms_avg(boxes, scores, labels, thr)
    assert [r[4] for r in ref] == seeds.tolist()
    assert sizes.tolist() == [r[3] for r in ref]
    for (rb, *_), ob in zip(ref, b.tolist()):
        assert ob == pytest.approx(rb, abs=1e-9)
    assert cluster[seeds].tolist() == list(range(len(ref)))  # every seed is in its own cluster


def test_zero_area_duplicates_merge_and_never_join_real_boxes():
    boxes = torch.tensor([[5.0, 5, 5, 5], [5.0, 5, 5, 5], [0.0, 0, 10, 10], [5.0, 5, 5, 9]])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6])
    b, s, lab, n = nms_avg(boxes, scores, torch.zeros(4, dtype=torch.int64), 0.3)
    assert n.tolist() == [2, 1, 1] and b[0].tolist() == [5, 5, 5, 5]
    assert nms_max(boxes, scores, torch.zeros(4, dtype=torch.int64), 0.3).tolist() == [0, 2, 3]


def test_nms_keeps_the_input_device_and_dtype():
    boxes, scores, labels = _clustered_boxes(0, 50)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for dev in devices:
        bt = torch.tensor(boxes, dtype=torch.float32, device=dev)
        st = torch.tensor(scores, device=dev)
        lt = torch.tensor(labels, device=dev)
        out = nms_avg(bt, st, lt, 0.3)
        assert all(t.device.type == dev for t in out)
        assert out[0].dtype == torch.float32
        assert nms_max(bt, st, lt, 0.3).device.type == dev


def test_nms_avg_ranks_by_logits_beyond_probability_saturation():
    """Two overlapping boxes whose probabilities are both 1.0 in float32: the larger logit seeds the cluster."""
    boxes = torch.tensor([[0.0, 0, 10, 10], [1.0, 0, 11, 10]])
    logits = torch.tensor([17.0, 19.0])
    assert torch.sigmoid(logits).tolist() == [1.0, 1.0]
    b, s, lab, n = nms_avg(boxes, logits, torch.zeros(2, dtype=torch.int64), 0.3)
    assert s.tolist() == [19.0] and n.tolist() == [2]


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("thr", [0.5, 0.8, 0.95])
def test_suppress_contained_matches_reference(seed, thr):
    boxes, scores, labels = _clustered_boxes(seed, 80)
    keep = suppress_contained(torch.tensor(boxes, dtype=torch.float64), torch.tensor(scores),
                              torch.tensor(labels), thr)
    assert keep.tolist() == oracles.suppress_contained(boxes, scores, labels, thr)


def test_containment_drops_a_nested_box_that_iou_keeps():
    face, eye = [0.0, 0, 100, 100], [20.0, 30, 40, 45]  # IoU 0.03: NMS cannot merge them
    boxes = torch.tensor([face, eye, [200.0, 0, 220, 20]])
    scores, labels = torch.tensor([0.9, 0.95, 0.5]), torch.zeros(3, dtype=torch.int64)
    assert nms_max(boxes, scores, labels, 0.3).tolist() == [1, 0, 2]
    # the eye outranks the face: both stay (only a box inside a *better* box goes)
    assert suppress_contained(boxes, scores, labels, 0.8).tolist() == [1, 0, 2]
    assert suppress_contained(boxes, torch.tensor([0.95, 0.9, 0.5]), labels, 0.8).tolist() == [0, 2]


def test_nms_avg_indexed_puts_every_box_in_a_cluster():
    """A zero-area box has no defined IoU, even with itself: it is still its own cluster's seed."""
    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11], [5, 5, 5, 5], [30, 30, 40, 40]], dtype=torch.float64)
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6])
    labels = torch.zeros(4, dtype=torch.int64)
    b, s, lab, sizes, seeds, cluster = nms_avg_indexed(boxes, scores, labels, 0.5)
    assert seeds.tolist() == [0, 2, 3]
    assert cluster.tolist() == [0, 0, 1, 2]
    assert sizes.tolist() == [2, 1, 1]
    assert torch.isfinite(b).all()


@pytest.mark.parametrize("n", [0, 1, 300, 2500])
def test_suppress_contained_at_scale_matches_reference(n):
    """Many nested boxes (chains of containment several deep): the vectorised rule equals the greedy loop."""
    g = torch.Generator().manual_seed(n)
    xy = torch.rand(n, 2, generator=g) * 200
    wh = torch.rand(n, 2, generator=g) * 60 + 1
    boxes = torch.cat([xy, xy + wh], dim=1).double()
    scores = torch.rand(n, generator=g)
    labels = torch.randint(0, 2, (n,), generator=g)
    keep = suppress_contained(boxes, scores, labels, 0.6)
    if n <= 300:  # the plain-Python oracle is quadratic in Python: the large case checks against itself
        assert keep.tolist() == oracles.suppress_contained(boxes.tolist(), scores.tolist(), labels.tolist(), 0.6)
    assert keep.unique().numel() == keep.numel()
