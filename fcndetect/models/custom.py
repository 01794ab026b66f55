"""Classifiers built by a factory rather than shipped with weights: fcndetect's own ``tiny`` architecture
(what ``fcndetect train`` trains by default) and, through the same path, user-defined ``nn.Module`` classes.

Such a model has no class names of its own: ``classes`` names **every** output, in order (``["background",
"face"]``), and every output except one named ``background`` is detected as its own label. Without
``classes`` the outputs are called ``"0"``, ``"1"``, ... and all are detected except output 0 of a two-output
model (the background of a binary classifier).
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from .known import BUILTIN_ARCHS as KNOWN_ARCHS
from .known import is_factory_path
from .tiny import DEFAULT_INPUT_SIZE, TinyNet
from .torchvision_models import ModelLoadError, load_checkpoint, load_state

__all__ = [
    "BACKGROUND", "BUILTIN_ARCHS", "FactoryModel", "build_builtin", "build_factory_model", "build_from_path",
    "detected_outputs", "is_builtin_arch", "is_factory_path", "output_names", "resolve_factory",
]

#: The output name that is never detected.
BACKGROUND = "background"


@dataclass(frozen=True)
class BuiltinArch:
    """An architecture fcndetect defines: ``build(num_classes, input_size)`` and its defaults."""

    build: Callable[[int, int], nn.Module]
    input_size: int
    mean: tuple[float, float, float]  # 0..1 units
    std: tuple[float, float, float]
    description: str


BUILTIN_ARCHS: dict[str, BuiltinArch] = {
    "tiny": BuiltinArch(
        build=lambda k, s: TinyNet(num_classes=k, input_size=s), input_size=DEFAULT_INPUT_SIZE,
        mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5),
        description=KNOWN_ARCHS["tiny"].description,
    ),
}


def fold_batchnorm(model: nn.Sequential) -> nn.Sequential:
    """An eval-mode copy of ``model`` in which every ``Conv2d`` directly followed by a ``BatchNorm2d`` is one
    convolution (``torch.nn.utils.fusion.fuse_conv_bn_eval``): the same function up to float rounding, with
    two fewer passes over each feature map. Other modules are kept (shared, not copied)."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    layers = list(model.children())
    out: list[nn.Module] = []
    k = 0
    while k < len(layers):
        a, b = layers[k], layers[k + 1] if k + 1 < len(layers) else None
        if isinstance(a, nn.Conv2d) and isinstance(b, nn.BatchNorm2d):
            out.append(fuse_conv_bn_eval(a.eval(), b.eval()))
            k += 2
        else:
            out.append(a)
            k += 1
    return nn.Sequential(*out).eval()


