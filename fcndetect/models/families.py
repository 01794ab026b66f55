"""The built-in models and families of the registry (:mod:`.registry`): MTCNN's three face nets (named
models), exported ONNX and TorchScript files, ``module:factory`` paths, fcndetect's trainable architectures
and torchvision's classifiers. Importing this module registers them; it imports neither torch nor a family's
module (they load when a model is built).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import known
from .registry import (ClassGroup, LoadedModel, ModelFamily, ModelOptions, ModelSpec, dense_model, register_family,
                       register_model)

if TYPE_CHECKING:
    from pathlib import Path

    import torch
    from torch import nn

    from ..convert import DenseModel

__all__: list[str] = []

_MTCNN_SCALE = (127.5, 127.5, 127.5), (128.0, 128.0, 128.0)  # (x - 127.5) * 0.0078125
_FACE = (ClassGroup("face", (1,)),)
_NO_SCALE = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)  # set when the model is built


def _load_mtcnn(net: str) -> nn.Module:
    from .mtcnn import load_mtcnn

    return load_mtcnn(net)


def _pnet_dense(pnet: nn.Module) -> DenseModel:
    from .mtcnn import pnet_dense

    return pnet_dense(pnet)  # type: ignore[arg-type, return-value]


def _mtcnn_spec(name: str, net: str, window: int, stride: int, rf: int, heads: tuple[str, ...], description: str,
                **extra: object) -> ModelSpec:
    """A face model from one of MTCNN's nets, with the weights facenet-pytorch ships."""
    return ModelSpec(
        name=name, description=description, window=window, mean=_MTCNN_SCALE[0], std=_MTCNN_SCALE[1],
        groups=_FACE, preset=name, source=f"facenet-pytorch 2.5.3 data/{net}.pt (MIT)",
        build=lambda: _load_mtcnn(net), stride=stride, receptive_field=rf, heads=heads,
        **extra,  # type: ignore[arg-type]
    )


register_model(_mtcnn_spec("face", "onet", 48, 8, 49, ("box", "landmarks"),
                           "MTCNN O-Net face classifier (48 px window) made fully convolutional"))
register_model(_mtcnn_spec("face-rnet", "rnet", 24, 4, 25, ("box",),
                           "MTCNN R-Net face classifier (24 px window, cheaper) made fully convolutional"))
register_model(_mtcnn_spec("face-pnet", "pnet", 12, 2, 12, ("box",),
                           "MTCNN P-Net face classifier (12 px window, stride 2; fully convolutional already)",
                           make_dense=_pnet_dense))


# --- MTCNN's nets with weights fcndetect trained (`fcndetect train --recipe`) -------------------------------------

#: per net: (window, stride, receptive field, heads, the preset of the released net it replaces)
_MTCNN_NETS = {"pnet": (12, 2, 12, ("box",), "face-pnet"), "rnet": (24, 4, 25, ("box",), "face-rnet"),
               "onet": (48, 8, 49, ("box", "landmarks"), "face")}


def _load_trained_mtcnn(net: str, path: str) -> nn.Module:
    from .mtcnn import load_mtcnn

    return load_mtcnn(net, path)


def _trained_mtcnn_spec(name: str, net: str, path: str, preset: str, source: str, family: str = "named") -> ModelSpec:
    window, stride, rf, heads, _ = _MTCNN_NETS[net]
    return ModelSpec(
        name=name, description=f"MTCNN {net} architecture, weights {source}", window=window, mean=_MTCNN_SCALE[0],
        std=_MTCNN_SCALE[1], groups=_FACE, preset=preset, source=source,
        build=lambda: _load_trained_mtcnn(net, path), make_dense=_pnet_dense if net == "pnet" else None,
        stride=stride, receptive_field=rf, heads=heads, family=family,
    )


def _register_shipped() -> None:
    """The face nets fine-tuned by ``fcndetect train --recipe configs/train/face.toml`` and shipped in
    ``fcndetect/weights/`` (WIDER FACE training photos: non-commercial research use)."""
    from pathlib import Path

    folder = Path(__file__).resolve().parent.parent / "weights"
    for name, net, preset in (("face-wider-pnet", "pnet", "face-pnet"), ("face-wider-rnet", "rnet", "face-rnet"),
                              ("face-wider", "onet", "face-wider")):
        path = folder / f"{name}.pt"
        if path.is_file():
            register_model(_trained_mtcnn_spec(
                name, net, str(path), preset,
                f"fine-tuned on WIDER FACE train photos (fcndetect/weights/{path.name}; non-commercial research)"))


