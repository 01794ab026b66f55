"""What the registry declares without importing a model (:mod:`fcndetect.models.known`) is what the models
and torchvision say when they are built or imported."""

from __future__ import annotations

import os

import torch.hub
import torchvision.models as tvm

from fcndetect.convert import TORCHVISION_ARCHS, UNSUPPORTED_ARCHS
from fcndetect.models import get_spec, known, list_models, load_model


def test_torchvision_tables_are_the_installed_torchvisions():
    """A torchvision upgrade that adds, drops or resizes an architecture fails here: regenerate the table."""
    assert {n: size for n, (size, _) in known.TORCHVISION_ARCHS.items()} == TORCHVISION_ARCHS
    assert set(known.TORCHVISION_UNCONVERTIBLE) == set(UNSUPPORTED_ARCHS)
    for name, (_, default_file) in known.TORCHVISION_ARCHS.items():
        assert default_file == os.path.basename(tvm.get_model_weights(name).DEFAULT.url), name
    assert all(known.is_torchvision_name(n) for n in tvm.list_models(module=tvm) if n in TORCHVISION_ARCHS)
    assert not known.is_torchvision_name("face") and not known.is_torchvision_name("tiny")


def test_declared_geometry_is_the_built_networks():
    for spec in list_models():
        g = load_model(spec.name).dense.geometry
        assert (spec.window, spec.stride, spec.receptive_field) == (g.window, g.stride, g.receptive_field)
    for name, arch in known.BUILTIN_ARCHS.items():
        g = load_model(name, weights="none").dense.geometry
        assert (arch.window, arch.stride, arch.receptive_field) == (g.window, g.stride, g.receptive_field)
        assert get_spec(name).window == arch.window


def test_hub_folder_is_torch_hubs():
    """Without torch.hub loaded, the folder is computed as torch.hub computes its default."""
    assert known.hub_checkpoints_dir() == known.Path(torch.hub.get_dir()) / "checkpoints"
    assert known._default_hub_dir() == known.Path(torch.hub._get_torch_home()) / "hub"


def test_name_predicates():
    assert known.is_onnx_path("a/b/Face.ONNX") and not known.is_onnx_path("face")
    assert known.is_torchscript_path("m.pt") and known.is_exported_path("m.jit")
    assert known.is_factory_path("pkg.mod:make") and not known.is_factory_path("C:/x.pt")
    assert not known.is_factory_path("m.onnx:x")
