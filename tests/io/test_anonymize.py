"""Anonymisation: regions contain their boxes, lose their detail, and nothing outside them changes."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from fcndetect.detections import Detections
from fcndetect.io.anonymize import DEFAULT_MARGIN, anonymize, region_ellipse, region_mask
from fcndetect.io.render import RenderOptions, render_image_outputs
from video_clips import laplacian_values


@pytest.fixture(scope="module")
def image(photo_small) -> np.ndarray:
    """The 256 px astronaut as an ``[H, W, 3]`` uint8 array."""
    return np.asarray(photo_small)


def _box_pixels(box, shape):
    """A box's pixels (continuous edges): those whose centres it contains."""
    h, w = shape
    ys, xs = np.mgrid[0:h, 0:w] + 0.5
    return (xs >= box[0]) & (xs <= box[2]) & (ys >= box[1]) & (ys <= box[3])


@pytest.mark.parametrize("margin", [0.0, 0.1, DEFAULT_MARGIN, 1.0])
def test_a_region_contains_its_box_and_grows_with_the_margin(margin):
    box = [30.3, 40.0, 70.6, 95.2]
    mask = region_mask((160, 120), [box], margin)
    inside = _box_pixels(box, (160, 120))
    assert mask[inside].all()
    cx, cy, a, b = region_ellipse(box, margin)
    assert (cx, cy) == pytest.approx((50.45, 67.6))
    assert a == pytest.approx(20.15 * max(1 + 2 * margin, math.sqrt(2)))
    assert b == pytest.approx(27.6 * max(1 + 2 * margin, math.sqrt(2)))
    # plain-Python oracle of the ellipse test on a few pixels
    for y, x in [(67, 50), (10, 10), (40, 30), (100, 50)]:
        inside_ellipse = ((x + 0.5 - cx) / a) ** 2 + ((y + 0.5 - cy) / b) ** 2 <= 1
        assert mask[y, x] == inside_ellipse


@pytest.mark.parametrize("method", ["blur", "pixelate", "solid"])
def test_regions_lose_detail_and_nothing_else_changes(image, method):
    boxes = np.array([[90.0, 30.0, 135.0, 88.0], [10.0, 150.0, 40.0, 190.0]])
    out = anonymize(image, boxes, method)
    mask = region_mask(image.shape[:2], boxes, DEFAULT_MARGIN)
    assert np.array_equal(out[~mask], image[~mask])  # nothing drawn, nothing outside touched
    for box in boxes:
        before, after = laplacian_values(image, box[None]), laplacian_values(out, box[None])
        if method != "pixelate":  # cells have sharp edges: their detail is gone, their edges are not
            assert after.var() <= 0.2 * before.var(), (method, after.var(), before.var())
    if method == "solid":
        assert not out[mask].any()
    if method == "pixelate":  # few distinct colours inside a region (about 8 cells across)
        x1, y1, x2, y2 = boxes[0].astype(int)
        assert len(np.unique(out[y1:y2, x1:x2].reshape(-1, 3), axis=0)) <= 81


def test_blur_grows_with_the_box():
    edge = np.zeros((400, 400, 3), np.uint8)
    edge[:, 200:] = 255  # a vertical edge through both boxes' centre

    def ramp_width(box):
        row = anonymize(edge, [box], "blur")[200, :, 0].astype(int)
        return int(((row > 5) & (row < 250)).sum())  # columns the blur turned gray

    small, large = ramp_width([180.0, 180.0, 220.0, 220.0]), ramp_width([100.0, 100.0, 300.0, 300.0])
    assert 4 <= small < large / 3  # a box 5x larger: a kernel about 5x wider


def test_bad_method_and_margin_are_refused(image):
    with pytest.raises(ValueError, match="unknown method 'smear'"):
        anonymize(image, [[0, 0, 10, 10]], "smear")
    with pytest.raises(ValueError, match="margin must be >= 0"):
        anonymize(image, [[0, 0, 10, 10]], "blur", -0.1)
    assert np.array_equal(anonymize(image, np.zeros((0, 4)), "blur"), image)
    assert np.array_equal(anonymize(image, [[-50, -50, -10, -10]], "blur"), image)  # off the image


def test_render_writes_the_anonymized_image(image):
    dets = Detections(boxes=np.array([[90.0, 30.0, 135.0, 88.0]], np.float32), scores=np.array([0.99], np.float32),
                      labels=np.zeros(1, np.int64), class_names=("face",), image_size=(256, 256))
    files = dict(render_image_outputs(image, dets, ".png", RenderOptions(anonymize="solid",
                                                                          anonymize_margin=0.5)))
    assert set(files) == {".annotated.png", ".anonymized.png"}
    import io

    hidden = np.asarray(Image.open(io.BytesIO(files[".anonymized.png"])).convert("RGB"))
    assert np.array_equal(hidden, anonymize(image, dets.boxes, "solid", 0.5))
    assert set(dict(render_image_outputs(image, dets, ".png", RenderOptions()))) == {".annotated.png"}
