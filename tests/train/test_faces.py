"""Cascade training data: WIDER's ignore rule, MTCNN's window labels and regression targets against plain-Python
oracles, the photo split, and the WIDER listing reader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from fcndetect.boxes import refine_boxes
from fcndetect.train.data import TrainDataError
from fcndetect.train.faces import (
    DROPPED, NEGATIVE, PART, POSITIVE, FacePhoto, ignore_mask, jitter_windows, label_windows, random_negatives,
    read_face_photos, regression_targets, split_photos,
)
from oracles import iou


def _photo(boxes, ignore) -> FacePhoto:
    return FacePhoto("x.jpg", np.asarray(boxes, np.float64).reshape(-1, 4), np.asarray(ignore, bool))


def test_ignore_rule_marks_invalid_and_tiny_boxes() -> None:
    boxes = np.array([[0, 0, 30, 30], [0, 0, 10, 40], [0, 0, 40, 15.9], [5, 5, 50, 50]], np.float64)
    got = ignore_mask(boxes, np.array([False, False, False, True]), min_face=16)
    assert got.tolist() == [False, True, True, True]


def test_label_windows_follow_mtcnn_iou_bands_and_never_use_ignored_faces() -> None:
    face, tiny = [100, 100, 140, 140], [300, 300, 310, 310]
    photo = _photo([face, tiny], [False, True])
    windows = np.array([
        [100, 100, 140, 140],  # the face: positive
        [104, 100, 144, 140],  # IoU 36/44 = 0.82: positive
        [115, 100, 155, 140],  # IoU 25/55 = 0.45: part
        [125, 100, 165, 140],  # IoU 15/65 = 0.23: dropped? no: < 0.3 with every box -> negative
        [120, 100, 160, 140],  # IoU 20/60 = 0.33: neither
        [299, 299, 311, 311],  # the ignored face itself: never a negative, never a positive
        [0, 0, 40, 40],        # background
        [280, 280, 330, 330],  # contains the ignored face at IoU 0.04: background at that scale
    ], np.float64)
    labels, targets = label_windows(windows, photo)
    for w, lab in zip(windows, labels):
        best = max(iou(w, face), 0.0)
        if lab == POSITIVE:
            assert best >= 0.65
        elif lab == PART:
            assert 0.4 <= best < 0.65
        elif lab == NEGATIVE:
            assert best < 0.3 and iou(w, tiny) < 0.3
    assert labels.tolist() == [POSITIVE, POSITIVE, PART, NEGATIVE, DROPPED, DROPPED, NEGATIVE, NEGATIVE]
    assert np.allclose(targets[labels == NEGATIVE], 0)


def test_regression_targets_are_what_refine_boxes_undoes() -> None:
    rng = np.random.default_rng(3)
    xy = rng.uniform(0, 100, (20, 2))
    side = rng.uniform(10, 60, (20, 1))
    windows = np.concatenate([xy, xy + side], 1)
    faces = windows + rng.uniform(-5, 5, (20, 4))
    t = regression_targets(windows, faces)
    np.testing.assert_allclose(refine_boxes(torch.from_numpy(windows), torch.from_numpy(t)).numpy(), faces, atol=1e-9)
    # oracle for one: (face x1 - window x1) / window side
    assert t[0, 0] == pytest.approx((faces[0, 0] - windows[0, 0]) / side[0, 0])


def test_label_windows_targets_point_at_the_best_face() -> None:
    photo = _photo([[0, 0, 40, 40], [100, 100, 150, 150]], [False, False])
    windows = np.array([[2, 2, 42, 42], [98, 102, 148, 152]], np.float64)
    labels, targets = label_windows(windows, photo)
    assert labels.tolist() == [POSITIVE, POSITIVE]
    np.testing.assert_allclose(targets[1], np.array([2, -2, 2, -2]) / 50, atol=1e-6)


def test_jitter_and_random_negatives_respect_the_rule() -> None:
    photo = _photo([[50, 60, 90, 110], [200, 40, 205, 46]], [False, True])
    rng = np.random.default_rng(0)
    jit = jitter_windows(photo, rng, per_face=6, shift=0.2, scale=0.25)
    assert jit.shape == (6, 4)
    np.testing.assert_allclose(jit[:, 2] - jit[:, 0], jit[:, 3] - jit[:, 1])  # square
    neg = random_negatives(photo, (320, 240), rng, count=40, min_side=20)
    assert len(neg) == 40
    for w in neg:
        assert iou(w, photo.boxes[0]) < 0.3 and iou(w, photo.boxes[1]) < 0.3
        assert w[0] >= 0 and w[1] >= 0 and w[2] <= 320 and w[3] <= 240 and w[2] - w[0] >= 20


def test_split_by_photo_is_seeded_and_disjoint() -> None:
    photos = [_photo([[0, 0, 20, 20]], [False]) for _ in range(30)]
    for k, p in enumerate(photos):
        p.path = f"{k}.jpg"
    a_train, a_val = split_photos(photos, 0.2, seed=5)
    b_train, b_val = split_photos(photos, 0.2, seed=5)
    assert [p.path for p in a_val] == [p.path for p in b_val] and len(a_val) == 6
    assert not {p.path for p in a_train} & {p.path for p in a_val}
    assert {p.path for p in split_photos(photos, 0.2, seed=6)[1]} != {p.path for p in a_val}


def test_read_wider_listing_keeps_invalid_flags(tmp_path: Path, samples: Path) -> None:
    img = samples / "astronaut.png"
    (tmp_path / "gt.txt").write_text(
        f"{img}\n3\n181 62 87 110 0 0 0 0 0 0 \n10 10 8 8 0 0 0 0 0 0 \n300 300 40 40 0 0 0 1 0 0 \n"
        f"{img}\n0\n0 0 0 0 0 0 0 0 0 0 \n")
    photos = read_face_photos([str(tmp_path / "gt.txt")], min_face=16)
    assert len(photos) == 2 and len(photos[1].boxes) == 0
    np.testing.assert_allclose(photos[0].boxes[0], [181, 62, 268, 172])
    assert photos[0].ignore.tolist() == [False, True, True]


def test_read_face_photos_names_a_missing_photo(tmp_path: Path) -> None:
    (tmp_path / "gt.txt").write_text("nope.jpg\n1\n1 1 30 30 0 0 0 0 0 0 \n")
    with pytest.raises(TrainDataError, match="nope.jpg"):
        read_face_photos([str(tmp_path / "gt.txt")], min_face=16)
