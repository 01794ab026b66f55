"""Tests of fcndetect.evaluate.matching: images to ground-truth keys, detections to boxes."""

from __future__ import annotations

import random

import numpy as np
import pytest

from fcndetect.evaluate import AmbiguousMatchError, box_iou, match_image, match_images


@pytest.mark.parametrize("seed", range(10))
def test_match_image_against_reference(seed, reference):
    rng = random.Random(1000 + seed)
    gt = [reference.random_box(rng) for _ in range(rng.randint(0, 5))]
    boxes = [reference.jitter(rng, rng.choice(gt)) if gt and rng.random() < 0.7 else reference.random_box(rng)
             for _ in range(8)]  # fmt: skip
    scores = [rng.choice([-1.0, 0.0, 0.5, 0.5, 2.0]) for _ in boxes]
    for t in (0.1, 0.5, 0.9):
        got = match_image(np.array(boxes, float), np.array(scores), np.array(gt, float).reshape(-1, 4), t)
        assert got.tolist() == reference.match(boxes, scores, gt, t)


def test_box_iou():
    a = np.array([[0, 0, 10, 10], [0, 0, 0, 0]], float)
    b = np.array([[5, 0, 15, 10], [0, 0, 10, 10], [20, 20, 30, 30], [0, 0, 0, 0]], float)
    iou = box_iou(a, b)
    assert iou.shape == (2, 4)
    assert iou[0].tolist() == pytest.approx([50 / 150, 1.0, 0.0, 0.0])
    assert iou[1].tolist() == [0.0, 0.0, 0.0, 0.0]
    assert box_iou(np.zeros((0, 4)), b).shape == (0, 4)


def test_match_image_takes_next_best_unmatched_gt():
    gt = np.array([[0, 0, 10, 10], [2, 0, 12, 10]], float)
    dets = np.array([[0, 0, 10, 10], [1, 0, 11, 10]], float)
    # det 0 takes gt 0 (IoU 1); det 1's best gt 0 is taken, gt 1 (IoU 9/11) is next: TP.
    assert match_image(dets, np.array([0.9, 0.8]), gt, 0.5).tolist() == [True, True]
    # det 1 goes first and has IoU 9/11 with both boxes: the tie goes to gt 0; det 0 is left with gt 1 at
    # IoU 8/12 < 0.7: FP.
    assert match_image(dets, np.array([0.1, 0.8]), gt, 0.7).tolist() == [False, True]


@pytest.mark.parametrize(
    "det, gt_keys, expected",
    [
        ("a/b.jpg", ["a/b.jpg", "b.jpg"], "a/b.jpg"),  # exact
        ("./a/b.jpg", ["x/b.jpg", "a/b.jpg"], "a/b.jpg"),  # exact after './' removal
        ("a\\b.jpg", ["a/b.jpg"], "a/b.jpg"),  # Windows separators
        ("a/b.jpg", ["./a/b.jpg"], "./a/b.jpg"),  # returns the key as given
        ("/data/WIDER_val/images/0--Parade/x.jpg", ["1--Other/x.jpg", "0--Parade/x.jpg"], "0--Parade/x.jpg"),  # suffix
        ("/data/p/q/r/x.jpg", ["q/r/x.jpg", "r/x.jpg", "z/r/x.jpg"], "q/r/x.jpg"),  # longest suffix
        ("/tmp/x.jpg", ["imgs/x.jpg", "imgs/y.jpg"], "imgs/x.jpg"),  # file name
        ("/data/fddb/2002/08/11/big/img_591.jpg", ["2002/08/11/big/img_591", "2002/08/12/big/img_591"],
         "2002/08/11/big/img_591"),  # stem, FDDB style
        ("img_591.jpg", ["2002/08/11/big/img_591"], "2002/08/11/big/img_591"),  # stem
        ("d/x.jpg", ["x.png", "e/x.jpg"], "e/x.jpg"),  # same name beats same stem
        ("/tmp/nothing.jpg", ["imgs/x.jpg"], None),  # no match
        ("/tmp/x.jpg", [], None),
    ],
)  # fmt: skip
def test_match_images(det, gt_keys, expected):
    assert match_images([det], gt_keys) == {det: expected}


def test_match_images_ambiguous_name():
    gt = ["a/x.jpg", "b/x.jpg", "c/y.jpg"]
    with pytest.raises(AmbiguousMatchError) as info:
        match_images(["/tmp/x.jpg", "/tmp/y.jpg"], gt)
    assert info.value.ambiguous == {"/tmp/x.jpg": ["a/x.jpg", "b/x.jpg"]}
    lenient = match_images(["/tmp/x.jpg", "/tmp/y.jpg"], gt, ambiguous="none")
    assert lenient == {"/tmp/x.jpg": None, "/tmp/y.jpg": "c/y.jpg"}
    # A longer suffix resolves it.
    assert match_images(["/tmp/b/x.jpg"], gt) == {"/tmp/b/x.jpg": "b/x.jpg"}


def test_match_images_competing_detection_images():
    # Two detection images with the same name, one ground-truth key: the exact match wins, the other has no GT.
    assert match_images(["x.jpg", "b/x.jpg"], ["x.jpg"]) == {"x.jpg": "x.jpg", "b/x.jpg": None}
    # The longer suffix wins.
    assert match_images(["/d/a/x.jpg", "/d/b/x.jpg"], ["a/x.jpg"]) == {"/d/a/x.jpg": "a/x.jpg", "/d/b/x.jpg": None}
    # Equally good: ambiguous.
    with pytest.raises(AmbiguousMatchError):
        match_images(["a/x.jpg", "b/x.jpg"], ["x.jpg"])
    assert match_images(["a/x.jpg", "b/x.jpg"], ["x.jpg"], ambiguous="none") == {"a/x.jpg": None, "b/x.jpg": None}
