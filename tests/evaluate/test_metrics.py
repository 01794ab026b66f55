"""Tests of fcndetect.evaluate.metrics: hand-computed examples and a plain-Python reference."""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest

from fcndetect.evaluate import evaluate, match_image


# ----------------------------------------------------------------------------------------------------------
# Hand-computed example
#
# a.jpg GT: A1 [0,0,10,10], A2 [20,0,30,10];  b.jpg GT: B1 [0,0,10,10]   -> n_gt = 3
# detections (score):
#   d1 a [0,0,10,10]  0.9   IoU(A1) = 1
#   d2 a [1,0,11,10]  0.8   IoU(A1) = 90/110 = 0.818, but A1 is taken by d1; IoU(A2) = 0
#   d3 a [20,0,30,10] 0.3   IoU(A2) = 1
#   d4 b [5,0,15,10]  0.7   IoU(B1) = 50/150 = 0.333
#   d5 b [0,0,10,9]   0.5   IoU(B1) = 90/100 = 0.9
# ranking: d1 d2 d4 d5 d3

HAND_GT = {
    "a.jpg": np.array([[0, 0, 10, 10], [20, 0, 30, 10]], float),
    "b.jpg": np.array([[0, 0, 10, 10]], float),
}
HAND_DETS = {
    "a.jpg": (np.array([[0, 0, 10, 10], [1, 0, 11, 10], [20, 0, 30, 10]], float), np.array([0.9, 0.8, 0.3])),
    "b.jpg": (np.array([[5, 0, 15, 10], [0, 0, 10, 9]], float), np.array([0.7, 0.5])),
}

# IoU 0.5: TP FP FP TP TP; cum TP 1 1 1 2 3; cum FP 0 1 2 2 2
#   recall 1/3 1/3 1/3 2/3 1;  precision 1 1/2 1/3 1/2 3/5
#   interpolated precision (max to the right): 1 .6 .6 .6 .6
#   AP = 1/3*1 + 1/3*.6 + 1/3*.6 = 2.2/3
#   recall@FP: 0 -> 1/3, 1 -> 1/3 (rank 2), 2 -> 1
#   recall@precision: 1.0 -> 1/3; 0.9 -> 1/3; 0.6 -> 1 (rank 5 has 3/5); 0.5 -> 1
# IoU 0.3: d4 takes B1 (0.333 >= 0.3) before d5 (FP); d2 still FP.
#   TP FP TP FP TP; cum TP 1 1 2 2 3; cum FP 0 1 1 2 2; precision 1 1/2 2/3 1/2 3/5
#   interpolated: 1 2/3 2/3 .6 .6 ; AP = (1 + 2/3 + .6)/3
#   recall@FP: 0 -> 1/3, 1 -> 2/3, 2 -> 1;  recall@precision: 1.0 -> 1/3, 0.9 -> 1/3, 0.6 -> 1, 0.5 -> 1
# IoU 0.95: only d1 and d3 (IoU 1) are TP: TP FP FP FP TP; precision 1 1/2 1/3 1/4 2/5
#   AP = 1/3*1 + 1/3*.4 = 1.4/3; recall@FP 0,1,2 -> 1/3; max recall 2/3
#   recall@precision: 1.0 -> 1/3, 0.9 -> 1/3, 0.6 -> 1/3, 0.5 -> 1/3
HAND_EXPECTED = {
    0.5: dict(ap=2.2 / 3, rfp={0: 1 / 3, 1: 1 / 3, 2: 1.0}, rp={1.0: 1 / 3, 0.9: 1 / 3, 0.6: 1.0, 0.5: 1.0},
              max_recall=1.0, n_tp=3, tp={"a.jpg": 2, "b.jpg": 1}),
    0.3: dict(ap=(1 + 2 / 3 + 0.6) / 3, rfp={0: 1 / 3, 1: 2 / 3, 2: 1.0},
              rp={1.0: 1 / 3, 0.9: 1 / 3, 0.6: 1.0, 0.5: 1.0}, max_recall=1.0, n_tp=3, tp={"a.jpg": 2, "b.jpg": 1}),
    0.95: dict(ap=1.4 / 3, rfp={0: 1 / 3, 1: 1 / 3, 2: 1 / 3}, rp={1.0: 1 / 3, 0.9: 1 / 3, 0.6: 1 / 3, 0.5: 1 / 3},
               max_recall=2 / 3, n_tp=2, tp={"a.jpg": 2, "b.jpg": 0}),
}  # fmt: skip


def hand_report(dets=HAND_DETS):
    return evaluate(dets, HAND_GT, iou_thresholds=(0.5, 0.3, 0.95), fp_points=(0, 1, 2),
                    precisions=(1.0, 0.9, 0.6, 0.5))  # fmt: skip


