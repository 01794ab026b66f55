"""Annotated images and heatmaps: sizes follow the box, labels never cover the object, a colour scale."""

from __future__ import annotations

import numpy as np
import pytest

from fcndetect.detections import Detections, ScoreMap
from fcndetect.geometry import Geometry
from fcndetect.io.draw import draw_detections, heatmap_overlay, label_style


def _dets(boxes, size, scores=None) -> Detections:
    n = len(boxes)
    return Detections(np.array(boxes, np.float32), np.array(scores or [0.99] * n, np.float32),
                      np.zeros(n, np.int64), ("face",), size)


def test_style_follows_the_box_not_the_image():
    small_thick, small_font = label_style(20)
    big_thick, big_font = label_style(400)
    assert small_thick == 1 and big_thick == 10
    assert big_font > small_font * 2  # 24 px text cap against the 9 px floor
    assert label_style(100)[1] == pytest.approx(label_style(100)[1])


@pytest.mark.parametrize("box", [[100, 100, 130, 130], [2000, 1500, 2024, 1524], [10, 0, 60, 50]])
def test_labels_never_cover_the_box_interior(box):
    image = np.full((3000, 5000, 3), 128, np.uint8)
    out = draw_detections(image, _dets([box], (5000, 3000)))
    x1, y1, x2, y2 = box
    thick, _ = label_style(min(x2 - x1, y2 - y1))
    inner = out[y1 + thick + 1 : y2 - thick - 1, x1 + thick + 1 : x2 - thick - 1]
    assert (inner == 128).all()  # nothing drawn inside the box: the face stays visible
    assert (out != 128).any(axis=2).sum() > 0
    # on a 5000x3000 photo a 24-30 px box gets a 1 px line, not an image-sized one
    if x2 - x1 <= 30:
        assert thick == 1


def test_label_goes_below_when_the_box_touches_the_top():
    image = np.full((200, 200, 3), 128, np.uint8)
    out = draw_detections(image, _dets([[50, 0, 100, 50]], (200, 200)))
    changed_rows = np.nonzero((out != 128).any(axis=(1, 2)))[0]
    assert changed_rows.max() > 52  # the label bar sits under the box


def test_heatmap_has_a_colour_scale():
    g = Geometry(stride=4, offset=0.0, window=12, receptive_field=12, rf_offset=0)
    logits = np.full((1, 10, 10), -8.0, np.float32)
    logits[0, 5, 5] = 8.0
    d = _dets([], (48, 48))
    d.score_maps = [ScoreMap(1.0, 1.0, 1.0, logits, g)]
    image = np.zeros((48, 48, 3), np.uint8)
    out = heatmap_overlay(image, d)
    assert out.shape[0] == 48 and out.shape[1] > 48
    legend = out[:, 48:]
    ramp = legend[:, legend.shape[1] // 6]  # a column through the colour ramp: red at 1 (top), blue at 0
    top, bottom = ramp[5].astype(int), ramp[-6].astype(int)
    assert top[0] > top[2] and bottom[2] > bottom[0]
    hot = out[26, 26].astype(int)  # centre of cell (5, 5): 4 * 5 + 12 / 2, score ~1
    assert hot[0] > hot[2]


def test_a_tilted_detection_is_drawn_as_its_quad():
    quad = np.array([[[100, 60], [160, 100], [120, 160], [60, 120]]], np.float32)  # a diamond-like window
    d = Detections(np.array([[60, 60, 160, 160]], np.float32), np.array([0.99], np.float32), np.zeros(1, np.int64),
                   ("face",), (300, 300), angles=np.array([30.0], np.float32), quads=quad)
    out = draw_detections(np.full((300, 300, 3), 128, np.uint8), d)
    assert (out[60, 100] != 128).any()  # a corner of the quad is drawn
    assert (out[61:64, 61:64] == 128).all()  # the axis-aligned box's corner is not


@pytest.mark.parametrize("angle,turns", [(90, 1), (180, 2), (270, 3)])
def test_heat_of_a_rotated_search_is_the_upright_heat_of_the_rotated_image(samples, angle, turns):
    """Oracle: the maps found at ``angle`` are the upright maps of the image turned by ``angle``; carried back,
    their heat is that image's heat turned back, pixel for pixel (right angles move pixels exactly)."""
    from PIL import Image

    from fcndetect import Detector
    from fcndetect.io.draw import heat_values

    image = np.asarray(Image.open(samples / "astronaut.png").convert("RGB").resize((96, 72)))
    turned = np.ascontiguousarray(np.rot90(image, turns))
    rotated = Detector("face-pnet", rotations=(float(angle),)).detect_array(image, return_maps=True)
    upright = Detector("face-pnet").detect_array(turned, return_maps=True)
    assert rotated.score_maps is not None and upright.score_maps is not None
    assert [sm.angle for sm in rotated.score_maps] == [float(angle)] * len(upright.score_maps)
    for a, b in zip(rotated.score_maps, upright.score_maps):
        np.testing.assert_array_equal(a.logits, b.logits)
    got = heat_values(rotated.score_maps, 96, 72)
    want = np.rot90(heat_values(upright.score_maps, turned.shape[1], turned.shape[0]), -turns)
    np.testing.assert_array_equal(got, want)
    assert got.max() > 0.5  # a face is there: the comparison is not of two empty maps


def test_heatmap_under_rotations_keeps_the_image_size(samples):
    from PIL import Image

    from fcndetect import Detector

    image = np.asarray(Image.open(samples / "astronaut.png").convert("RGB").resize((96, 72)))
    dets = Detector("face-pnet", rotations=(0.0, 90.0, 30.0)).detect_array(image, return_maps=True)
    assert sorted({sm.angle for sm in dets.score_maps}) == [0.0, 30.0, 90.0]
    out = heatmap_overlay(image, dets)
    assert out.shape[0] == 72 and out.shape[1] > 96
