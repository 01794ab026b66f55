"""`fcndetect inspect` and `fcndetect.inspect_model`: layer tables, heads and pyramid costs against hand-computed values
and torch's FLOP counter."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner
from torch.utils.flop_counter import FlopCounterMode

from fcndetect import inspect_model
from fcndetect.cli import cli
from fcndetect.inspection import dense_flops
from fcndetect.models import load_model
from fcndetect.models.mtcnn import ONet, RNet


def _row(doc: dict, name: str) -> dict:
    return next(r for r in doc["layers"] if r["name"] == name)


def test_onet_by_hand() -> None:
    doc = inspect_model(ONet().eval(), 48, image_size=None)
    assert doc["geometry"]["stride"] == 8 and doc["geometry"]["window"] == 48
    h = doc["head"][0]
    assert (h["name"], h["in_features"], h["out_features"], h["in_shape"]) == ("dense5", 1152, 256, [128, 3, 3])
    assert h["conv"] == {"in_channels": 128, "out_channels": 256, "kernel_size": [3, 3]}
    assert doc["head"][1]["conv"]["kernel_size"] == [1, 1]
    conv1, pool1, conv2 = _row(doc, "conv1"), _row(doc, "pool1"), _row(doc, "conv2")
    assert conv1["output_shape"] == [32, 46, 46] and conv1["receptive_field"] == 3 and conv1["params"] == 3 * 9 * 32 + 32
    assert conv1["mflops"] == pytest.approx(2 * 46 * 46 * 32 * 27 / 1e6, abs=1e-4)
    assert pool1["cumulative_stride"] == 2 and pool1["receptive_field"] == 5 and pool1["kernel_size"] == [3, 3]
    assert conv2["output_shape"] == [64, 21, 21] and conv2["receptive_field"] == 9 and conv2["offset"] == 0


def test_rnet_by_hand() -> None:
    doc = inspect_model(RNet().eval(), 24, image_size=None)
    h = doc["head"][0]
    assert (h["in_features"], h["out_features"], h["in_shape"]) == (576, 128, [64, 3, 3])
    assert doc["geometry"]["stride"] == 4


@pytest.mark.slow  # VGG-16 (138M parameters)
def test_vgg16_cli_json() -> None:
    r = CliRunner().invoke(cli, ["inspect", "vgg16", "--weights", "none", "--json", "--image-size", "320x240"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["geometry"]["stride"] == 32 and doc["geometry"]["receptive_field"] == 404
    h0, h1 = doc["head"][:2]
    assert (h0["name"], h0["in_features"], h0["in_shape"]) == ("classifier.0", 25088, [512, 7, 7])
    assert h0["conv"] == {"in_channels": 512, "out_channels": 4096, "kernel_size": [7, 7]}
    assert h1["in_shape"] == [4096, 1, 1] and h1["conv"]["kernel_size"] == [1, 1]
    assert _row(doc, "features.28")["output_shape"] == [512, 14, 14]
    assert {"name", "type", "kernel_size", "stride", "padding", "output_shape", "receptive_field", "params",
            "mflops"} <= set(doc["layers"][0])


def test_user_module_by_import_path_by_hand() -> None:
    r = CliRunner().invoke(cli, ["inspect", "user_models:small", "--weights", "none", "--input-size", "32", "--json",
                                 "--image-size", "96x64"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["geometry"] == {"window": 32, "stride": 2, "offset": 0.0, "receptive_field": 32}
    assert [(x["output_shape"], x["cumulative_stride"], x["receptive_field"]) for x in doc["layers"][:4]] == [
        ([8, 28, 28], 1, 5), ([8, 28, 28], 1, 5), ([8, 14, 14], 2, 6), ([16, 12, 12], 2, 10)]
    assert doc["head"][0]["in_features"] == 2304 and doc["head"][0]["in_shape"] == [16, 12, 12]
    p = doc["pyramid"]
    assert p["windows"] == sum(lv["score_map"][0] * lv["score_map"][1] for lv in p["levels"])
    assert p["flop_ratio"] > 1


@pytest.mark.parametrize("name, size", [("face", (61, 90)), ("face-rnet", (40, 33)), ("tiny", (50, 70))])
def test_flops_match_torch_flop_counter(name: str, size: tuple[int, int]) -> None:
    dense = load_model(name, **({"weights": "none"} if name == "tiny" else {})).dense
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        dense(torch.zeros(1, 3, *size))
    assert dense_flops(dense, *size) == counter.get_total_flops()


def test_pyramid_score_maps_are_the_dense_outputs() -> None:
    loaded = load_model("face-rnet")
    doc = inspect_model(loaded.classifier, 24, image_size=(100, 80), min_size=24)
    for lv in doc["pyramid"]["levels"][:3]:
        h, w = lv["size"]
        with torch.no_grad():
            assert list(loaded.dense(torch.zeros(1, 3, h, w)).shape[2:]) == lv["score_map"]


@pytest.mark.parametrize("model, message", [
    ("user_models:unconvertible", "Upsample"),
    ("user_models:missing", "has no attribute 'missing'"),
    ("no_such_module_x:make", "cannot import no_such_module_x"),
    ("user_models:not_a_module", "not a torch nn.Module"),
])
def test_bad_user_models_are_one_line_errors(model: str, message: str) -> None:
    r = CliRunner().invoke(cli, ["inspect", model, "--weights", "none", "--input-size", "62"])
    assert r.exit_code == 2
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in r.output


def test_cascade_preset_shows_each_stage() -> None:
    r = CliRunner().invoke(cli, ["inspect", "--config", "face-cascade"])
    assert r.exit_code == 0, r.output
    assert r.output.count("native input") == 3 and r.output.count("pyramid for a 640x480 image") == 1