@pytest.mark.parametrize("index, iou", [(0, 0.5), (1, 0.3), (2, 0.95)])
def test_hand_computed(index, iou):
    r = hand_report().results[index]
    exp = HAND_EXPECTED[iou]
    assert r.iou == iou
    assert r.ap == pytest.approx(exp["ap"])
    assert r.recall_at_fp == pytest.approx(exp["rfp"])
    assert r.recall_at_precision == pytest.approx(exp["rp"])
    assert r.max_recall == pytest.approx(exp["max_recall"])
    assert (r.n_gt, r.n_det, r.n_tp, r.n_fp) == (3, 5, exp["n_tp"], 5 - exp["n_tp"])
    assert r.cum_fp.tolist() == list(np.cumsum([not f for f in _tp_pattern(iou)]))
    assert r.scores.tolist() == [0.9, 0.8, 0.7, 0.5, 0.3]


def _tp_pattern(iou):
    return {0.5: [1, 0, 0, 1, 1], 0.3: [1, 0, 1, 0, 1], 0.95: [1, 0, 0, 0, 1]}[iou]


def test_hand_computed_curves_and_images():
    report = hand_report()
    r = report.results[0]
    assert r.recall == pytest.approx([1 / 3, 1 / 3, 1 / 3, 2 / 3, 1])
    assert r.precision == pytest.approx([1, 1 / 2, 1 / 3, 1 / 2, 3 / 5])
    assert [(im.image, im.gt_key, im.n_gt, im.n_det) for im in report.images] == [
        ("a.jpg", "a.jpg", 2, 3),
        ("b.jpg", "b.jpg", 1, 2),
    ]
    for iou, exp in HAND_EXPECTED.items():
        for im in report.images:
            assert im.tp[iou] == exp["tp"][im.image]
            assert im.fp[iou] == im.n_det - exp["tp"][im.image]


def test_to_json_shape_and_rounding():
    out = hand_report().to_json()
    json.dumps(out)  # plain Python types only
    first = out["results"][0]
    assert (out["ranking"], out["n_images_without_gt"]) == (None, 0)
    assert set(first) == {"iou", "ap", "recall_at_fp", "recall_at_precision", "max_recall", "n_gt", "n_det",
                          "n_tp", "n_fp"}  # fmt: skip
    assert first["iou"] == 0.5
    assert first["ap"] == round(2.2 / 3, 6) == 0.733333
    assert first["recall_at_fp"] == {"0": 0.333333, "1": 0.333333, "2": 1.0}
    assert first["recall_at_precision"] == {"1": 0.333333, "0.9": 0.333333, "0.6": 1.0, "0.5": 1.0}
    assert (first["n_gt"], first["n_det"], first["n_tp"], first["n_fp"]) == (3, 5, 3, 2)
    assert out["images"][1] == {
        "image": "b.jpg", "gt_key": "b.jpg", "n_gt": 1, "n_det": 2,
        "tp": {"0.5": 1, "0.3": 1, "0.95": 0}, "fp": {"0.5": 1, "0.3": 1, "0.95": 2},
    }  # fmt: skip


def test_unannotated_detection_images_and_undetected_gt_images():
    gt = dict(HAND_GT, **{"d.jpg": np.array([[0, 0, 5, 5], [5, 5, 9, 9]], float)})
    dets = dict(HAND_DETS, **{"c.jpg": (np.array([[0, 0, 10, 10]], float), np.array([0.95]))})
    report = evaluate(dets, gt, fp_points=(0, 3))
    r = report.results[0]
    # c.jpg's detection ranks first and is a FP; d.jpg's 2 faces are missed: n_gt = 5.
    # ranks: FP(c) TP FP FP TP TP -> recall 0 .2 .2 .2 .4 .6, precision 0 1/2 1/3 1/4 2/5 1/2
    assert (r.n_gt, r.n_det, r.n_tp, r.n_fp) == (5, 6, 3, 3)
    assert r.max_recall == pytest.approx(0.6)
    assert r.ap == pytest.approx(0.2 * 0.5 + 0.2 * 0.5 + 0.2 * 0.5)
    assert r.recall_at_fp == pytest.approx({0: 0.0, 3: 0.6})
    rows = {(im.image, im.gt_key): (im.n_gt, im.n_det, im.tp[0.5], im.fp[0.5]) for im in report.images}
    assert rows[("c.jpg", None)] == (0, 1, 0, 1)
    assert rows[(None, "d.jpg")] == (2, 0, 0, 0)
    assert report.n_images_without_gt == 1


