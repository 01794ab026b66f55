"""The classifier ``fcndetect train`` trains: the built-in ``tiny`` CNN or a torchvision architecture with a
new two-output head, checked to convert to a dense network before any training starts."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from ..convert import make_fully_convolutional
from ..geometry import GeometryError
from ..models.custom import BUILTIN_ARCHS
from ..models.registry import find_family
from ..models.torchvision_models import IMAGENET_MEAN, IMAGENET_STD, ModelLoadError, load_checkpoint, load_state

__all__ = ["TrainableModel", "build_trainable", "replace_last_linear"]


@dataclass
class TrainableModel:
    """A classifier to train, with the preprocessing its preset will declare.

    Attributes:
        arch: ``tiny`` or a torchvision architecture name (the preset's ``model``).
        model: ``[B, 3, S, S]`` normalised windows to ``[B, 2]`` logits (output 1: the object).
        input_size: ``S``.
        mean, std: RGB normalisation in 0..1 units: the network sees ``(x / 255 - mean) / std``.
        source: where its initial weights came from.
    """

    arch: str
    model: nn.Module
    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    source: str


def replace_last_linear(model: nn.Module, out_features: int) -> nn.Linear:
    """Swap the last ``nn.Linear`` of ``model`` (in module order) for a freshly initialised one with
    ``out_features`` outputs; returns the new layer.

    Raises:
        ValueError: the model has no ``nn.Linear``.
    """
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not names:
        raise ValueError("the classifier has no nn.Linear head to retrain")
    parent_name, _, attr = names[-1].rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    old = getattr(parent, attr)
    new = nn.Linear(old.in_features, out_features)
    setattr(parent, attr, new)
    return new


def build_trainable(arch: str, input_size: int | None = None, weights: str | None = None) -> TrainableModel:
    """The classifier to train for ``arch`` at ``input_size`` (default: ``tiny``'s 34 px, or the torchvision
    architecture's native size), initialised from ``weights`` where given: for ``tiny`` a state dict of a
    two-output ``tiny`` (fine-tuning); for a torchvision architecture its ImageNet state dict, whose last
    ``Linear`` is then replaced by a two-output one.

    Raises:
        ModelLoadError: unknown architecture, unreadable weights, or a classifier that cannot be made fully
            convolutional at ``input_size`` (the reason names the layer).
    """
    import torchvision

    family = find_family(arch)  # the model registry recognises the name; training builds what it recognised
    kind = family.name if family is not None else None
    if kind == "builtin":
        spec = BUILTIN_ARCHS[arch]
        size = input_size or spec.input_size
        try:
            model = spec.build(2, size)
        except ValueError as exc:
            raise ModelLoadError(f"--arch {arch}: {exc}") from None
        mean, std = spec.mean, spec.std
        source = "random initialisation"
        if weights:
            load_state(model, load_checkpoint(weights), f"{weights}: weights do not fit a two-output {arch}",
                       "pass a model.pt from an earlier `fcndetect train --arch tiny`")
            source = weights
    elif kind == "torchvision":
        from ..convert import TORCHVISION_ARCHS, UNSUPPORTED_ARCHS

        if arch in UNSUPPORTED_ARCHS:
            raise ModelLoadError(f"--arch {arch}: {UNSUPPORTED_ARCHS[arch]}")
        size = input_size or TORCHVISION_ARCHS[arch]
        model = torchvision.models.get_model(arch, weights=None, num_classes=1000 if weights else 2)
        source = "random initialisation"
        if weights:
            load_state(model, load_checkpoint(weights), f"{weights}: weights do not fit {arch}",
                       "pass the architecture's ImageNet state dict")
            replace_last_linear(model, 2)
            source = f"{weights} (ImageNet), new 2-output head"
        mean, std = IMAGENET_MEAN, IMAGENET_STD
    else:
        raise ModelLoadError(f"--arch {arch}: unknown architecture; use tiny or a torchvision name "
                             "(`fcndetect models`)")
    model.eval()
    try:
        make_fully_convolutional(model, size)
    except (ValueError, GeometryError, RuntimeError) as exc:
        raise ModelLoadError(f"--arch {arch} at {size} px cannot be made fully convolutional: "
                             f"{' '.join(str(exc).split())}") from None
    return TrainableModel(arch, model, size, tuple(mean), tuple(std), source)  # type: ignore[arg-type]
