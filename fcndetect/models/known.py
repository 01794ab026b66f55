"""What the model registry knows without importing a model's module (or torch): the names each family
recognises and the facts ``fcndetect models`` prints. A leaf: imports nothing of fcndetect, nor torch.

The torchvision tables are torchvision's own, written out (:data:`TORCHVISION_ARCHS`); a test compares them
with the installed torchvision (tests/models/test_known.py), so a torchvision upgrade that adds or
changes an architecture fails it until the table is regenerated.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "BUILTIN_ARCHS",
    "TORCHSCRIPT_SUFFIXES",
    "TORCHVISION_ARCHS",
    "TORCHVISION_UNCONVERTIBLE",
    "Described",
    "hub_checkpoints_dir",
    "is_exported_path",
    "is_factory_path",
    "is_onnx_path",
    "is_torchscript_path",
    "is_torchvision_name",
]

#: Suffixes under which ``--model FILE`` is taken for an exported TorchScript file.
TORCHSCRIPT_SUFFIXES = (".pt", ".pth", ".ts", ".torchscript", ".jit")


def is_onnx_path(name: str) -> bool:
    """Whether ``--model name`` names an exported ONNX file (by its suffix)."""
    return name.lower().endswith(".onnx")


def is_torchscript_path(name: str) -> bool:
    """Whether ``--model name`` names a file to be read as an exported TorchScript model (by its suffix)."""
    return name.lower().endswith(TORCHSCRIPT_SUFFIXES)


def is_exported_path(name: str) -> bool:
    """Whether ``--model name`` names an exported model file (ONNX or TorchScript)."""
    return is_onnx_path(name) or is_torchscript_path(name)


def is_factory_path(name: str) -> bool:
    """Whether ``name`` is a ``package.module:factory`` import path (not a file, not a built-in name)."""
    module, sep, attr = name.partition(":")
    return bool(sep and module and attr) and "/" not in name and "\\" not in name and not module.endswith(
        (".onnx", ".pt", ".pth"))


@dataclass(frozen=True)
class Described:
    """A model's facts as ``fcndetect models`` prints them: its window (native input side), the stride and
    receptive field of its dense network (pixels), and one line saying what it is."""

    window: int
    stride: int
    receptive_field: int
    description: str


#: fcndetect's own trainable architectures (:data:`fcndetect.models.custom.BUILTIN_ARCHS` builds them), at
#: their default input size.
BUILTIN_ARCHS: dict[str, Described] = {
    "tiny": Described(34, 4, 34, "small CNN with a fully-connected head for `fcndetect train` (34 px window, "
                                 "~4 MFLOPs)"),
}


#: Every convolutional torchvision classification builder -> (native input side: its default weights' crop
#: size, the file name of its DEFAULT weights in torch hub's cache).
TORCHVISION_ARCHS: dict[str, tuple[int, str]] = {
    "alexnet": (224, "alexnet-owt-7be5be79.pth"),
    "convnext_base": (224, "convnext_base-6075fbad.pth"),
    "convnext_large": (224, "convnext_large-ea097f82.pth"),
    "convnext_small": (224, "convnext_small-0c510722.pth"),
    "convnext_tiny": (224, "convnext_tiny-983f1562.pth"),
    "densenet121": (224, "densenet121-a639ec97.pth"),
    "densenet161": (224, "densenet161-8d451a50.pth"),
    "densenet169": (224, "densenet169-b2777c0a.pth"),
    "densenet201": (224, "densenet201-c1103571.pth"),
    "efficientnet_b0": (224, "efficientnet_b0_rwightman-7f5810bc.pth"),
    "efficientnet_b1": (240, "efficientnet_b1-c27df63c.pth"),
    "efficientnet_b2": (288, "efficientnet_b2_rwightman-c35c1473.pth"),
    "efficientnet_b3": (300, "efficientnet_b3_rwightman-b3899882.pth"),
    "efficientnet_b4": (380, "efficientnet_b4_rwightman-23ab8bcd.pth"),
    "efficientnet_b5": (456, "efficientnet_b5_lukemelas-1a07897c.pth"),
    "efficientnet_b6": (528, "efficientnet_b6_lukemelas-24a108a5.pth"),
    "efficientnet_b7": (600, "efficientnet_b7_lukemelas-c5b4e57e.pth"),
    "efficientnet_v2_l": (480, "efficientnet_v2_l-59c71312.pth"),
    "efficientnet_v2_m": (480, "efficientnet_v2_m-dc08266a.pth"),
    "efficientnet_v2_s": (384, "efficientnet_v2_s-dd5fe13b.pth"),
    "googlenet": (224, "googlenet-1378be20.pth"),
    "inception_v3": (299, "inception_v3_google-0cc3c7bd.pth"),
    "mnasnet0_5": (224, "mnasnet0.5_top1_67.823-3ffadce67e.pth"),
    "mnasnet0_75": (224, "mnasnet0_75-7090bc5f.pth"),
    "mnasnet1_0": (224, "mnasnet1.0_top1_73.512-f206786ef8.pth"),
    "mnasnet1_3": (224, "mnasnet1_3-a4c69d6f.pth"),
    "mobilenet_v2": (224, "mobilenet_v2-7ebf99e0.pth"),
    "mobilenet_v3_large": (224, "mobilenet_v3_large-5c1a4163.pth"),
    "mobilenet_v3_small": (224, "mobilenet_v3_small-047dcff4.pth"),
    "regnet_x_16gf": (224, "regnet_x_16gf-ba3796d7.pth"),
    "regnet_x_1_6gf": (224, "regnet_x_1_6gf-a12f2b72.pth"),
    "regnet_x_32gf": (224, "regnet_x_32gf-6eb8fdc6.pth"),
    "regnet_x_3_2gf": (224, "regnet_x_3_2gf-7071aa85.pth"),
    "regnet_x_400mf": (224, "regnet_x_400mf-62229a5f.pth"),
    "regnet_x_800mf": (224, "regnet_x_800mf-94a99ebd.pth"),
    "regnet_x_8gf": (224, "regnet_x_8gf-2b70d774.pth"),
    "regnet_y_128gf": (384, "regnet_y_128gf_swag-c8ce3e52.pth"),
    "regnet_y_16gf": (224, "regnet_y_16gf-3e4a00f9.pth"),
    "regnet_y_1_6gf": (224, "regnet_y_1_6gf-0d7bc02a.pth"),
    "regnet_y_32gf": (224, "regnet_y_32gf-8db6d4b5.pth"),
    "regnet_y_3_2gf": (224, "regnet_y_3_2gf-9180c971.pth"),
    "regnet_y_400mf": (224, "regnet_y_400mf-e6988f5f.pth"),
    "regnet_y_800mf": (224, "regnet_y_800mf-58fc7688.pth"),
    "regnet_y_8gf": (224, "regnet_y_8gf-dc2b1b54.pth"),
    "resnet101": (224, "resnet101-cd907fc2.pth"),
    "resnet152": (224, "resnet152-f82ba261.pth"),
    "resnet18": (224, "resnet18-f37072fd.pth"),
    "resnet34": (224, "resnet34-b627a593.pth"),
    "resnet50": (224, "resnet50-11ad3fa6.pth"),
    "resnext101_32x8d": (224, "resnext101_32x8d-110c445d.pth"),
    "resnext101_64x4d": (224, "resnext101_64x4d-173b62eb.pth"),
    "resnext50_32x4d": (224, "resnext50_32x4d-1a0047aa.pth"),
    "shufflenet_v2_x0_5": (224, "shufflenetv2_x0.5-f707e7126e.pth"),
    "shufflenet_v2_x1_0": (224, "shufflenetv2_x1-5666bf0f80.pth"),
    "shufflenet_v2_x1_5": (224, "shufflenetv2_x1_5-3c479a10.pth"),
    "shufflenet_v2_x2_0": (224, "shufflenetv2_x2_0-8be3c8ee.pth"),
    "squeezenet1_0": (224, "squeezenet1_0-b66bff10.pth"),
    "squeezenet1_1": (224, "squeezenet1_1-b8a52dc0.pth"),
    "vgg11": (224, "vgg11-8a719046.pth"),
    "vgg11_bn": (224, "vgg11_bn-6002323d.pth"),
    "vgg13": (224, "vgg13-19584684.pth"),
    "vgg13_bn": (224, "vgg13_bn-abd245e5.pth"),
    "vgg16": (224, "vgg16-397923af.pth"),
    "vgg16_bn": (224, "vgg16_bn-6c64b313.pth"),
    "vgg19": (224, "vgg19-dcbb9e9d.pth"),
    "vgg19_bn": (224, "vgg19_bn-c79401a0.pth"),
    "wide_resnet101_2": (224, "wide_resnet101_2-d733dc28.pth"),
    "wide_resnet50_2": (224, "wide_resnet50_2-9ba9bcbe.pth"),
}

#: torchvision classification builders that cannot be made fully convolutional (the reason is given when one
#: is loaded: :data:`fcndetect.convert.UNSUPPORTED_ARCHS`).
TORCHVISION_UNCONVERTIBLE: tuple[str, ...] = ("maxvit_t", "swin_b", "swin_s", "swin_t", "swin_v2_b", "swin_v2_s", "swin_v2_t", "vit_b_16", "vit_b_32", "vit_h_14", "vit_l_16", "vit_l_32")


def is_torchvision_name(name: str) -> bool:
    """Whether ``name`` is a torchvision classification builder (convertible or not)."""
    return name in TORCHVISION_ARCHS or name in TORCHVISION_UNCONVERTIBLE


def hub_checkpoints_dir() -> Path:
    """torch hub's ``checkpoints`` folder, as :func:`torch.hub.get_dir` names it, without importing torch
    (where torch.hub is loaded, its own answer, which honours :func:`torch.hub.set_dir`)."""
    hub = sys.modules.get("torch.hub")
    return (Path(hub.get_dir()) if hub is not None else _default_hub_dir()) / "checkpoints"


def _default_hub_dir() -> Path:
    """torch hub's folder where :func:`torch.hub.set_dir` was not called: ``$TORCH_HOME/hub``, by default
    ``$XDG_CACHE_HOME/torch/hub`` (``~/.cache/torch/hub``)."""
    home = os.getenv("TORCH_HOME", os.path.join(os.getenv("XDG_CACHE_HOME", "~/.cache"), "torch"))
    return Path(os.path.expanduser(home)) / "hub"
