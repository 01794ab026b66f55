"""The registry: families recognise, describe and build models; heads are declared and true; a family
registered at run time is usable by name everywhere (settings, the command line, the detector)."""

from __future__ import annotations

import torch
from click.testing import CliRunner
from torch import nn

from fcndetect import Detector
from fcndetect.cli import cli
from fcndetect.models import (ClassGroup, ModelFamily, ModelSpec, find_family, get_spec, list_models, load_model,
                              register_family, registry)
from fcndetect.models.registry import dense_model


def test_each_name_has_one_family():
    assert {s.name: find_family(s.name).name for s in list_models()} == {
        "face": "named", "face-pnet": "named", "face-rnet": "named", "face-wider": "named", "face-wider-pnet": "named",
        "face-wider-rnet": "named"}
    assert [find_family(n).name for n in ("mobilenet_v2", "vit_b_16", "x/face.onnx", "face.pt", "pkg.mod:make",
                                          "tiny")] == ["torchvision", "torchvision", "exported", "exported",
                                                       "factory", "builtin"]
    assert find_family("no-such-model") is None
    assert get_spec("tiny").family == "builtin" and get_spec("resnet18").family == "torchvision"


def test_declared_heads_are_the_built_networks_outputs():
    """``box``: 4 regression channels; ``landmarks``: 10 more (five points)."""
    for spec in list_models():
        dense = load_model(spec.name).dense
        reg = dense.forward_with_regression(torch.zeros(1, 3, spec.window, spec.window))[1]
        channels = 0 if reg is None else reg.shape[1]
        assert spec.heads == {0: (), 4: ("box",), 14: ("box", "landmarks")}[channels], spec.name
    assert load_model("tiny", weights="none").spec.heads == ()


class _Stripes(nn.Sequential):
    """A toy classifier: 8x8 windows, two classes."""

    def __init__(self) -> None:
        super().__init__(nn.Conv2d(3, 2, 8), nn.Flatten(), nn.Linear(2, 2))


def _describe(name: str) -> ModelSpec:
    return ModelSpec(name=name, description="toy stripes", window=8, mean=(0.0, 0.0, 0.0), std=(255.0,) * 3,
                     groups=(ClassGroup("stripe", (1,)),), preset="custom", source="built in the test",
                     build=_Stripes, family="toy", stride=1, receptive_field=8)


def _build(spec, device, options):
    torch.manual_seed(0)
    return dense_model(spec, spec.build().to(device).eval(), device)


def test_a_family_registered_at_run_time_is_usable_everywhere(monkeypatch, samples):
    monkeypatch.setattr(registry, "_FAMILIES", list(registry._FAMILIES))  # the test's family goes afterwards
    register_family(ModelFamily("toy", lambda name: name.startswith("toy:"), _describe, _build))
    assert get_spec("toy:stripes").window == 8
    assert load_model("toy:stripes").dense.geometry.stride == 1
    r = CliRunner().invoke(cli, ["run", "-m", "toy:stripes", "--print-config"])
    assert r.exit_code == 0 and 'model = "toy:stripes"' in r.output
    dets = Detector(model="toy:stripes", threshold=0.0, max_det=3, min_size=128)(samples / "astronaut.png")
    assert len(dets) == 3 and set(dets.label_names) == {"stripe"}
