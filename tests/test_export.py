"""`fcndetect export`: the ONNX and TorchScript files equal the torch dense network at any input size, carry
their metadata, and `run --model FILE.onnx` detects exactly as torch does."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from fcndetect.cli import cli
from fcndetect.export import export_model
from fcndetect.models import load_model

ort = pytest.importorskip("onnxruntime")  # the test extra installs it: never skipped in CI


def _torch_outputs(loaded, x: torch.Tensor) -> list[np.ndarray]:
    with torch.no_grad():
        logits, reg = loaded.dense.forward_with_regression(x)
    out = [logits.numpy()]
    if reg is not None:
        out += [reg[:, :4].numpy()] + ([reg[:, 4:].numpy()] if reg.shape[1] > 4 else [])
    return out


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    return {"face": load_model("face"), "mobilenet_v2": load_model("mobilenet_v2", weights="none")}


@pytest.mark.parametrize("name, sizes", [("face", [(48, 48), (101, 77)]), ("mobilenet_v2", [(224, 224), (261, 290)])])
def test_onnx_equals_the_dense_network(models, name: str, sizes, tmp_path) -> None:
    loaded = models[name]
    path = export_model(loaded, tmp_path / "m.onnx", "onnx")
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    meta = json.loads(sess.get_modelmeta().custom_metadata_map["fcndetect"])
    assert meta["geometry"]["window"] == loaded.window and meta["geometry"]["stride"] == loaded.dense.geometry.stride
    assert meta["outputs"] == (["logits", "boxes", "landmarks"] if name == "face" else ["logits"])
    assert meta["mean"] == pytest.approx(loaded.mean.tolist()) and len(meta["groups"]) == len(loaded.groups)
    for h, w in sizes:
        x = torch.randn(2, 3, h, w)
        got = sess.run(None, {"input": x.numpy()})
        want = _torch_outputs(loaded, x)
        assert len(got) == len(want)
        for g, t in zip(got, want):
            np.testing.assert_allclose(g, t, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("name, sizes", [("face", [(48, 48), (90, 131)]), ("mobilenet_v2", [(224, 224), (256, 300)])])
def test_torchscript_equals_the_dense_network(models, name: str, sizes, tmp_path) -> None:
    loaded = models[name]
    path = export_model(loaded, tmp_path / "m.ts", "torchscript")
    extra = {"fcndetect.json": ""}
    module = torch.jit.load(str(path), _extra_files=extra)
    assert json.loads(extra["fcndetect.json"])["model"] == name
    for h, w in sizes:
        x = torch.randn(1, 3, h, w)
        with torch.no_grad():
            got = module(x)
        got = [got] if isinstance(got, torch.Tensor) else list(got)
        for g, t in zip(got, _torch_outputs(loaded, x)):
            np.testing.assert_allclose(g.numpy(), t, atol=1e-4, rtol=1e-4)


@pytest.mark.slow  # an ONNX export and two runs
def test_run_with_the_onnx_file_equals_torch(tmp_path, samples, dev_faces=None) -> None:
    r = CliRunner().invoke(cli, ["export", "face", "--format", "onnx", "-o", str(tmp_path / "face.onnx")])
    assert r.exit_code == 0, r.output
    image = str(samples / "astronaut.png")
    a = CliRunner().invoke(cli, ["run", image, "--model", str(tmp_path / "face.onnx"), "-t", "0.5", "-q"])
    b = CliRunner().invoke(cli, ["run", image, "--model", "face", "-t", "0.5", "-q"])
    ra, rb = json.loads(a.stdout)["detections"], json.loads(b.stdout)["detections"]
    assert len(ra) == len(rb) >= 1
    for x, y in zip(ra, rb):
        assert x["box"] == pytest.approx(y["box"], abs=0.011) and x["label"] == y["label"]
        assert x["logit"] == pytest.approx(y["logit"], abs=1e-3) and x["score"] == pytest.approx(y["score"], abs=1e-4)


def test_exported_trained_preset_keeps_its_settings(tmp_path) -> None:
    from fcndetect.presets import resolve_config
    from fcndetect.models.tiny import TinyNet

    torch.save(TinyNet(2, 34).state_dict(), tmp_path / "model.pt")
    (tmp_path / "preset.toml").write_text('model = "tiny"\nweights = "model.pt"\nclasses = ["background", "cat"]\n'
                                          "grayscale = true\nthreshold = 0.875\n")
    r = CliRunner().invoke(cli, ["export", "--config", str(tmp_path / "preset.toml"), "--format", "onnx", "-o",
                                 str(tmp_path / "t.onnx")])
    assert r.exit_code == 0, r.output
    cfg = resolve_config(model=str(tmp_path / "t.onnx"))
    assert cfg.threshold == 0.875 and cfg.grayscale is True
    assert [g.name for g in load_model(str(tmp_path / "t.onnx")).groups] == ["cat"]


@pytest.mark.parametrize("args, message", [
    (["face-cascade-x", "--format", "onnx"], "unknown model"),
    (["--config", "face-cascade", "--format", "onnx"], "cascade"),
    (["user_models:missing", "--format", "onnx", "--input-size", "32"], "has no attribute"),
])
def test_export_errors(args, message, tmp_path) -> None:
    r = CliRunner().invoke(cli, ["export", *args, "-o", str(tmp_path / "x.onnx")])
    assert r.exit_code == 2 and message in r.output and "Traceback" not in r.output
    assert not (tmp_path / "x.onnx").exists()


def test_run_with_a_non_fcndetect_onnx_file_is_one_line(tmp_path, samples) -> None:
    (tmp_path / "bad.onnx").write_bytes(b"not onnx")
    r = CliRunner().invoke(cli, ["run", str(samples / "astronaut.png"), "--model", str(tmp_path / "bad.onnx")])
    assert r.exit_code == 2 and "bad.onnx" in r.output and "Traceback" not in r.output


@pytest.mark.parametrize("suffix", [".pt", ".ts"])
def test_run_with_the_torchscript_file_equals_torch(tmp_path, samples, suffix) -> None:
    """Whatever `export` writes, `run --model FILE` runs: a TorchScript file detects as the torch model does."""
    from fcndetect import Detector

    path = export_model(load_model("face-pnet"), tmp_path / f"p{suffix}", "torchscript")
    image = str(samples / "astronaut.png")
    a = Detector(model=str(path), threshold=0.9)(image)
    b = Detector(model="face-pnet", threshold=0.9)(image)
    assert len(a) == len(b) >= 1
    np.testing.assert_allclose(a.boxes, b.boxes, atol=0.011)
    np.testing.assert_allclose(a.logits, b.logits, atol=1e-3)


def test_a_state_dict_as_model_is_refused_in_one_line(tmp_path) -> None:
    from fcndetect.config import ConfigError
    from fcndetect.presets import resolve_config

    torch.save({"w": torch.zeros(2)}, tmp_path / "weights.pt")
    with pytest.raises(ConfigError) as err:
        resolve_config(model=str(tmp_path / "weights.pt"))
    message = str(err.value)
    assert "\n" not in message and "weights.pt" in message and "--weights" in message
    with pytest.raises(ConfigError, match="not found"):
        resolve_config(model=str(tmp_path / "missing.pt"))
