"""Training windows: crops against slicing and block means, DDFD's IoU rule against the plain-Python IoU."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from fcndetect.train.data import (
    TrainDataError, box_iou, crop_window, jitter_boxes, random_boxes, random_windows, read_annotated, read_crops, read_photos,
    square_box, Photo,
)
from oracles import iou


def _image(h: int = 60, w: int = 80, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("x, y, size", [(0, 0, 20), (13, 7, 16), (60, 40, 20)])
def test_crop_window_same_size_is_a_slice(x: int, y: int, size: int) -> None:
    img = _image()
    np.testing.assert_array_equal(crop_window(img, [x, y, x + size, y + size], size), img[y:y + size, x:x + size])


def test_crop_window_outside_replicates_the_border() -> None:
    img = _image()
    padded = np.pad(img, ((10, 10), (10, 10), (0, 0)), mode="edge")
    np.testing.assert_array_equal(crop_window(img, [-5, -8, 15, 12], 20), padded[2:22, 5:25])


def test_crop_window_halving_averages_blocks() -> None:
    img = _image()
    got = crop_window(img, [10, 20, 42, 52], 16).astype(float)
    blocks = img[20:52, 10:42].astype(float).reshape(16, 2, 16, 2, 3).mean(axis=(1, 3))
    assert np.abs(got - blocks).max() <= 1.0


@pytest.mark.parametrize("box", [[0, 0, 10, 4], [5, 5, 6, 20], [2, 3, 12, 13]])
def test_square_box_keeps_centre_and_longer_side(box: list[float]) -> None:
    sq = square_box(np.array(box, float))
    side = max(box[2] - box[0], box[3] - box[1])
    assert sq[2] - sq[0] == pytest.approx(side) and sq[3] - sq[1] == pytest.approx(side)
    assert (sq[0] + sq[2]) / 2 == pytest.approx((box[0] + box[2]) / 2)


def test_box_iou_matches_oracle() -> None:
    rng = np.random.default_rng(1)
    a = np.sort(rng.uniform(0, 50, (5, 2, 2)), axis=1).transpose(0, 2, 1).reshape(5, 4)[:, [0, 2, 1, 3]]
    b = a[::-1] + 3
    got = box_iou(a, b)
    for i in range(5):
        for j in range(5):
            assert got[i, j] == pytest.approx(iou(list(a[i]), list(b[j])), abs=1e-9)


def test_jitter_boxes_follow_ddfd_iou_rule() -> None:
    boxes = np.array([[10, 10, 40, 50], [100, 20, 130, 45]], float)
    pos, neg = jitter_boxes(boxes, np.random.default_rng(0), per_object=40, jitter=0.4)
    squares = [list(b) for b in square_box(boxes)]
    assert len(pos) >= 2 and len(neg) >= 1
    for w in pos:
        assert max(iou(list(w), s) for s in squares) >= 0.5
    for w in neg:
        assert max(iou(list(w), s) for s in squares) <= 0.3
    np.testing.assert_allclose(pos[0], squares[0])  # the first copy of each object is the squared box


def test_random_boxes_avoid_objects_and_repeat_with_the_seed() -> None:
    photos = [Photo("a", _image(80, 80), np.array([[20, 20, 60, 60]], float)), Photo("b", _image(30, 50), np.zeros((0, 4)))]
    got = random_boxes(photos, 60, np.random.default_rng(3), min_side=12)
    again = random_boxes(photos, 60, np.random.default_rng(3), min_side=12)
    assert [(i, list(b)) for i, b in got] == [(i, list(b)) for i, b in again]
    assert {i for i, _ in got} == {0, 1}
    for i, b in got:
        h, w = photos[i].image.shape[:2]
        assert 0 <= b[0] and 0 <= b[1] and b[2] <= w and b[3] <= h
        assert b[2] - b[0] == pytest.approx(b[3] - b[1]) and b[2] - b[0] >= 12 - 1e-9
        if i == 0:
            assert iou(list(b), [20, 20, 60, 60]) <= 0.3
    windows = random_windows(photos, 60, 12, np.random.default_rng(3), min_side=12)
    np.testing.assert_array_equal(windows[5], crop_window(photos[got[5][0]].image, got[5][1], 12))


def _save(path, arr: np.ndarray) -> str:
    Image.fromarray(arr).save(path)
    return str(path)


def test_read_crops_detects_grayscale_and_squares(tmp_path) -> None:
    folder = tmp_path / "pos"
    folder.mkdir()
    _save(folder / "a.png", _image(30, 40))
    _save(folder / "b.png", _image(24, 24)[..., 0])  # single channel
    windows, paths, gray = read_crops(str(folder), 20)
    assert windows.shape == (2, 20, 20, 3) and gray and len(paths) == 2


@pytest.mark.parametrize("case, message", [
    ("small", "smaller than the 20 px input size"),
    ("empty", "no image files"),
    ("broken", "pos/x.jpg: positives:"),
])
def test_read_crops_errors_name_the_file(tmp_path, case: str, message: str) -> None:
    folder = tmp_path / "pos"
    folder.mkdir()
    if case == "small":
        _save(folder / "a.png", _image(12, 30))
    elif case == "broken":
        (folder / "x.jpg").write_text("not an image")
    with pytest.raises(TrainDataError, match=message.replace("/", ".")):
        read_crops(str(folder), 20)


def test_read_photos_and_annotations(tmp_path) -> None:
    _save(tmp_path / "p.png", _image(60, 80))
    (tmp_path / "gt.txt").write_text("p.png 10 10 40 40\n")
    photos, gray = read_annotated([str(tmp_path / "gt.txt")], 16)
    assert len(photos) == 1 and photos[0].boxes.shape == (1, 4) and not gray
    assert read_photos([str(tmp_path / "p.png")])[0].image.shape == (60, 80, 3)
    (tmp_path / "bad.xml").write_text("<dataset><images><image file='p.png'><box top='x'/></image>")
    with pytest.raises(TrainDataError, match="bad.xml: positives"):
        read_annotated([str(tmp_path / "bad.xml")], 16)
