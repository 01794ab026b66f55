"""Rewrite a classifier's fully-connected head as convolutions (OverFeat / FCN / DDFD).

A ``Linear`` layer that reads a flattened ``C x k x k`` feature map is exactly a ``k x k`` convolution with
``C`` input channels; every later ``Linear`` is a ``1 x 1`` convolution; a global average pool over the
``k x k`` training-size map becomes a stride-1 ``k x k`` average pool. The converted network slides the whole
classifier over a larger image in one pass, and its output cell ``(i, j)`` is the classifier's logit vector
for the window at ``(stride * j, stride * i)`` (see :mod:`fcndetect.geometry`).

The dense network outputs **logits** (``[B, K, H', W']``); apply ``softmax(dim=1)`` for probabilities.

This module holds the architecture-independent part: :class:`Split` (a classifier cut at its flatten), the
adapter registry that finds one (:func:`register_adapter`; the built-in adapters and the per-family
exactness table are in :mod:`fcndetect.convert.adapters`), the head conversion and
:func:`make_fully_convolutional`.
"""

from __future__ import annotations

import copy
import importlib
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, cast

import torch
from torch import nn

from ..geometry import Geometry, GeometryError

from ..spans import compute_geometry
from .modules import LocalSqueeze, _rebuilt

__all__ = ["ConversionError", "DenseModel", "Split", "make_fully_convolutional", "register_adapter"]

FlattenOrder = Literal["chw", "whc"]


class ConversionError(ValueError):
    """The classifier cannot be made fully convolutional (the message says why)."""


@dataclass
class Split:
    """A classifier cut at its flatten: ``head(flatten(pool(body(x))))``.

    Attributes:
        body: maps ``[B, 3, N, N]`` (native size ``N``) to a feature map ``[B, C, k, k]``; fully convolutional.
        head: the modules applied to the flattened ``[B, C*k*k]`` (or pooled ``[B, C]``) vector.
        pool: ``"avg"``/``"max"`` for a global pool before the flatten, ``None`` for a plain flatten.
        flatten: memory order of the flatten: ``"chw"`` (``torch.flatten``) or ``"whc"`` (the MTCNN
            nets permute to ``(B, W, H, C)`` before ``view``).
        regressor: optional box-regression layers that read the same hidden vector as the head's last
            ``Linear`` (MTCNN: ``[dx1, dy1, dx2, dy2]`` offsets in window sides).
        conv_head: for classifiers whose head is already convolutional (SqueezeNet: ``Conv2d 1x1, ReLU``
            then the global pool): modules applied to the body's ``[B, C, k, k]`` map *before* ``pool``;
            ``head`` must then be empty (the pooled ``[B, K, 1, 1]`` map is the logits).
        extra: adapter-specific data (``"adaptive"``: a non-global adaptive pool that must be the
            identity at the native size).
    """

    body: nn.Module
    head: list[nn.Module]
    pool: Literal["avg", "max"] | None = None
    flatten: FlattenOrder = "chw"
    regressor: list[nn.Module] | None = None
    extra: dict[str, object] = field(default_factory=dict)
    conv_head: list[nn.Module] | None = None


class DenseModel(nn.Module):
    """A fully-convolutional classifier: ``[B, 3, H, W]`` images to ``[B, K, H', W']`` class **logits**.

    Attributes:
        geometry: where each output cell looks in the input (:class:`fcndetect.geometry.Geometry`).
        body: the convolutional trunk of the original classifier (shared modules, not copies; where a
            module is swapped, e.g. an SE block's global pool for a :class:`LocalSqueeze`, the containers
            above it are shallow copies that still share every weight).
        hidden: the converted head up to its last linear layer (pooling, convolutions, activations).
        classifier: the converted last linear layer: hidden features to ``K`` logits per cell.
        regressor: optional converted box-regression layers (``[B, 4, H', W']``), or ``None``.
    """

    def __init__(
        self,
        body: nn.Module,
        hidden: nn.Sequential,
        classifier: nn.Module,
        window: int,
        regressor: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.body = body
        self.hidden = hidden
        self.classifier = classifier
        self.regressor = regressor
        self.geometry: Geometry = compute_geometry(self, window)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, 3, H, W]`` -> ``[B, K, H', W']`` logits."""
        return self.classifier(self.hidden(self.body(x)))

    def forward_with_regression(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(logits [B, K, H', W'], regression [B, 4, H', W'] or None)`` in one pass."""
        h = self.hidden(self.body(x))
        return self.classifier(h), (self.regressor(h) if self.regressor is not None else None)


