"""torchvision classifiers as detectors: weights resolution, classes, safe checkpoints, the cat acceptance."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pytest
import torch
import torchvision
from click.testing import CliRunner

from fcndetect.cli import cli
from fcndetect.models import load_model
from fcndetect.models.torchvision_models import CLASS_GROUPS, ModelLoadError, load_checkpoint, parse_classes

CATS = ["tabby", "tiger cat", "Persian cat", "Siamese cat", "Egyptian cat"]


@pytest.fixture(scope="module")
def mobilenet_path(mobilenet_weights: Path) -> Path:
    return mobilenet_weights


def test_cat_group_is_the_domestic_cats():
    cats = torchvision.models.MobileNet_V2_Weights.IMAGENET1K_V1.meta["categories"]
    assert [cats[i] for i in CLASS_GROUPS["cat"]] == CATS


def test_parse_classes():
    cats = torchvision.models.MobileNet_V2_Weights.IMAGENET1K_V1.meta["categories"]
    assert parse_classes(["cat", "281", "Siamese cat"], cats) == [
        ("cat", tuple(range(281, 286))), ("tabby", (281,)), ("Siamese cat", (284,))]
    assert parse_classes("tabby,dog", cats)[1][0] == "dog"
    with pytest.raises(ModelLoadError, match="no 'person' class"):
        parse_classes(["person"], cats)
    with pytest.raises(ModelLoadError, match="out of range"):
        parse_classes(["1000"], cats)
    with pytest.raises(ModelLoadError, match="unknown class"):
        parse_classes(["unicorn"], cats)
    assert len(parse_classes(None, cats)) == 1000


def test_missing_named_weights_say_where_to_put_them(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(ModelLoadError) as err:
        load_model("resnet18", weights="DEFAULT")
    msg = str(err.value)
    assert "resnet18-f37072fd.pth" in msg and str(tmp_path / "hub" / "checkpoints") in msg and "never" in msg


def test_named_weights_from_torch_home(tmp_path, monkeypatch, mobilenet_path):
    ckpt = tmp_path / "hub" / "checkpoints"
    ckpt.mkdir(parents=True)
    os.symlink(mobilenet_path, ckpt / mobilenet_path.name)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    m = load_model("mobilenet_v2", weights="IMAGENET1K_V1", classes=["cat"])
    assert m.window == 224 and [g.name for g in m.groups] == ["cat"]
    assert m.spec.source == "MobileNet_V2_Weights.IMAGENET1K_V1"


class _Payload:
    """Unpickling this object would create the file named in ``marker``."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_checkpoint_executes_nothing(tmp_path):
    marker = tmp_path / "pwned"
    bad = tmp_path / "evil.pt"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "x": _Payload(str(marker))}, bad)
    with pytest.raises(ModelLoadError, match="refused"):
        load_checkpoint(bad)
    assert not marker.exists()
    # a plain pickle (not torch's zip format) with the same payload
    raw = tmp_path / "evil.pkl"
    raw.write_bytes(pickle.dumps(_Payload(str(marker))))
    with pytest.raises(ModelLoadError):
        load_checkpoint(raw)
    assert not marker.exists()
    # and through the command line: one line, exit 2, nothing executed
    r = CliRunner().invoke(cli, ["run", "x.png", "--model", "resnet18", "--weights", str(bad)])
    assert r.exit_code == 2 and "refused" in r.output and not marker.exists()


def test_torchscript_is_not_executed(tmp_path):
    scripted = torch.jit.script(torch.nn.Linear(2, 2))
    path = tmp_path / "model.pt"
    scripted.save(str(path))
    with pytest.raises(ModelLoadError, match="TorchScript"):
        load_checkpoint(path)


def test_own_checkpoint_with_custom_classes(tmp_path):
    torch.manual_seed(0)
    net = torchvision.models.resnet18(weights=None, num_classes=3).eval()
    path = tmp_path / "mine.pt"
    torch.save({"state_dict": net.state_dict(), "epoch": 3}, path)
    m = load_model("resnet18", weights=str(path), num_classes=3, classes=["2"], input_size=64,
                   mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    assert m.window == 64 and [g.indices for g in m.groups] == [(2,)]
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(m.dense(x)[:, :, 0, 0], net(x), atol=1e-5)
    with pytest.raises(ModelLoadError, match="do not fit"):
        load_model("resnet18", weights=str(path))  # taken as ImageNet: 1000 classes do not fit


def test_transformers_are_refused_with_a_reason():
    r = CliRunner().invoke(cli, ["run", "x.png", "--model", "vit_b_16", "--weights", "none"])
    assert r.exit_code == 2 and "vit_b_16" in r.output


def test_presets_never_inherit_face_threshold():
    from fcndetect.config import load_preset
    from fcndetect.presets import resolve_config

    cfg = resolve_config(model="resnet18")
    assert cfg.threshold == load_preset("imagenet")["threshold"] != load_preset("face")["threshold"]
    assert resolve_config("imagenet-cat").classes == ("cat",)


def _run_cat(image: Path, weights: Path):
    r = CliRunner().invoke(cli, ["run", str(image), "--model", "mobilenet_v2", "--weights", str(weights),
                                 "--classes", "cat", "-q"])
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def test_chelsea_cat_found_and_no_cat_in_coffee(samples, mobilenet_path):
    rec = _run_cat(samples / "chelsea.png", mobilenet_path)
    assert rec["detections"], "no cat found in chelsea.png"
    best = rec["detections"][0]
    assert best["label"] == "cat"
    # "around the cat": the cat's face fills most of the 451x300 photo, centred near (240, 160)
    x1, y1, x2, y2 = best["box"]
    assert x1 <= 240 <= x2 and y1 <= 160 <= y2
    assert (x2 - x1) * (y2 - y1) >= 0.15 * 451 * 300
    assert _run_cat(samples / "coffee.png", mobilenet_path)["detections"] == []
