"""What `train` trains: tiny or a torchvision architecture with a new two-output head, checked to convert."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from fcndetect.models.torchvision_models import ModelLoadError
from fcndetect.train import build_trainable
from fcndetect.train.archs import replace_last_linear


def test_tiny_default_is_34_px_and_converts() -> None:
    tm = build_trainable("tiny")
    assert tm.input_size == 34 and tm.model[-1].out_features == 2


def test_replace_last_linear_swaps_only_the_last() -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 5), nn.ReLU(), nn.Sequential(nn.Linear(5, 1000)))
    first = model[1]
    new = replace_last_linear(model, 2)
    assert model[3][0] is new and new.in_features == 5 and new.out_features == 2 and model[1] is first
    with pytest.raises(ValueError, match="no nn.Linear"):
        replace_last_linear(nn.Sequential(nn.ReLU()), 2)


def test_torchvision_arch_from_imagenet_weights(mobilenet_weights) -> None:
    tm = build_trainable("mobilenet_v2", 64, str(mobilenet_weights))
    assert tm.model.classifier[-1].out_features == 2 and tm.input_size == 64
    ref = torch.load(mobilenet_weights, weights_only=True)
    assert torch.equal(tm.model.features[0][0].weight, ref["features.0.0.weight"])  # the trunk keeps ImageNet's


@pytest.mark.parametrize("arch, size, message", [
    ("nosuchnet", None, "unknown architecture"),
    ("tiny", 12, "at least 18 px"),
    ("vit_b_16", None, "vit_b_16"),
])
def test_unusable_architectures_are_one_line_errors(arch: str, size: int | None, message: str) -> None:
    with pytest.raises(ModelLoadError, match=message) as info:
        build_trainable(arch, size)
    assert "\n" not in str(info.value)