def _is_torchvision(m: nn.Module, module: str, name: str) -> bool:
    """Whether ``m`` is an instance of torchvision's ``module.name``; looked up only where that module is loaded
    already (``m`` could not be one otherwise), so converting a network never imports torchvision."""
    cls = getattr(sys.modules.get(module), name, None)
    return cls is not None and isinstance(m, cls)


def _is_squeeze_excitation(m: nn.Module) -> bool:
    return _is_torchvision(m, "torchvision.ops.misc", "SqueezeExcitation")


def _localise_squeezes(body: nn.Module, probe: torch.Tensor) -> tuple[nn.Module, torch.Tensor]:
    """Run ``body`` on the native-size ``probe`` and replace each SE block's global pool by :class:`LocalSqueeze`.

    Returns ``(body', features)``: ``body'`` shares all weights with ``body`` (which is left as is) and
    ``features`` is ``body(probe)``, ``[1, C, k, k]``.
    """
    sizes: dict[int, tuple[int, int]] = {}
    handles = []
    for m in body.modules():
        pool = m.avgpool if _is_squeeze_excitation(m) else None
        if isinstance(pool, nn.Module) and _global_kind(pool) == "avg":

            def hook(mod: nn.Module, args: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
                sizes[id(mod)] = (int(args[0].shape[-2]), int(args[0].shape[-1]))

            handles.append(pool.register_forward_hook(hook))
    try:
        feat = body(probe)
    finally:
        for h in handles:
            h.remove()
    if not sizes:
        return body, feat

    def swap(m: nn.Module) -> nn.Module | None:
        if _is_squeeze_excitation(m) and id(m.avgpool) in sizes:
            se = copy.copy(m)
            se._modules = {**m._modules, "avgpool": LocalSqueeze(sizes[id(m.avgpool)])}
            return se
        return None

    return _rebuilt(body, swap), feat


Adapter = Callable[[nn.Module], Split]
_ADAPTERS: list[tuple[Callable[[nn.Module], bool], Adapter]] = []


def register_adapter(predicate: Callable[[nn.Module], bool]) -> Callable[[Adapter], Adapter]:
    """Decorator: register ``adapter(model) -> Split`` for models where ``predicate(model)`` holds.

    Adapters registered later are tried first, so users can override the built-in ones.
    """

    def wrap(adapter: Adapter) -> Adapter:
        _ADAPTERS.insert(0, (predicate, adapter))
        return adapter

    return wrap


def register_builtin_adapter(predicate: Callable[[nn.Module], bool]) -> Callable[[Adapter], Adapter]:
    """Decorator for fcndetect's own adapters: tried before the built-ins registered earlier, as
    :func:`register_adapter` would, but after every user adapter, also when a built-in family registers
    later (the torchvision families register on first need)."""

    def wrap(adapter: Adapter) -> Adapter:
        global _N_BUILTIN
        _ADAPTERS.insert(len(_ADAPTERS) - _N_BUILTIN, (predicate, adapter))
        _N_BUILTIN += 1
        return adapter

    return wrap


_N_BUILTIN = 0  # the last _N_BUILTIN entries of _ADAPTERS are fcndetect's own
_TORCHVISION_ADAPTERS = __name__.rpartition(".")[0] + ".torchvision_adapters"


def _is_adaptive(m: nn.Module) -> bool:
    return isinstance(m, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d))


def _global_kind(m: nn.Module) -> Literal["avg", "max"] | None:
    if _is_adaptive(m) and tuple(_as_pair(m.output_size)) == (1, 1):
        return "avg" if isinstance(m, nn.AdaptiveAvgPool2d) else "max"
    return None


def _as_pair(v: object) -> tuple[object, object]:
    return (v[0], v[1]) if isinstance(v, (tuple, list)) else (v, v)


