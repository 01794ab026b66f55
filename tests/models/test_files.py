"""The files a config reads from the driver's disk (driver_files), the config that reads copies of them
(localize), and the refusal of module:factory models on a cluster.

The oracle: a detector built from copies in another folder, the originals gone, gives the original detector's
detections."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fcndetect.config import DetectorConfig
from fcndetect.detector import Detector
from fcndetect.engines.ray.actor import write_copies
from fcndetect.models.files import HUB_PREFIX, build_from_copies, cluster_refusal, driver_files, localize
from fcndetect.presets import resolve_config


def _image(samples: Path) -> np.ndarray:
    return np.asarray(Image.open(samples / "astronaut.png").convert("RGB").resize((256, 256)))


def _copies(files: dict[str, str], folder: Path) -> dict[str, str]:
    """What an actor does: each file's bytes into its own folder (write_copies)."""
    return write_copies({k: (Path(p).name, Path(p).read_bytes()) for k, p in files.items()}, str(folder))


def _same(a, b) -> None:  # noqa: ANN001 - two Detections
    assert np.array_equal(a.boxes, b.boxes) and np.array_equal(a.scores, b.scores)
    assert a.class_names == b.class_names and np.array_equal(a.labels, b.labels)


def test_a_weights_file_travels_and_the_copy_gives_the_same_detections(tmp_path, mobilenet_weights, samples):
    own = tmp_path / "driver" / "mbv2.pth"
    own.parent.mkdir()
    shutil.copy(mobilenet_weights, own)
    cfg = resolve_config(model="mobilenet_v2", weights=str(own), classes=["cat"])
    files = driver_files(cfg)
    assert files == {"weights": str(own)}
    want = Detector(cfg).detect_array(_image(samples))
    copies = _copies(files, tmp_path / "actor")
    shutil.rmtree(own.parent)  # the actor never sees the driver's folder
    local = localize(cfg, copies)
    assert local.weights == copies["weights"] and local.weights.startswith(str(tmp_path / "actor"))
    assert local.replace(weights=cfg.weights) == cfg  # nothing else changes
    _same(build_from_copies(Detector, cfg, copies).detect_array(_image(samples)), want)


def test_a_torch_hub_entry_travels(tmp_path, mobilenet_weights, samples, monkeypatch):
    hub = tmp_path / "driver-hub"
    (hub / "checkpoints").mkdir(parents=True)
    shutil.copy(mobilenet_weights, hub / "checkpoints" / mobilenet_weights.name)
    monkeypatch.setattr(torch.hub, "_hub_dir", str(hub))
    cfg = resolve_config(model="mobilenet_v2", weights="IMAGENET1K_V1", classes=["cat"])  # from the hub cache
    files = driver_files(cfg)
    assert files == {HUB_PREFIX + mobilenet_weights.name: str(hub / "checkpoints" / mobilenet_weights.name)}
    want = Detector(cfg).detect_array(_image(samples))
    copies = _copies(files, tmp_path / "actor")
    shutil.rmtree(hub)
    got = build_from_copies(Detector, cfg, copies).detect_array(_image(samples))
    assert Path(torch.hub.get_dir()).parent == tmp_path / "actor" / "0"
    _same(got, want)


@pytest.mark.slow  # an ONNX export
def test_an_exported_model_travels(tmp_path, samples):
    pytest.importorskip("onnxruntime")
    from click.testing import CliRunner

    from fcndetect.cli import cli

    onnx = tmp_path / "driver" / "face.onnx"
    onnx.parent.mkdir()
    r = CliRunner().invoke(cli, ["export", "face", "--format", "onnx", "-o", str(onnx)])
    assert r.exit_code == 0, r.output
    cfg = resolve_config(model=str(onnx))
    files = driver_files(cfg)
    assert files == {"model": str(onnx)}
    want = Detector(cfg).detect_array(_image(samples))
    copies = _copies(files, tmp_path / "actor")
    shutil.rmtree(onnx.parent)
    local = localize(cfg, copies)
    assert local.model == copies["model"] and Path(local.model).name == "face.onnx"
    _same(Detector(local).detect_array(_image(samples)), want)


def test_built_in_models_read_no_file():
    assert driver_files(DetectorConfig()) == {}
    assert localize(DetectorConfig(), {}) == DetectorConfig()


def test_a_module_factory_model_is_refused_on_a_cluster_only():
    assert cluster_refusal(DetectorConfig()) is None
    line = cluster_refusal(DetectorConfig(model="user_models:make_net", stages=(), stage_thresholds=()))
    assert line is not None and "\n" not in line
    assert line.startswith("--model user_models:make_net: a module:factory model") and "fcndetect export" in line
