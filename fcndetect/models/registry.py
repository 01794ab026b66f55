"""Registry of named models: how to build each dense network, its preprocessing and its classes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from ..convert import DenseNet, make_fully_convolutional
from .mtcnn import load_mtcnn, pnet_dense, read_mtcnn_state, shipped_weights_path

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
        make_dense: turns the classifier into its dense network; ``None``: :func:`make_fully_convolutional`
            (a classifier that is fully convolutional already, like P-Net, only needs wrapping).
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
    make_dense: Callable[[nn.Module], DenseNet] | None = field(default=None, repr=False, compare=False)
    #: settings over ``preset`` (an exported ONNX file carries those it was exported with)
    preset_values: dict[str, object] | None = field(default=None, repr=False, compare=False)


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


def _mtcnn_spec(name: str, net: str, window: int, description: str, **extra: object) -> ModelSpec:
    """A face model from one of MTCNN's nets, with the weights facenet-pytorch ships."""
    return ModelSpec(
        name=name, description=description, window=window, mean=_MTCNN_SCALE[0], std=_MTCNN_SCALE[1],
        groups=_FACE, preset=name, source=f"facenet-pytorch 2.5.3 data/{net}.pt (MIT)",
        build=lambda: load_mtcnn(net), **extra,  # type: ignore[arg-type]
    )


_WINDOWS = {"pnet": 12, "rnet": 24, "onet": 48}
_MTCNN_PRESETS = {"pnet": "face-pnet", "rnet": "face-rnet", "onet": "face"}


def _trained_mtcnn_spec(name: str, net: str, path: str, preset: str, source: str) -> ModelSpec:
    """A face model from one of MTCNN's nets with fine-tuned weights (a state dict ``fcndetect train`` wrote)."""
    return ModelSpec(
        name=name, description=f"MTCNN {net} architecture, weights {source}", window=_WINDOWS[net],
        mean=_MTCNN_SCALE[0], std=_MTCNN_SCALE[1], groups=_FACE, preset=preset, source=source,
        build=lambda: load_mtcnn(net, path), make_dense=pnet_dense if net == "pnet" else None,
    )


def _register_shipped() -> None:
    """The face nets fine-tuned by ``fcndetect train --recipe configs/train/face.toml`` and shipped in
    ``fcndetect/weights/`` (WIDER FACE training photos: non-commercial research use)."""
    for name, net, preset in (("face-wider-pnet", "pnet", "face-pnet"), ("face-wider-rnet", "rnet", "face-rnet"),
                              ("face-wider", "onet", "face-wider")):
        path = shipped_weights_path(name)
        if path.is_file():
            register_model(_trained_mtcnn_spec(
                name, net, str(path), preset,
                f"fine-tuned on WIDER FACE train photos (fcndetect/weights/{path.name}; non-commercial research)"))


register_model(_mtcnn_spec("face", "onet", 48, "MTCNN O-Net face classifier (48 px window) made fully convolutional"))
register_model(_mtcnn_spec("face-rnet", "rnet", 24,
                           "MTCNN R-Net face classifier (24 px window, cheaper) made fully convolutional"))
register_model(_mtcnn_spec("face-pnet", "pnet", 12,
                           "MTCNN P-Net face classifier (12 px window, stride 2; fully convolutional already)",
                           make_dense=pnet_dense))
_register_shipped()


def get_spec(name: str) -> ModelSpec:
    """The spec of a named model; a torchvision architecture name gets the ImageNet spec (weights and
    classes are chosen when it is loaded)."""
    if name in _REGISTRY:
        return _REGISTRY[name]
    from .torchvision_models import is_torchvision_arch

    if is_torchvision_arch(name):
        return ModelSpec(
            name=name,
            description=f"torchvision {name} (ImageNet classes unless --num-classes)",
            window=0,
            mean=(0.0, 0.0, 0.0),
            std=(1.0, 1.0, 1.0),
            groups=(),
            preset="imagenet",
            source="torchvision weights (torch hub cache) or --weights PATH",
            build=lambda: (_ for _ in ()).throw(RuntimeError("use load_model")),
        )
    net = read_mtcnn_state(name)
    if net is not None:  # a P-, R- or O-Net state dict (an `fcndetect train --recipe` output)
        return _trained_mtcnn_spec(name, net, name, _MTCNN_PRESETS[net], f"{name} (MTCNN {net} state dict)")
    from .custom import BUILTIN_ARCHS, is_factory_path
    from .onnx_model import is_onnx_path, read_onnx_metadata

    from .torchscript_model import is_torchscript_path, read_torchscript_metadata

    if is_onnx_path(name) or is_torchscript_path(name):
        from ..config import preset_names

        onnx = is_onnx_path(name)
        meta = read_onnx_metadata(name) if onnx else read_torchscript_metadata(name)
        preset = str(meta.get("preset_name", "custom"))
        return ModelSpec(
            name=name, description=f"exported {meta['model']}", window=int(meta["geometry"]["window"]),
            mean=tuple(meta["mean"]), std=tuple(meta["std"]),  # type: ignore[arg-type]
            groups=tuple(ClassGroup(g["name"], tuple(g["indices"])) for g in meta["groups"]),
            preset=preset if preset in preset_names() else "custom",
            source=f"{name} ({'ONNX Runtime' if onnx else 'TorchScript'})",
            build=lambda: (_ for _ in ()).throw(RuntimeError("use load_model")),
            preset_values=dict(meta.get("preset") or {}),
        )
    if is_factory_path(name):
        return ModelSpec(
            name=name, description=f"user classifier {name}", window=0, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0),
            groups=(), preset="custom", source=f"{name} (+ --weights)",
            build=lambda: (_ for _ in ()).throw(RuntimeError("use load_model")),
        )
    if name in BUILTIN_ARCHS:
        return ModelSpec(
            name=name, description=BUILTIN_ARCHS[name].description, window=BUILTIN_ARCHS[name].input_size,
            mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), groups=(), preset="custom",
            source="--weights PATH (fcndetect train)",
            build=lambda: (_ for _ in ()).throw(RuntimeError("use load_model")),
        )
    raise KeyError(f"unknown model '{name}'; see `fcndetect models` (face models: {', '.join(sorted(_REGISTRY))})")