def _split(model: nn.Module) -> Split:
    for predicate, adapter in _ADAPTERS:
        if predicate(model):
            return adapter(model)
    if _TORCHVISION_ADAPTERS not in sys.modules:
        # the torchvision families register on first need: their module imports torchvision's models (over
        # a second), which a network that another adapter takes never needs
        importlib.import_module(_TORCHVISION_ADAPTERS)
        return _split(model)
    raise ConversionError(
        f"don't know how to make {type(model).__name__} fully convolutional: "
        "register an adapter with fcndetect.convert.register_adapter"
    )


def _linear_to_conv(lin: nn.Linear, channels: int, k_h: int, k_w: int, flatten: FlattenOrder) -> nn.Conv2d:
    """A ``Linear(channels * k_h * k_w -> out)`` as a ``k_h x k_w`` convolution with the same weights."""
    if lin.in_features != channels * k_h * k_w:
        raise ConversionError(
            f"Linear expects {lin.in_features} inputs but the feature map is {channels}x{k_h}x{k_w}"
        )
    conv = nn.Conv2d(channels, lin.out_features, (k_h, k_w), bias=lin.bias is not None)
    w = lin.weight.detach()
    if flatten == "chw":
        w4 = w.reshape(lin.out_features, channels, k_h, k_w)
    else:  # flattened as (W, H, C)
        w4 = w.reshape(lin.out_features, k_w, k_h, channels).permute(0, 3, 2, 1)
    with torch.no_grad():
        conv.weight.copy_(w4)
        if lin.bias is not None and conv.bias is not None:
            conv.bias.copy_(lin.bias.detach())
    return conv.to(device=w.device, dtype=w.dtype)


def _bn1d_to_2d(bn: nn.BatchNorm1d) -> nn.BatchNorm2d:
    out = nn.BatchNorm2d(bn.num_features, bn.eps, bn.momentum, bn.affine, bn.track_running_stats)
    out.load_state_dict(bn.state_dict())
    return out.eval()


_HEAD_POINTWISE = (
    nn.ReLU, nn.ReLU6, nn.PReLU, nn.LeakyReLU, nn.ELU, nn.SELU, nn.GELU, nn.SiLU,
    nn.Hardswish, nn.Hardsigmoid, nn.Sigmoid, nn.Tanh, nn.Mish, nn.Identity,
)


def _convert_head(
    head: list[nn.Module], channels: int, k_h: int, k_w: int, flatten: FlattenOrder
) -> list[nn.Module]:
    """Convolutional versions of the head layers that read a ``[B, channels, k_h, k_w]`` map.

    Before the first ``Linear``, elementwise activations commute with the flatten and are kept; when the
    map was globally pooled (``k_h = k_w = 1``) per-vector normalisations become per-position ones:
    ``BatchNorm1d`` -> ``BatchNorm2d``, and ConvNeXt's ``LayerNorm2d`` (normalise over channels at each
    position) is kept as is, so it runs on the stride-1 pooled map exactly as on the pooled vector.
    """
    out: list[nn.Module] = []
    first_linear = True
    pooled = k_h == 1 and k_w == 1
    for i, m in enumerate(head):
        if isinstance(m, (nn.Dropout, nn.Dropout1d, nn.AlphaDropout)):
            continue  # identity in eval
        if isinstance(m, nn.Flatten):
            continue
        if isinstance(m, nn.Linear):
            if first_linear:
                out.append(_linear_to_conv(m, channels, k_h, k_w, flatten))
                first_linear = False
            else:
                out.append(_linear_to_conv(m, m.in_features, 1, 1, "chw"))
            continue
        if first_linear and not pooled and not isinstance(m, _HEAD_POINTWISE):
            raise ConversionError(f"head layer {type(m).__name__} before the first Linear is not supported")
        if first_linear and _is_torchvision(m, "torchvision.models.convnext", "LayerNorm2d"):
            out.append(m)
            continue
        if isinstance(m, (nn.Softmax, nn.LogSoftmax)):
            if any(isinstance(x, (nn.Linear, nn.BatchNorm1d)) for x in head[i + 1 :]):
                raise ConversionError("a softmax inside the head is not supported")
            continue  # the dense net outputs logits
        if isinstance(m, nn.BatchNorm1d):
            out.append(_bn1d_to_2d(m))
        elif isinstance(m, _HEAD_POINTWISE):
            out.append(m)
        else:
            raise ConversionError(f"head layer {type(m).__name__} has no convolutional equivalent")
    if first_linear:
        raise ConversionError("classifier head has no Linear layer")
    return out


