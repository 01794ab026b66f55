"""The detector end to end: the astronaut's face, API input types, score maps, dev-set accuracy (slow)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.ops import box_iou

from fcndetect import Detector
from fcndetect.geometry import cells_to_boxes

ASTRONAUT_FACE = [181.0, 62.0, 268.0, 172.0]


def _iou(a, b) -> float:
    return float(box_iou(torch.tensor([a], dtype=torch.float64), torch.tensor([b], dtype=torch.float64))[0, 0])


def test_astronaut_best_detection_is_the_face(face_detector, samples):
    dets = face_detector(samples / "astronaut.png")
    assert len(dets) >= 1
    best = int(np.argmax(dets.scores))
    assert _iou(dets.boxes[best].tolist(), ASTRONAUT_FACE) >= 0.4
    assert dets.label_names[best] == "face"
    assert dets.image_size == (512, 512)


def test_raw_windows_still_find_the_face(samples):
    det = Detector(regress=False)
    dets = det(samples / "astronaut.png")
    assert _iou(dets.boxes[0].tolist(), ASTRONAUT_FACE) >= 0.4
    # without regression every box is an NMS-avg mean of windows of the pyramid's sizes
    assert dets.boxes.shape[1] == 4


def test_input_types_agree(face_detector, samples):
    path = samples / "astronaut.png"
    pil = Image.open(path).convert("RGB")
    arr = np.array(pil)
    ref = face_detector(path)
    for other in (
        face_detector(pil),
        face_detector(arr),
        face_detector(np.ascontiguousarray(arr[:, :, ::-1]), bgr=True),
        face_detector(torch.from_numpy(arr).permute(2, 0, 1)),
    ):
        np.testing.assert_array_equal(other.boxes, ref.boxes)
        np.testing.assert_array_equal(other.scores, ref.scores)


def test_score_maps_match_boxes(face_detector, samples):
    """A raw (no-NMS) view: every cell above threshold maps to a window box that overlaps a detection."""
    det = Detector(regress=False, threshold=0.99, nms="max")
    dets = det(samples / "astronaut.png", return_maps=True)
    assert dets.score_maps and len(dets.score_maps) == len(det.levels(512, 512))
    g = det.model.dense.geometry
    hits = []
    for sm in dets.score_maps:
        i, j = np.nonzero(sm.scores[0] > 0.99)
        hits.append(cells_to_boxes(torch.from_numpy(i), torch.from_numpy(j), g, (sm.sx, sm.sy)))
    hits_t = torch.cat(hits)
    assert hits_t.shape[0] >= len(dets)
    assert box_iou(hits_t, torch.from_numpy(dets.boxes)).max(dim=1).values.min() > 0.3


def test_max_det_and_threshold(samples):
    det = Detector(threshold=0.5, max_det=2)
    dets = det(samples / "astronaut.png")
    assert len(dets) <= 2 and (dets.scores > 0.5).all()
    assert np.all(np.diff(dets.scores) <= 0)


def test_no_faces_in_coffee(face_detector, samples):
    assert len(face_detector(samples / "coffee.png")) == 0


def test_tiny_image_gives_no_detections(face_detector):
    dets = face_detector(np.zeros((10, 10, 3), np.uint8))
    assert len(dets) == 0 and dets.image_size == (10, 10)


def _load_imglab(path):
    gt = {}
    for im in ET.parse(path).getroot().iter("image"):
        gt[im.get("file")] = [
            [float(b.get("left")), float(b.get("top")),
             float(b.get("left")) + float(b.get("width")), float(b.get("top")) + float(b.get("height"))]
            for b in im.iter("box")
        ]
    return gt


@pytest.mark.slow
def test_dev_faces_recall_and_false_positives(face_detector, dev_faces):
    """Default preset on dev_faces: >= 95% of 43 faces at IoU >= 0.4 with <= 10 false positives in total."""
    from fcndetect.evaluate import match_image

    gt = {**_load_imglab(dev_faces / "training.xml"), **_load_imglab(dev_faces / "testing.xml")}
    n_gt = n_tp = n_fp = 0
    for name, boxes in sorted(gt.items()):
        dets = face_detector(dev_faces / name)
        tp = match_image(dets.boxes, dets.scores, np.array(boxes).reshape(-1, 4), 0.4)
        n_gt += len(boxes)
        n_tp += int(tp.sum())
        n_fp += int((~tp).sum())
    print(f"dev_faces: {n_tp}/{n_gt} faces found ({n_tp / n_gt:.1%}) at IoU>=0.4, {n_fp} false positives")
    assert n_gt == 43
    assert n_tp / n_gt >= 0.95
    assert n_fp <= 10
