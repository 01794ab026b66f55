"""The face nets trained by ``fcndetect train --recipe configs/train/face.toml`` and shipped in the package:
plain state dicts of MTCNN's architectures that the ``face-wider`` preset runs; a slow guard of its accuracy on
the development sets (AP at IoU 0.3, threshold 0.5, ranked by logits)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from fcndetect import Detector
from fcndetect.models.mtcnn import mtcnn_net_kind, shipped_weights_path
from fcndetect.train.recipe import read_recipe

#: a little under what benchmarks/face_training.py measured (benchmarks/results/face_training.md)
AP_FLOOR = {"dev_faces": 0.98, "afw_dev": 0.96}
REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name, net", [("face-wider-pnet", "pnet"), ("face-wider-rnet", "rnet"), ("face-wider", "onet")])
def test_shipped_weights_are_plain_state_dicts_of_the_nets(name: str, net: str) -> None:
    state = torch.load(shipped_weights_path(name), map_location="cpu", weights_only=True)
    assert all(isinstance(v, torch.Tensor) and v.dtype == torch.float32 for v in state.values())
    assert mtcnn_net_kind(state) == net


def test_the_preset_is_the_shipped_cascade_and_the_recipe_parses() -> None:
    det = Detector("face-wider")
    assert det.config.chain == "face-wider-pnet > face-wider-rnet > face-wider"
    recipe = read_recipe(REPO / "configs" / "train" / "face.toml")
    assert [s.net for s in recipe.stages] == ["pnet", "rnet", "onet"]
    assert list(recipe.detector["stage_thresholds"]) == list(det.config.stage_thresholds)


def _ap(config: str, name: str) -> float:
    from fcndetect.evaluate import evaluate, load_annotations
    from fcndetect.io.images import load_image

    folder = REPO.parent / "shared" / "data" / name
    if not folder.is_dir():
        pytest.skip(f"../shared/data/{name} is not available")
    files = [folder / "training.xml", folder / "testing.xml"] if name == "dev_faces" else [folder / "ground_truth.txt"]
    gt = {k: v for f in files for k, v in load_annotations(f).items()}
    det = Detector(config, threshold=0.5)
    out = {}
    for key in sorted(gt):
        d = det(load_image(folder / key))
        out[key] = (d.boxes.astype(np.float64), d.logits.astype(np.float64))
    return evaluate(out, gt, iou_thresholds=(0.3,)).to_json()["results"][0]["ap"]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["dev_faces", "afw_dev"])
def test_trained_cascade_keeps_its_accuracy(name: str) -> None:
    assert _ap("face-wider", name) >= AP_FLOOR[name]