_register_shipped()


def _is_mtcnn_state(name: str) -> bool:
    if not name.lower().endswith((".pt", ".pth")):
        return False
    from .mtcnn import read_mtcnn_state

    return read_mtcnn_state(name) is not None


def _describe_mtcnn_state(name: str) -> ModelSpec:
    from .mtcnn import read_mtcnn_state

    net = read_mtcnn_state(name)
    assert net is not None  # recognised by _is_mtcnn_state
    return _trained_mtcnn_spec(name, net, name, _MTCNN_NETS[net][4], f"{name} (MTCNN {net} state dict)",
                               family="mtcnn-state")


def _check_mtcnn_state(spec: ModelSpec, o: ModelOptions) -> None:
    if o.weights is not None or o.num_classes is not None or o.input_size is not None:
        raise ValueError(f"{spec.name}: an MTCNN state dict carries its weights: --weights/--num-classes/"
                         "--input-size do not apply")


def _build_mtcnn_state(spec: ModelSpec, device: str | torch.device, o: ModelOptions) -> LoadedModel:
    return dense_model(spec, spec.build().to(device).eval(), device)


def _built_by_load_model() -> nn.Module:
    raise RuntimeError("use load_model")


# --- fcndetect's trainable architectures (tiny) and module:factory classifiers ------------------------------

def _describe_builtin(name: str) -> ModelSpec:
    arch = known.BUILTIN_ARCHS[name]
    return ModelSpec(name=name, description=arch.description, window=arch.window, mean=_NO_SCALE[0],
                     std=_NO_SCALE[1], groups=(), preset="custom", source="--weights PATH (fcndetect train)",
                     build=_built_by_load_model, stride=arch.stride, receptive_field=arch.receptive_field,
                     family="builtin")


def _describe_factory(name: str) -> ModelSpec:
    return ModelSpec(name=name, description=f"user classifier {name}", window=0, mean=_NO_SCALE[0],
                     std=_NO_SCALE[1], groups=(), preset="custom", source=f"{name} (+ --weights)",
                     build=_built_by_load_model, family="factory")


def _build_factory(spec: ModelSpec, device: str | torch.device, o: ModelOptions) -> LoadedModel:
    from .custom import build_builtin, build_from_path, detected_outputs

    build = build_builtin if spec.family == "builtin" else build_from_path
    made = build(spec.name, o.weights, o.num_classes, o.input_size, o.mean, o.std, o.classes)
    return _finish(spec, made.model, made.input_size, made.mean, made.std, detected_outputs(made.categories),
                   made.source, device)


def _finish(spec: ModelSpec, classifier: nn.Module, window: int, mean: tuple[float, ...], std: tuple[float, ...],
            chosen: list[tuple[str, tuple[int, ...]]], source: str, device: str | torch.device) -> LoadedModel:
    """A built classifier's spec (window, 0..255 normalisation, detected classes, weights) and dense model."""
    built = ModelSpec(
        name=spec.name, description=spec.description, window=window,
        mean=tuple(v * 255.0 for v in mean), std=tuple(v * 255.0 for v in std),  # type: ignore[arg-type]
        groups=tuple(ClassGroup(n, idx) for n, idx in chosen), preset=spec.preset, source=source,
        build=spec.build, family=spec.family, heads=spec.heads,
    )
    return dense_model(built, classifier.to(device).eval(), device)


register_family(ModelFamily("builtin", lambda name: name in known.BUILTIN_ARCHS, _describe_builtin, _build_factory))
register_family(ModelFamily("factory", known.is_factory_path, _describe_factory, _build_factory, local_code=True))


# --- exported dense networks (fcndetect export): ONNX Runtime or TorchScript ------------------------------------