def resolve_factory(name: str) -> Callable[[], nn.Module]:
    """The callable a ``package.module:factory`` path names (``factory`` may be dotted: ``mod:Class.make``).

    Raises:
        ModelLoadError: the module cannot be imported, the attribute is missing, or it is not callable.
    """
    import importlib

    module_name, _, attr = name.partition(":")
    # as `python -m`: modules in the working directory are found, but only while this import runs (the
    # working directory is not left on sys.path for the rest of the process)
    cwd = os.getcwd()
    added = "" not in sys.path and cwd not in sys.path
    if added:
        sys.path.insert(0, cwd)
    try:
        obj: object = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - whatever the user's module raises on import
        raise ModelLoadError(f"{name}: cannot import {module_name} ({type(exc).__name__}: "
                             f"{' '.join(str(exc).split())[:200]})") from None
    finally:
        if added and cwd in sys.path:
            sys.path.remove(cwd)
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ModelLoadError(f"{name}: {module_name} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ModelLoadError(f"{name}: {attr} is not callable")
    return obj  # type: ignore[return-value]


def build_from_path(name: str, weights: str | None, num_classes: int | None, input_size: int | None,
                    mean: tuple[float, ...] | None, std: tuple[float, ...] | None,
                    classes: tuple[str, ...] | list[str] | None) -> FactoryModel:
    """A user-defined classifier from a ``package.module:factory`` path (called with no arguments)."""
    factory = resolve_factory(name)

    def call() -> nn.Module:
        try:
            return factory()
        except Exception as exc:  # noqa: BLE001 - the user's factory
            raise ModelLoadError(f"{name}: the factory raised {type(exc).__name__}: "
                                 f"{' '.join(str(exc).split())[:200]}") from None

    return build_factory_model(name, call, weights=weights, num_classes=num_classes, input_size=input_size,
                               mean=mean, std=std, classes=classes)


def is_builtin_arch(name: str) -> bool:
    return name in BUILTIN_ARCHS


@dataclass(frozen=True)
class FactoryModel:
    """A factory-built classifier with its weights, preprocessing and output names."""

    model: nn.Module
    input_size: int
    mean: tuple[float, float, float]  # 0..1 units
    std: tuple[float, float, float]
    categories: tuple[str, ...]
    source: str


def detected_outputs(categories: tuple[str, ...]) -> list[tuple[str, tuple[int, ...]]]:
    """``(label, (output index,))`` for every output that is detected: all but those named ``background``."""
    return [(name, (i,)) for i, name in enumerate(categories) if name.lower() != BACKGROUND]


def split_names(classes: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """``["background,face"]`` or ``["background", "face"]`` as ``("background", "face")``."""
    return tuple(n.strip() for c in classes for n in str(c).split(",") if n.strip())


def output_names(classes: tuple[str, ...] | list[str] | None, num_classes: int, name: str) -> tuple[str, ...]:
    """The name of each of ``num_classes`` outputs: ``classes`` (which must name every one), else ``"0"``,
    ``"1"``, ... (``background``, ``"1"`` for two outputs)."""
    if classes is None:
        return (BACKGROUND, "1") if num_classes == 2 else tuple(str(i) for i in range(num_classes))
    names = split_names(classes)
    if len(names) != num_classes:
        raise ModelLoadError(f"model '{name}' has {num_classes} outputs but classes names {len(names)} "
                             f"({', '.join(names)}); name every output, e.g. background,face")
    if not detected_outputs(names):
        raise ModelLoadError(f"model '{name}': every output is named '{BACKGROUND}', nothing would be detected")
    return names


def build_builtin(
    name: str,
    weights: str | None,
    num_classes: int | None = None,
    input_size: int | None = None,
    mean: tuple[float, ...] | None = None,
    std: tuple[float, ...] | None = None,
    classes: tuple[str, ...] | list[str] | None = None,
) -> FactoryModel:
    """Build the built-in architecture ``name`` with ``weights`` (a state-dict PATH, or ``"none"`` for random
    initialisation: a model to train or inspect, not to detect with)."""
    arch = BUILTIN_ARCHS[name]
    if weights is None:
        raise ModelLoadError(f"model '{name}' has no built-in weights: pass --weights PATH (a state dict, e.g. "
                             f"OUT/model.pt from `fcndetect train`), or --weights none for random ones")
    k = num_classes if num_classes is not None else (len(split_names(classes)) if classes else 2)
    size = input_size or arch.input_size
    try:
        model = arch.build(k, size)
    except ValueError as exc:
        raise ModelLoadError(f"model '{name}': {exc}") from None
    built = build_factory_model(name, lambda: model, weights=weights, num_classes=k, input_size=size,
                                mean=mean or arch.mean, std=std or arch.std, classes=classes)
    if isinstance(built.model, nn.Sequential):  # inference only: batch norm folded into the convolutions
        built = dataclasses.replace(built, model=fold_batchnorm(built.model))
    return built


def build_factory_model(
    name: str,
    factory: Callable[[], nn.Module],
    *,
    weights: str | None,
    num_classes: int | None,
    input_size: int | None,
    mean: tuple[float, ...] | None,
    std: tuple[float, ...] | None,
    classes: tuple[str, ...] | list[str] | None,
) -> FactoryModel:
    """Call ``factory()`` for the classifier, load ``weights`` (a state-dict path; ``None``/``"none"`` keeps
    its own initialisation) strictly, and check that it has ``num_classes`` outputs when given.

    ``input_size`` is required (a factory's classifier does not say which input it was trained at);
    ``mean``/``std`` default to 0.5 (inputs scaled to [-1, 1]).
    """
    if input_size is None:
        raise ModelLoadError(f"model '{name}': pass --input-size (the classifier's native input side)")
    model = factory()
    if not isinstance(model, nn.Module):
        raise ModelLoadError(f"model '{name}': the factory returned {type(model).__name__}, not a torch nn.Module")
    source = "random weights"
    if weights is not None and weights.lower() != "none":
        load_state(model, load_checkpoint(weights), f"{weights}: weights do not fit {name}",
                   "check --model, --num-classes and --input-size")
        source = weights
    last = [m for m in model.modules() if isinstance(m, nn.Linear)]
    k = num_classes if num_classes is not None else (last[-1].out_features if last else None)
    if k is None:
        raise ModelLoadError(f"model '{name}': pass --num-classes (no Linear layer declares the outputs)")
    if last and last[-1].out_features != k:
        raise ModelLoadError(f"model '{name}': its last Linear has {last[-1].out_features} outputs, "
                             f"--num-classes says {k}")
    m = tuple(mean) if mean else (0.5, 0.5, 0.5)
    s = tuple(std) if std else (0.5, 0.5, 0.5)
    return FactoryModel(model.eval(), input_size, m, s, output_names(classes, k, name), source)  # type: ignore[arg-type]