@torch.no_grad()
def make_fully_convolutional(model: nn.Module, input_size: int) -> DenseModel:
    """Turn a classifier into a dense network that slides it over larger inputs.

    Args:
        model: a classifier mapping ``[B, 3, N, N]`` images (``N = input_size``) to ``[B, K]`` scores.
            Its modules are shared with the result, not copied; it is put in eval mode. Where the
            trunk needs a module swapped (the global pool of squeeze-and-excitation blocks becomes a
            :class:`LocalSqueeze`; ShuffleNet units are wrapped in :class:`BranchedBlock`), the
            containers on the way are shallow copies: the weights stay shared and ``model`` itself
            is not modified.
        input_size: the classifier's native input side ``N`` (its training crop: 48 for O-Net,
            24 for R-Net, 224 for most torchvision weights; :data:`TORCHVISION_ARCHS` for the others).

    Returns:
        a :class:`DenseModel` mapping ``[B, 3, H, W]`` (``H, W >= N``) to ``[B, K, H', W']`` **logits**
        (pre-softmax; any softmax at the end of the head is dropped), with ``.geometry``.

    Raises:
        ConversionError: the architecture or one of its head layers has no dense equivalent, or the
            network's sliding-window geometry cannot be mapped (an operation of unknown spatial effect,
            or rows and columns with different strides: the message names it;
            see :mod:`fcndetect.geometry`).
    """
    model.eval()
    split = _split(model)
    split.body.eval()
    param = next(model.parameters(), None)
    probe = torch.zeros(1, 3, input_size, input_size)
    if param is not None:
        probe = probe.to(device=param.device, dtype=param.dtype)
    body, feat = _localise_squeezes(split.body, probe)
    if feat.dim() != 4:
        raise ConversionError(f"the convolutional trunk returned a {feat.dim()}-D tensor, expected 4-D")
    _, channels, k_h, k_w = feat.shape
    pre: list[nn.Module] = []
    adaptive = split.extra.get("adaptive")
    if isinstance(adaptive, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
        target = tuple(int(v) if isinstance(v, int) else s for v, s in zip(_as_pair(adaptive.output_size), (k_h, k_w)))
        if target != (k_h, k_w):
            raise ConversionError(
                f"{type(adaptive).__name__}{target} changes the {k_h}x{k_w} map of a {input_size}px input: "
                f"use the input size the classifier was trained at"
            )
    if split.conv_head is not None:  # already convolutional: conv head, then the stride-1 pool
        if split.head or split.pool is None:
            raise ConversionError("a convolutional head must be followed by a global pool and nothing else")
        pre = list(split.conv_head)
        k_h, k_w = nn.Sequential(*pre)(feat).shape[-2:]
    if split.pool == "avg":
        pre.append(nn.AvgPool2d((k_h, k_w), stride=1))
    elif split.pool == "max":
        pre.append(nn.MaxPool2d((k_h, k_w), stride=1))
    if split.pool is not None:
        k_h = k_w = 1
    head = [] if split.conv_head is not None else _convert_head(split.head, channels, k_h, k_w, split.flatten)
    layers = [*pre, *head]
    last = max((i for i, m in enumerate(layers) if isinstance(m, nn.Conv2d)), default=None)
    if last is None:
        raise ConversionError("the converted head has no convolution")
    hidden, classifier = nn.Sequential(*layers[:last]), nn.Sequential(*layers[last:])
    regressor = None
    if split.regressor:
        last_conv = cast(nn.Conv2d, layers[last])  # found by isinstance above
        regressor = nn.Sequential(*_convert_head(split.regressor, last_conv.in_channels, 1, 1, "chw"))
    try:
        dense = DenseModel(body, hidden, classifier, input_size, regressor)
    except GeometryError as exc:
        raise ConversionError(f"{type(model).__name__}: {exc}") from exc
    if param is not None:
        dense = dense.to(device=param.device, dtype=param.dtype)
    return dense.eval()