def list_models() -> list[ModelSpec]:
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


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
    """Build the named classifier with its weights and make it fully convolutional on ``device``.

    Args:
        name: a built-in model (``face``, ``face-rnet``) or a torchvision architecture (``mobilenet_v2``...).
        weights: torchvision architectures only: ``DEFAULT``, a weight name, a state-dict PATH or ``none``.
        num_classes: outputs of a custom checkpoint (default: 1000 ImageNet classes).
        classes: the classes to detect: ImageNet names, indices or groups (``cat``, ``dog``); each entry is
            one detected label. Default: every class.
        input_size, mean, std: override the preprocessing (``mean``/``std`` in 0..1 units).
    """
    spec = get_spec(name)
    from .onnx_model import is_onnx_path
    from .torchscript_model import is_torchscript_path

    trained_mtcnn = read_mtcnn_state(name) is not None
    if (is_onnx_path(spec.name) or is_torchscript_path(spec.name)) and not trained_mtcnn:
        from .onnx_model import OnnxDenseNet
        from .torchscript_model import TorchScriptDenseNet

        if any(v is not None for v in (weights, num_classes, input_size, classes, mean, std)):
            raise ValueError(f"{name}: an exported file carries its weights, classes and preprocessing: "
                             "--weights/--num-classes/--classes/--input-size/--mean/--std do not apply")
        net = OnnxDenseNet(name) if is_onnx_path(name) else TorchScriptDenseNet(name, device)
        return LoadedModel(spec=spec, classifier=net, dense=net, groups=spec.groups,  # type: ignore[arg-type]
                           mean=torch.tensor(spec.mean, dtype=torch.float32, device=device),
                           std=torch.tensor(spec.std, dtype=torch.float32, device=device))
    if name in _REGISTRY or trained_mtcnn:
        if weights is not None or num_classes is not None or input_size is not None:
            raise ValueError(f"model '{name}' has built-in weights: --weights/--num-classes/--input-size do not apply")
        if classes is not None and [c.lower() for c in classes] != ["face"]:
            raise ValueError(f"model '{name}' detects only 'face'")
        classifier = spec.build().to(device).eval()
        window, groups = spec.window, spec.groups
        mean255, std255 = spec.mean, spec.std
    else:
        from .custom import build_builtin, build_from_path, detected_outputs, is_builtin_arch, is_factory_path, output_names
        from .torchvision_models import build_torchvision_model, parse_classes

        if is_builtin_arch(name) or is_factory_path(name):
            build = build_builtin if is_builtin_arch(name) else build_from_path
            tv = build(name, weights, num_classes, input_size, mean, std, classes)
            chosen = detected_outputs(tv.categories)
        else:
            tv = build_torchvision_model(name, weights, num_classes, input_size, mean, std)
            if tv.categories is None and classes is not None and num_classes is not None \
                    and not all(str(c).strip().lstrip("-").isdigit() for c in classes):
                chosen = detected_outputs(output_names(classes, num_classes, name))  # a trained checkpoint
            else:
                chosen = parse_classes(classes, tv.categories)
        classifier = tv.model.to(device).eval()
        window = tv.input_size
        groups = tuple(ClassGroup(n, idx) for n, idx in chosen)
        mean255 = tuple(v * 255.0 for v in tv.mean)
        std255 = tuple(v * 255.0 for v in tv.std)
        spec = ModelSpec(
            name=name, description=spec.description, window=window, mean=mean255, std=std255,  # type: ignore[arg-type]
            groups=groups, preset=spec.preset, source=tv.source, build=spec.build,
        )
    dense = spec.make_dense(classifier) if spec.make_dense is not None else make_fully_convolutional(classifier, window)
    # NHWC weights: the pyramid levels arrive as HWC images, so inputs are channels-last already, and
    # oneDNN's convolutions run 1.3x (VGG-16) to 2.7x (O-Net) faster this way on CPU. Shared with classifier.
    dense.to(memory_format=torch.channels_last)
    return LoadedModel(
        spec=spec,
        classifier=classifier,
        dense=dense,
        groups=groups,
        mean=torch.tensor(mean255, dtype=torch.float32, device=device),
        std=torch.tensor(std255, dtype=torch.float32, device=device),
    )
