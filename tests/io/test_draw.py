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


def test_label_text_tells_boxes_apart():
    from fcndetect.io.draw import label_text

    assert label_text(0.99987) == "0.9998" and label_text(0.999999) == "0.9999"  # never a rounded 1
    assert label_text(0.87654) == "0.88" and label_text(0.5, "cat") == "cat 0.50"
    assert label_text(0.9999, track=7) == "#7" and label_text(0.9, "dog", track=3) == "dog #3"
    assert label_text(0.995, track=0) == "0.9950"  # no track: the score


def _label_pixels(out, boxes, colour):
    """Pixels painted in the label colour outside every box's outline (the label bars)."""
    painted = (out == np.array(colour, np.uint8)).all(axis=2)
    for x1, y1, x2, y2 in boxes:
        painted[max(0, y1 - 1):y2 + 1, max(0, x1 - 1):x2 + 1] = False
    return painted


def test_crowded_small_faces_get_labels_that_cover_no_face_and_no_other_label():
    """A 6 x 4 grid of 30 px faces 6 px apart (a class photo): no label lies on a face or on another label;
    those that do not fit are left out rather than drawn over a neighbour."""
    boxes = [[20 + 36 * c, 20 + 36 * r, 50 + 36 * c, 50 + 36 * r] for r in range(4) for c in range(6)]
    image = np.full((200, 260, 3), 128, np.uint8)
    out = draw_detections(image, _dets(boxes, (260, 200), [0.999] * len(boxes)))
    for x1, y1, x2, y2 in boxes:  # inside every face: untouched (the anti-aliased 1 px outline aside)
        assert (out[y1 + 2:y2 - 2, x1 + 2:x2 - 2] == 128).all()
    # with ids, short labels fit above the top row and below the bottom row at least
    out = draw_detections(image, _dets(boxes, (260, 200)), tracks=np.arange(1, len(boxes) + 1))
    for x1, y1, x2, y2 in boxes:
        assert (out[y1 + 2:y2 - 2, x1 + 2:x2 - 2] == 128).all()
    assert _label_pixels(out, boxes, (0, 255, 0)).sum() > 0  # some labels are drawn


def test_labels_never_overlap_each_other():
    from fcndetect.io.draw import _place

    taken = []
    for k in range(10):  # ten boxes on one row, labels as wide as three boxes: each placed one is free
        rect = _place((10 + 20 * k, 50, 28 + 20 * k, 68), (400, 200), 1, (60, 10), taken, [])
        if rect is not None:
            assert all(not (rect[0] < r[2] and r[0] < rect[2] and rect[1] < r[3] and r[1] < rect[3]) for r in taken)
            taken.append(rect)
    assert 2 <= len(taken) < 10


def test_colour_bar_values_stay_inside_the_picture():
    from fcndetect.io.draw import _colour_scale

    for h, w in ((48, 36), (300, 36), (2000, 160)):
        panel = _colour_scale(h, w)
        text = (panel.astype(int).sum(axis=2) < 200)  # black text on the white panel
        text[:, : max(4, h // 40) + max(6, w // 4)] = False  # the colour ramp is not text
        assert text.any(), (h, w)
        assert not text[:, -1].any() and not text[-1].any() and not text[0].any(), (h, w)  # nothing cut off
