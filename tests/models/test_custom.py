"""Factory-built classifiers (the `tiny` architecture): output names, weights, and the dense network against
classifying each window as a crop."""

from __future__ import annotations

import pytest
import torch

from fcndetect.models import load_model
from fcndetect.models.custom import detected_outputs, output_names
from fcndetect.models.tiny import TinyNet, feature_side
from fcndetect.models.torchvision_models import ModelLoadError


@pytest.mark.parametrize("size", [18, 24, 36, 40])
def test_tiny_dense_equals_crops(size: int) -> None:
    torch.manual_seed(0)
    loaded = load_model("tiny", weights="none", input_size=size)
    for m in loaded.classifier.modules():  # non-trivial batch-norm statistics
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    g = loaded.dense.geometry
    assert g.window == size and g.stride == 4
    x = torch.randn(1, 3, size + 4 * 5, size + 4 * 3)
    with torch.no_grad():
        dense = loaded.dense(x)
        for i in range(dense.shape[2]):
            for j in range(dense.shape[3]):
                crop = x[:, :, 4 * i:4 * i + size, 4 * j:4 * j + size]
                torch.testing.assert_close(dense[0, :, i, j], loaded.classifier(crop)[0], atol=1e-5, rtol=1e-5)


def test_feature_side_and_receptive_field() -> None:
    assert feature_side(34) == 5 and feature_side(36) == 5 and feature_side(18) == 1
    # 4k + 2 px inputs are read whole; 36 px leaves its last two rows and columns to the pools' floor
    assert load_model("tiny", weights="none").dense.geometry.receptive_field == 34
    assert load_model("tiny", weights="none", input_size=36).dense.geometry.receptive_field == 34
    assert TinyNet(2, 36)[-1].out_features == 2


def test_output_names_and_detected_outputs() -> None:
    assert output_names(None, 2, "m") == ("background", "1")
    assert output_names(["background", "face"], 2, "m") == ("background", "face")
    assert output_names(["background,face"], 2, "m") == ("background", "face")  # as --classes gives it
    assert detected_outputs(("background", "cat", "dog")) == [("cat", (1,)), ("dog", (2,))]
    with pytest.raises(ModelLoadError, match="has 2 outputs but classes names 3"):
        output_names(["a", "b", "c"], 2, "m")
    with pytest.raises(ModelLoadError, match="nothing would be detected"):
        output_names(["background"], 1, "m")


def test_tiny_weights_round_trip(tmp_path) -> None:
    net = TinyNet(2, 34)
    torch.save(net.state_dict(), tmp_path / "m.pt")
    loaded = load_model("tiny", weights=str(tmp_path / "m.pt"), classes=["background", "face"])
    assert [g.name for g in loaded.groups] == ["face"]
    x = torch.randn(2, 3, 34, 34)
    with torch.no_grad():
        torch.testing.assert_close(loaded.classifier(x), net.eval()(x), atol=1e-5, rtol=1e-5)
    with pytest.raises(ModelLoadError, match="no built-in weights"):
        load_model("tiny")
    with pytest.raises(ModelLoadError, match="weights do not fit tiny"):
        load_model("tiny", weights=str(tmp_path / "m.pt"), input_size=40)


def test_fold_batchnorm_is_the_same_function() -> None:
    from fcndetect.models.custom import fold_batchnorm

    torch.manual_seed(1)
    net = TinyNet(2, 34).eval()
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.2, 3.0)
            m.weight.data.uniform_(0.5, 2.0)
            m.bias.data.uniform_(-1, 1)
    folded = fold_batchnorm(net)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    assert len(folded) == len(net) - 3 and folded[-1] is net[-1]
    x = torch.randn(4, 3, 34, 34)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), net(x), atol=1e-5, rtol=1e-5)


def test_a_factory_module_in_the_working_directory_leaves_sys_path_alone(tmp_path, monkeypatch):
    """`module:factory` finds modules in the working directory (as `python -m` does) without adding it to
    sys.path for the rest of the process."""
    import sys

    from fcndetect.models.custom import resolve_factory

    (tmp_path / "cwd_factory_mod.py").write_text("import torch\ndef make():\n    return torch.nn.Identity()\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    before = list(sys.path)
    factory = resolve_factory("cwd_factory_mod:make")
    assert callable(factory) and sys.path == before
    sys.modules.pop("cwd_factory_mod", None)
