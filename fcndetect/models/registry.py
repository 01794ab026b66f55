"""The model registry (in the style of timm's ``register_model`` / ``create_model`` / ``list_models``): how
each model is recognised, described and built.

* :func:`register_model` adds a named model (a :class:`ModelSpec` that builds its classifier);
* :func:`register_family` adds a family of models recognised by their name (ONNX and TorchScript files,
  ``module:factory`` paths, fcndetect's trainable architectures, torchvision classifiers: :mod:`.families`);
* :func:`get_spec` describes a model, :func:`load_model` builds it, :func:`list_models` lists the named ones.

Nothing outside the registry tells model kinds apart by their names: it asks :func:`find_family`.
Describing a model imports neither torch nor the model's module (the facts are declared: :mod:`.known`);
torch, the converter and the family's module load when a model is built.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch
    from torch import nn

    from ..convert import DenseModel

__all__ = ["ClassGroup", "LoadedModel", "ModelFamily", "ModelOptions", "ModelSpec", "check_options", "find_family",
           "get_spec",
           "list_models", "load_model", "register_family", "register_model"]


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
        make_dense: turns the classifier into its dense network; ``None``: :func:`make_fully_convolutional`
            (a classifier that is fully convolutional already, like P-Net, only needs wrapping).
        stride, receptive_field: those of the dense network, declared for ``fcndetect models`` (a test checks
            them against the built network); ``None`` where they depend on options or are unknown.
        family: the :class:`ModelFamily` that builds it (``"named"``: :func:`register_model`'s models).
        heads: the optional outputs beside the class logits, declared: ``"box"`` (box regression, MTCNN's
            offsets) and ``"landmarks"`` (five points after the box offsets); a test checks them against the
            built network's regression outputs.
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
    make_dense: Callable[[nn.Module], DenseModel] | None = field(default=None, repr=False, compare=False)
    #: settings over ``preset`` (an exported ONNX file carries those it was exported with)
    preset_values: dict[str, object] | None = field(default=None, repr=False, compare=False)
    stride: int | None = None
    receptive_field: int | None = None
    family: str = "named"
    heads: tuple[str, ...] = ()


@dataclass(frozen=True)
class ModelOptions:
    """What ``--weights``, ``--num-classes``, ``--classes``, ``--input-size``, ``--mean`` and ``--std`` ask of
    a model (each ``None`` when not given; ``mean``/``std`` in 0..1 units)."""

    weights: str | None = None
    num_classes: int | None = None
    classes: tuple[str, ...] | list[str] | None = None
    input_size: int | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None


@dataclass(frozen=True)
class ModelFamily:
    """How a family of models is recognised, described and built.

    Attributes:
        name: the family's name (a spec's ``family``).
        recognises: whether a ``--model`` value belongs to the family (without importing anything heavy).
        describe: the :class:`ModelSpec` of a recognised name, without importing torch where it can.
        build: ``(spec, device, options) -> LoadedModel``.
        model_file: the ``--model`` value is a file that holds the whole model (engines that detect on other
            machines send it).
        local_code: the model is Python code of this machine (``module:factory``), which a cluster lacks.
        hub_file: ``(name, weights) -> Path | None``: the torch hub cache file its named weights come from.
        check: ``(spec, options)``: raises ``ValueError`` (one line) for options the model cannot take, before
            anything is built or torch imported (settings are refused at once).
    """

    name: str
    recognises: Callable[[str], bool]
    describe: Callable[[str], ModelSpec]
    build: Callable[[ModelSpec, str | torch.device, ModelOptions], LoadedModel] = field(repr=False)
    model_file: bool = False
    local_code: bool = False
    hub_file: Callable[[str, str | None], Path | None] | None = field(default=None, repr=False)
    check: Callable[[ModelSpec, ModelOptions], None] | None = field(default=None, repr=False)


@dataclass
class LoadedModel:
    """A dense network ready to run, with what is needed to feed it and read its output."""

    spec: ModelSpec
    classifier: nn.Module
    dense: DenseModel
    groups: tuple[ClassGroup, ...]
    mean: torch.Tensor  # [3] in 0..255 units
    std: torch.Tensor  # [3]

    @property
    def window(self) -> int:
        return self.spec.window


_NAMED: dict[str, ModelSpec] = {}
_FAMILIES: list[ModelFamily] = []


def register_model(spec: ModelSpec) -> ModelSpec:
    """Add (or replace) a named model (family ``"named"``: built by ``spec.build`` and ``spec.make_dense``)."""
    _NAMED[spec.name] = spec
    return spec


def register_family(family: ModelFamily) -> ModelFamily:
    """Add (or replace, by name) a family of models; families registered later are asked first, so a family
    of your own can take names a built-in one would (named models are always asked first)."""
    _FAMILIES[:] = [f for f in _FAMILIES if f.name != family.name]
    _FAMILIES.insert(0, family)
    return family


def find_family(name: str) -> ModelFamily | None:
    """The family that recognises ``name`` (a named model's is ``"named"``), or ``None``."""
    if name in _NAMED:
        return _named_family()
    return next((f for f in _FAMILIES if f.recognises(name)), None)


def get_spec(name: str) -> ModelSpec:
    """The description of a model: a named model's spec, or the one its family gives (a torchvision
    architecture's weights and classes are chosen when it is built).

    Raises:
        KeyError: no family recognises ``name``.
    """
    family = find_family(name)
    if family is None:
        raise KeyError(f"unknown model '{name}'; see `fcndetect models` (face models: {', '.join(sorted(_NAMED))})")
    return family.describe(name)


def list_models() -> list[ModelSpec]:
    """The named models, by name."""
    return [_NAMED[k] for k in sorted(_NAMED)]


def load_model(
    name: str,
    device: str | torch.device = "cpu",
    *,
    weights: str | None = None,
    num_classes: int | None = None,
    classes: list[str] | tuple[str, ...] | None = None,
    input_size: int | None = None,
    mean: tuple[float, ...] | None = None,
    std: tuple[float, ...] | None = None,
) -> LoadedModel:
    """Build a model (timm's ``create_model``): its classifier with its weights, made fully convolutional on
    ``device``, by the family that recognises ``name``.

    Args:
        name: a named model (``face``, ``face-rnet``), a torchvision architecture (``mobilenet_v2``...), an
            exported file, ``tiny`` or a ``module:factory`` path.
        weights: ``DEFAULT``, a weight name, a state-dict PATH or ``none`` (where the family has no weights
            of its own).
        num_classes: outputs of a custom checkpoint (default: 1000 ImageNet classes).
        classes: the classes to detect: ImageNet names, indices or groups (``cat``, ``dog``); each entry is
            one detected label. Default: every class.
        input_size, mean, std: override the preprocessing (``mean``/``std`` in 0..1 units).
    """
    spec = get_spec(name)
    options = ModelOptions(weights, num_classes, classes, input_size, mean, std)
    family = _family(spec)
    if family.check is not None:
        family.check(spec, options)
    return family.build(spec, device, options)


def check_options(spec: ModelSpec, options: ModelOptions) -> None:
    """Raise ``ValueError`` (one line) where ``options`` do not apply to the model ``spec`` describes (the
    family's ``check``; nothing is built and torch is not imported)."""
    family = _family(spec)
    if family.check is not None:
        family.check(spec, options)


def _family(spec: ModelSpec) -> ModelFamily:
    return _named_family() if spec.family == "named" else next(f for f in _FAMILIES if f.name == spec.family)


def dense_model(spec: ModelSpec, classifier: nn.Module, device: str | torch.device) -> LoadedModel:
    """``classifier`` (on ``device``, in eval mode) made fully convolutional as ``spec`` says, with its
    normalisation: the last step of every family that builds a torch classifier."""
    import torch

    from ..convert import make_fully_convolutional

    if spec.make_dense is not None:
        dense = spec.make_dense(classifier)
    else:
        dense = make_fully_convolutional(classifier, spec.window)
    # NHWC weights: the pyramid levels arrive as HWC images, so inputs are channels-last already, and
    # oneDNN's convolutions run 1.3x (VGG-16) to 2.7x (O-Net) faster this way on CPU. Shared with classifier.
    dense.to(memory_format=torch.channels_last)
    return LoadedModel(spec=spec, classifier=classifier, dense=dense, groups=spec.groups,
                       mean=torch.tensor(spec.mean, dtype=torch.float32, device=device),
                       std=torch.tensor(spec.std, dtype=torch.float32, device=device))


def _check_named(spec: ModelSpec, options: ModelOptions) -> None:
    if options.weights is not None or options.num_classes is not None or options.input_size is not None:
        raise ValueError(f"model '{spec.name}' has built-in weights: --weights/--num-classes/--input-size do not apply")
    names = [g.name for g in spec.groups]
    if options.classes is not None and [c.lower() for c in options.classes] != names:
        raise ValueError(f"model '{spec.name}' detects only {', '.join(repr(n) for n in names)}")


def _build_named(spec: ModelSpec, device: str | torch.device, options: ModelOptions) -> LoadedModel:
    return dense_model(spec, spec.build().to(device).eval(), device)


def _named_family() -> ModelFamily:
    return ModelFamily("named", lambda name: name in _NAMED, lambda name: _NAMED[name], _build_named,
                       check=_check_named)