def _describe_exported(name: str) -> ModelSpec:
    from ..config import preset_names

    onnx = known.is_onnx_path(name)
    if onnx:
        from .onnx_model import read_onnx_metadata as read_metadata
    else:
        from .torchscript_model import read_torchscript_metadata as read_metadata
    meta = read_metadata(name)
    preset = str(meta.get("preset_name", "custom"))
    return ModelSpec(
        name=name, description=f"exported {meta['model']}", window=int(meta["geometry"]["window"]),
        mean=tuple(meta["mean"]), std=tuple(meta["std"]),
        groups=tuple(ClassGroup(g["name"], tuple(g["indices"])) for g in meta["groups"]),
        preset=preset if preset in preset_names() else "custom",
        source=f"{name} ({'ONNX Runtime' if onnx else 'TorchScript'})",
        build=_built_by_load_model, preset_values=dict(meta.get("preset") or {}), family="exported",
        heads=tuple(_EXPORTED_HEADS[o] for o in meta.get("outputs", ["logits"])[1:] if o in _EXPORTED_HEADS),
    )


#: an exported file's output names (after ``logits``) -> the heads they are (fcndetect.export)
_EXPORTED_HEADS = {"boxes": "box", "landmarks": "landmarks"}


def _check_exported(spec: ModelSpec, o: ModelOptions) -> None:
    if any(v is not None for v in (o.weights, o.num_classes, o.input_size, o.classes, o.mean, o.std)):
        raise ValueError(f"{spec.name}: an exported file carries its weights, classes and preprocessing: "
                         "--weights/--num-classes/--classes/--input-size/--mean/--std do not apply")


def _build_exported(spec: ModelSpec, device: str | torch.device, o: ModelOptions) -> LoadedModel:
    import torch

    from .exported import ExportedDenseModel

    net: ExportedDenseModel
    if known.is_onnx_path(spec.name):
        from .onnx_model import OnnxDenseModel

        net = OnnxDenseModel(spec.name)
    else:
        from .torchscript_model import TorchScriptDenseModel

        net = TorchScriptDenseModel(spec.name, device)
    return LoadedModel(spec=spec, classifier=net, dense=net, groups=spec.groups,  # type: ignore[arg-type]
                       mean=torch.tensor(spec.mean, dtype=torch.float32, device=device),
                       std=torch.tensor(spec.std, dtype=torch.float32, device=device))


register_family(ModelFamily("exported", known.is_exported_path, _describe_exported, _build_exported,
                            model_file=True, check=_check_exported))
# asked before "exported" (registered later): a .pt file that is a P-, R- or O-Net state dict
register_family(ModelFamily("mtcnn-state", _is_mtcnn_state, _describe_mtcnn_state, _build_mtcnn_state,
                            model_file=True, check=_check_mtcnn_state))


# --- torchvision classifiers ---------------------------------------------------------------------------------

def _describe_torchvision(name: str) -> ModelSpec:
    return ModelSpec(name=name, description=f"torchvision {name} (ImageNet classes unless --num-classes)",
                     window=0, mean=_NO_SCALE[0], std=_NO_SCALE[1], groups=(), preset="imagenet",
                     source="torchvision weights (torch hub cache) or --weights PATH", build=_built_by_load_model,
                     family="torchvision")


def _build_torchvision(spec: ModelSpec, device: str | torch.device, o: ModelOptions) -> LoadedModel:
    from .custom import detected_outputs, output_names
    from .torchvision_models import build_torchvision_model, parse_classes

    tv = build_torchvision_model(spec.name, o.weights, o.num_classes, o.input_size, o.mean, o.std)
    if tv.categories is None and o.classes is not None and o.num_classes is not None \
            and not all(str(c).strip().lstrip("-").isdigit() for c in o.classes):
        chosen = detected_outputs(output_names(o.classes, o.num_classes, spec.name))  # a trained checkpoint
    else:
        chosen = parse_classes(o.classes, tv.categories)
    return _finish(spec, tv.model, tv.input_size, tv.mean, tv.std, chosen, tv.source, device)


def _torchvision_hub_file(name: str, weights: str | None) -> Path | None:
    from .torchvision_models import hub_cache_file

    return hub_cache_file(name, weights)


register_family(ModelFamily("torchvision", known.is_torchvision_name, _describe_torchvision, _build_torchvision,
                            hub_file=_torchvision_hub_file))