def test_images_without_ground_truth_are_counted():
    # c.jpg and e.jpg match no ground-truth key: scored as negatives (e.jpg has no detection to be a FP). d.jpg is
    # annotated and has no detection, b.jpg annotated and detected: neither counts.
    gt = dict(HAND_GT, **{"d.jpg": np.array([[0, 0, 5, 5]], float)})
    extra = {"c.jpg": (np.array([[0, 0, 10, 10]], float), np.array([0.95])), "e.jpg": (np.zeros((0, 4)), np.zeros(0))}
    report = evaluate(dict(HAND_DETS, **extra), gt)
    assert report.n_images_without_gt == 2
    assert report.to_json()["n_images_without_gt"] == 2
    assert evaluate(HAND_DETS, gt).n_images_without_gt == 0


@pytest.mark.parametrize("ranking", ["logit", "score", None])
def test_ranking_key_is_recorded(ranking):
    report = evaluate(HAND_DETS, HAND_GT, ranking=ranking)
    assert report.ranking == ranking
    assert report.to_json()["ranking"] == ranking


def test_unknown_ranking_key_is_refused():
    with pytest.raises(ValueError, match="ranking must be one of logit, score"):
        evaluate(HAND_DETS, HAND_GT, ranking="probability")


@pytest.mark.parametrize(
    "transform",
    [
        lambda s: s,
        lambda s: 10 * s - 8,  # negative Haar-like scores: -5 ... 1
        lambda s: -1.0 / s,  # all negative, same order
        lambda s: 1000 * s**3,  # large positive
    ],
)
def test_scores_outside_unit_interval(transform):
    dets = {k: (b, transform(s)) for k, (b, s) in HAND_DETS.items()}
    base, other = hand_report().to_json(), hand_report(dets).to_json()
    assert other == base


def test_negative_scores_rank_below_positive():
    gt = {"x.jpg": np.array([[0, 0, 10, 10]], float)}
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [50, 50, 60, 60]], float)
    # The -3.5 duplicate ranks after the 2.0 one, so it is the FP; the -0.5 stray box is a FP too.
    report = evaluate({"x.jpg": (boxes, np.array([-3.5, 2.0, -0.5]))}, gt, fp_points=(0, 1))
    assert match_image(boxes, np.array([-3.5, 2.0, -0.5]), gt["x.jpg"], 0.5).tolist() == [False, True, False]
    r = report.results[0]
    assert r.ap == 1.0 and r.recall_at_fp == {0: 1.0, 1: 1.0}
    assert r.scores.tolist() == [2.0, -0.5, -3.5]


def test_no_ground_truth_gives_nan_and_null():
    report = evaluate({"a.jpg": (np.array([[0, 0, 1, 1]], float), np.array([0.5]))}, {})
    r = report.results[0]
    assert math.isnan(r.ap) and math.isnan(r.max_recall) and r.n_fp == 1
    assert report.to_json()["results"][0]["ap"] is None


def test_no_detections():
    r = evaluate({}, HAND_GT, fp_points=(10,), precisions=(0.5,)).results[0]
    assert (r.ap, r.max_recall, r.recall_at_fp, r.recall_at_precision) == (0.0, 0.0, {10: 0.0}, {0.5: 0.0})
    assert (r.n_gt, r.n_det) == (3, 0)


def test_evaluate_with_explicit_image_keys():
    dets = {"/data/x/a.jpg": HAND_DETS["a.jpg"], "/data/x/b.jpg": HAND_DETS["b.jpg"]}
    r1 = evaluate(dets, HAND_GT).to_json()["results"]
    r2 = evaluate(dets, HAND_GT, image_keys={"/data/x/a.jpg": "a.jpg", "/data/x/b.jpg": "b.jpg"})
    assert r2.to_json()["results"] == r1 == evaluate(HAND_DETS, HAND_GT).to_json()["results"]
    with pytest.raises(ValueError, match="not a ground-truth key"):
        evaluate(dets, HAND_GT, image_keys={"/data/x/a.jpg": "zzz.jpg"})
    with pytest.raises(ValueError, match="both map"):
        evaluate(dets, HAND_GT, image_keys={"/data/x/a.jpg": "a.jpg", "/data/x/b.jpg": "a.jpg"})


@pytest.mark.parametrize(
    "kwargs",
    [dict(iou_thresholds=(0.0,)), dict(iou_thresholds=(0.5, 0.5)), dict(fp_points=(-1,)), dict(fp_points=(1.5,)),
     dict(precisions=(1.5,))],
)  # fmt: skip
def test_evaluate_rejects_bad_parameters(kwargs):
    with pytest.raises(ValueError):
        evaluate(HAND_DETS, HAND_GT, **kwargs)


