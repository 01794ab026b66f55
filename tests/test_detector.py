"""The detector end to end: the astronaut's face, API input types, score maps, dev-set accuracy."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.ops import box_iou

import oracles
from fcndetect import Detector
from fcndetect.config import ConfigError
from fcndetect.detector import DeviceError
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


def test_raw_windows_are_nms_avg_means_of_the_maps_windows(samples):
    """Without regression, every detection is the mean of the windows of one NMS-avg cluster: rebuilt here
    from the returned score maps with the plain-Python oracle, on the real O-Net output."""
    det = Detector(model="face", regress=False, threshold=0.9)
    dets = det(samples / "astronaut.png", return_maps=True)
    assert _iou(dets.boxes[0].tolist(), ASTRONAUT_FACE) >= 0.4
    boxes, keys, labels = [], [], []
    for sm in dets.score_maps:
        g, i, j = np.nonzero(sm.scores > 0.9)
        boxes += cells_to_boxes(torch.from_numpy(i), torch.from_numpy(j), sm.geometry, (sm.sx, sm.sy)).tolist()
        keys += sm.logits[g, i, j].tolist()
        labels += g.tolist()
    ref = oracles.nms_avg(boxes, keys, labels, det.config.nms_iou)
    assert len(ref) == len(dets) and any(r[3] > 1 for r in ref)  # some clusters really average windows
    for (mean, key, *_), box, logit in zip(ref, dets.boxes.tolist(), dets.logits.tolist()):
        clipped = [min(max(v, 0.0), 512.0) for v in mean]
        assert box == pytest.approx(clipped, abs=1e-3) and logit == pytest.approx(key)


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
    det = Detector(model="face", regress=False, threshold=0.99, nms="max")
    dets = det(samples / "astronaut.png", return_maps=True)
    assert dets.score_maps and len(dets.score_maps) == len(det.levels(512, 512))
    g = det.geometry
    hits = []
    for sm in dets.score_maps:
        i, j = np.nonzero(sm.scores[0] > 0.99)
        hits.append(cells_to_boxes(torch.from_numpy(i), torch.from_numpy(j), g, (sm.sx, sm.sy)))
    hits_t = torch.cat(hits)
    assert hits_t.shape[0] >= len(dets)
    assert box_iou(hits_t, torch.from_numpy(dets.boxes)).max(dim=1).values.min() > 0.3


def test_max_det_keeps_the_best_logits(samples):
    full = Detector(model="face", threshold=0.5)(samples / "astronaut.png")
    dets = Detector(model="face", threshold=0.5, max_det=2)(samples / "astronaut.png")
    assert len(full) > 2 and len(dets) == 2 and (dets.scores > 0.5).all()
    assert np.all(np.diff(full.logits) <= 0)
    np.testing.assert_array_equal(dets.logits, full.logits[:2])
    np.testing.assert_allclose(dets.scores, 1 / (1 + np.exp(-dets.logits.astype(np.float64))), rtol=1e-6)


def test_upsampling_is_capped_with_a_clear_error():
    with pytest.raises(ConfigError, match=r"min_size 1 would upsample images 48.0x .* smallest min_size is 12"):
        Detector(model="face", min_size=1)
    with pytest.raises(ConfigError, match=r"12 px window of model face-pnet; the smallest min_size is 3"):
        Detector(min_size=2)  # the cascade's pyramid is its first stage's


def test_missing_cuda_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(DeviceError, match="CUDA is not available"):
        Detector(device="cuda")


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


@pytest.mark.slow  # accuracy guard on dev_faces
def test_dev_faces_recall_false_positives_and_distinct_ranking_keys(face_detector, dev_faces):
    """Default preset on dev_faces: all 43 faces at IoU >= 0.4 with <= 3 false positives in total, and the
    written logits (4 decimals) rank the 40 best detections without a tie, where written scores cannot."""
    from fcndetect.evaluate import match_image

    gt = {**_load_imglab(dev_faces / "training.xml"), **_load_imglab(dev_faces / "testing.xml")}
    n_gt = n_tp = n_fp = 0
    written = []
    for name, boxes in sorted(gt.items()):
        dets = face_detector(dev_faces / name)
        tp = match_image(dets.boxes, dets.logits, np.array(boxes).reshape(-1, 4), 0.4)
        n_gt += len(boxes)
        n_tp += int(tp.sum())
        n_fp += int((~tp).sum())
        written += dets.to_records()
    print(f"dev_faces: {n_tp}/{n_gt} faces found ({n_tp / n_gt:.1%}) at IoU>=0.4, {n_fp} false positives")
    assert n_gt == 43
    assert n_tp == 43
    assert n_fp <= 3
    top = sorted(written, key=lambda r: -r["logit"])[:40]
    assert len(top) == 40 and len({r["logit"] for r in top}) == 40
    assert len({r["score"] for r in top}) < 40  # the saturated probabilities do tie: the reason for logits


@pytest.mark.parametrize("config", [None, "face"])
def test_astronaut_landmarks_are_where_a_face_has_them(samples, config):
    """Default cascade and dense O-Net: both eyes above the nose, the nose above both mouth corners, left
    before right as seen in the image, all five inside the box."""
    dets = Detector(config)(samples / "astronaut.png")
    assert dets.landmarks is not None and dets.landmarks.shape == (len(dets), 5, 2)
    (lex, ley), (rex, rey), (nx, ny), (lmx, lmy), (rmx, rmy) = dets.landmarks[0].tolist()
    x1, y1, x2, y2 = dets.boxes[0].tolist()
    assert max(ley, rey) < ny < min(lmy, rmy)
    assert lex < nx < rex and lmx < rmx
    assert all(x1 <= x <= x2 and y1 <= y <= y2 for x, y in dets.landmarks[0].tolist())
    assert len(dets.to_records()[0]["landmarks"]) == 5


def test_models_without_a_landmark_head_have_none(samples):
    assert Detector(model="face-rnet")(samples / "astronaut.png").landmarks is None


#: Modules the face cascade never uses: torchvision's package (its __init__ imports every architecture and,
#: through torchvision.ops, torch._dynamo), torch's compiler, and every optional dependency.
NOT_FOR_THE_CASCADE = ("torchvision", "torchvision.models", "torch._dynamo", "torch._inductor", "sympy", "ray",
                       "onnx", "onnxruntime", "matplotlib", "pycocotools", "yuface", "dlib", "av",
                       "facenet_pytorch", "scipy", "pandas")


def test_default_detector_imports_only_what_it_uses(samples):
    """`import fcndetect`, building `Detector()` and detecting (cascade crops, NMS) import none of
    :data:`NOT_FOR_THE_CASCADE` (each costs start-up time the command waits for), in a fresh process."""
    import json
    import subprocess
    import sys

    code = ("import json, sys\n"
            "def loaded(): return sorted(m for m in json.loads(sys.argv[1]) if m in sys.modules)\n"
            "import fcndetect\nafter_import = loaded()\n"
            "from fcndetect import Detector\nfrom fcndetect.io.images import load_image\n"
            "det = Detector()\nafter_build = loaded()\n"
            "dets = det(load_image(sys.argv[2]))\n"
            "print(json.dumps([after_import, after_build, loaded(), len(dets)]))\n")
    p = subprocess.run([sys.executable, "-c", code, json.dumps(NOT_FOR_THE_CASCADE), str(samples / "astronaut.png")],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    after_import, after_build, after_detect, n = json.loads(p.stdout)
    assert after_import == [] and after_build == [] and after_detect == []
    assert n >= 1  # the cascade ran (crops and NMS through torchvision's operators)
