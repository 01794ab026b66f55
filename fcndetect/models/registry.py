"""Registry of named models: how to build each dense network, its preprocessing and its classes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from ..convert import DenseNet, make_fully_convolutional
from .mtcnn import load_mtcnn

__all__ = ["ClassGroup", "ModelSpec", "LoadedModel", "register_model", "get_spec", "list_models", "load_model"]


@dataclass(frozen=True)
class ClassGroup:
    """A detected class: its name and the classifier outputs whose softmax probabilities are summed."""

    name: str
    indices: tuple[int, ...]


@dataclass(frozen=True)
class ModelSpec:
    """A named model.

    Attributes:
        name: registry name (``--model``).
        description: one line for ``fcndetect models``.
        window: native input side of the classifier (the box emitted per cell).
        mean, std: per-channel RGB normalisation in 0..255 units: ``(x - mean) / std``.
        groups: the classes that are detected by default.
        preset: name of the model's default preset in ``configs/``.
        source: where the weights come from.
        build: returns the original classifier, with weights, in eval mode.
    """

    name: str
    description: str
    window: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    groups: tuple[ClassGroup, ...]
    preset: str
    source: str
    build: Callable[[], nn.Module] = field(repr=False, compare=False)


@dataclass
class LoadedModel:
    """A dense network ready to run, with what is needed to feed it and read its output."""

    spec: ModelSpec
    classifier: nn.Module
    dense: DenseNet
    groups: tuple[ClassGroup, ...]
    mean: torch.Tensor  # [3] in 0..255 units
    std: torch.Tensor  # [3]

    @property
    def window(self) -> int:
        return self.spec.window


_REGISTRY: dict[str, ModelSpec] = {}

_MTCNN_SCALE = (127.5, 127.5, 127.5), (128.0, 128.0, 128.0)  # (x - 127.5) * 0.0078125
_FACE = (ClassGroup("face", (1,)),)


def register_model(spec: ModelSpec) -> ModelSpec:
    """Add (or replace) a named model."""
    _REGISTRY[spec.name] = spec
    return spec


register_model(
    ModelSpec(
        name="face",
        description="MTCNN O-Net face classifier (48 px window) made fully convolutional",
        window=48,
        mean=_MTCNN_SCALE[0],
        std=_MTCNN_SCALE[1],
        groups=_FACE,
        preset="face",
        source="facenet-pytorch 2.5.3 data/onet.pt (MIT)",
        build=lambda: load_mtcnn("onet"),
    )
)
register_model(
    ModelSpec(
        name="face-rnet",
        description="MTCNN R-Net face classifier (24 px window, cheaper) made fully convolutional",
        window=24,
        mean=_MTCNN_SCALE[0],
        std=_MTCNN_SCALE[1],
        groups=_FACE,
        preset="face-rnet",
        source="facenet-pytorch 2.5.3 data/rnet.pt (MIT)",
        build=lambda: load_mtcnn("rnet"),
    )
)


def get_spec(name: str) -> ModelSpec:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown model '{name}'; known models: {', '.join(sorted(_REGISTRY))}") from None


def list_models() -> list[ModelSpec]:
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


def load_model(name: str, device: str | torch.device = "cpu") -> LoadedModel:
    """Build the named classifier with its weights and make it fully convolutional on ``device``."""
    spec = get_spec(name)
    classifier = spec.build().to(device).eval()
    dense = make_fully_convolutional(classifier, spec.window)
    return LoadedModel(
        spec=spec,
        classifier=classifier,
        dense=dense,
        groups=spec.groups,
        mean=torch.tensor(spec.mean, dtype=torch.float32, device=device),
        std=torch.tensor(spec.std, dtype=torch.float32, device=device),
    )