@pytest.mark.parametrize(
    "boxes, scores",
    [
        (np.zeros((2, 3)), np.zeros(2)),
        (np.array([[0, 0, 1, 1.0]]), np.zeros(2)),
        (np.array([[5, 0, 1, 1.0]]), np.zeros(1)),
        (np.array([[0, 0, 1, 1.0]]), np.array([np.nan])),
    ],
)
def test_evaluate_rejects_bad_arrays(boxes, scores):
    with pytest.raises(ValueError):
        evaluate({"a.jpg": (boxes, scores)}, HAND_GT)


# ----------------------------------------------------------------------------------------------------------
# Plain-Python reference implementation


def ref_evaluate(ref_match, dets, gt, thr, fp_points, precisions):
    """The metrics of :func:`evaluate`, written out with the reference matcher ``ref_match``."""
    ranked = []
    for key, (boxes, scores) in dets.items():
        tp = ref_match(boxes, scores, gt.get(key, []), thr)
        ranked += [(scores[i], len(ranked) + i, tp[i]) for i in range(len(boxes))]
    ranked.sort(key=lambda e: (-e[0], e[1]))
    n_gt = sum(len(v) for v in gt.values())
    recall, precision, cum_fp = [], [], []
    n_tp = n_fp = 0
    for _, _, is_tp in ranked:
        n_tp += is_tp
        n_fp += not is_tp
        recall.append(n_tp / n_gt if n_gt else math.nan)
        precision.append(n_tp / (n_tp + n_fp))
        cum_fp.append(n_fp)
    if not n_gt:
        return dict(ap=math.nan, n_tp=n_tp, n_fp=n_fp, n_gt=0)
    ap, prev = 0.0, 0.0
    for k, r in enumerate(recall):
        if r > prev:
            ap += (r - prev) * max(precision[k:])
            prev = r
    rfp = {n: max([0.0] + [r for r, f in zip(recall, cum_fp) if f <= n]) for n in fp_points}
    rp = {p: max([0.0] + [r for r, q in zip(recall, precision) if q >= p]) for p in precisions}
    return dict(ap=ap, rfp=rfp, rp=rp, max_recall=max([0.0] + recall), n_tp=n_tp, n_fp=n_fp, n_gt=n_gt)


def random_case(seed, random_box, jitter):
    """Random detections and ground truth (dicts of box lists) with duplicate boxes and tied scores."""
    rng = random.Random(seed)
    gt, dets = {}, {}
    for i in range(rng.randint(0, 8)):
        key = f"dir/img{i}.jpg"
        boxes = [random_box(rng) for _ in range(rng.randint(0, 4))]
        if boxes and rng.random() < 0.3:
            boxes.append(list(boxes[0]))  # duplicate GT: equal IoUs
        if rng.random() < 0.8:
            gt[key] = boxes
        if rng.random() < 0.8:
            d = [jitter(rng, b) for b in boxes if rng.random() < 0.7]
            d += [jitter(rng, rng.choice(boxes)) for _ in range(rng.randint(0, 2)) if boxes]
            d += [random_box(rng) for _ in range(rng.randint(0, 3))]
            dets[key] = (d, [rng.choice([-2.5, -0.5, 0.0, 0.25, 0.25, 1.0, 7.0]) for _ in d])  # ties
    return dets, gt


def np_case(dets, gt):
    """``random_case``'s lists as the arrays :func:`evaluate` takes."""
    return (
        {k: (np.array(b, float).reshape(-1, 4), np.array(s, float)) for k, (b, s) in dets.items()},
        {k: np.array(v, float).reshape(-1, 4) for k, v in gt.items()},
    )


@pytest.mark.parametrize("seed", range(40))
def test_against_reference(seed, reference):
    dets, gt = random_case(seed, reference.random_box, reference.jitter)
    thresholds, fp_points, precisions = (0.3, 0.5, 0.7), (0, 1, 2, 5), (0.25, 0.5, 0.75, 1.0)
    report = evaluate(*np_case(dets, gt), thresholds, fp_points, precisions)
    for t, r in zip(thresholds, report.results):
        ref = ref_evaluate(reference.match, dets, gt, t, fp_points, precisions)
        assert (r.n_tp, r.n_fp, r.n_gt) == (ref["n_tp"], ref["n_fp"], ref["n_gt"])
        if ref["n_gt"] == 0:
            assert math.isnan(r.ap)
            continue
        assert r.ap == pytest.approx(ref["ap"], abs=1e-12)
        assert r.recall_at_fp == pytest.approx(ref["rfp"], abs=1e-12)
        assert r.recall_at_precision == pytest.approx(ref["rp"], abs=1e-12)
        assert r.max_recall == pytest.approx(ref["max_recall"], abs=1e-12)
    for im in report.images:
        if im.image is None:
            continue
        boxes, scores = dets[im.image]
        for t in thresholds:
            tp = reference.match(boxes, scores, gt.get(im.image, []), t)
            assert (im.tp[t], im.fp[t]) == (sum(tp), len(tp) - sum(tp))
