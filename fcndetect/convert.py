"""Rewrite a classifier's fully-connected head as convolutions (OverFeat / FCN / DDFD).

A ``Linear`` layer that reads a flattened ``C x k x k`` feature map is exactly a ``k x k`` convolution with
``C`` input channels; every later ``Linear`` is a ``1 x 1`` convolution; a global average pool over the
``k x k`` training-size map becomes a stride-1 ``k x k`` average pool. The converted network slides the whole
classifier over a larger image in one pass, and its output cell ``(i, j)`` is the classifier's logit vector
for the window at ``(stride * j, stride * i)`` (see :mod:`fcndetect.geometry`).

The dense network outputs **logits** (``[B, K, H', W']``); apply ``softmax(dim=1)`` for probabilities.

torchvision classifiers
-----------------------
Every convolutional torchvision classification builder is supported (:data:`TORCHVISION_ARCHS`, with
its native input side ``N``); the transformers are refused with the reason (:data:`UNSUPPORTED_ARCHS`).
At the native size every converted net *is* its classifier: one cell whose logits match to float
rounding (measured <= 3e-6 relative on random weights; tested at 1e-4, tests/test_convert_torchvision.py).
On a larger input, cell ``(i, j)`` is compared with the classifier run on the crop at
``(stride * j, stride * i)``:

* **exact** for a net without padding (tested on AlexNet with its paddings removed, ``N = 355``). Every
  torchvision net pads, so none is crop-exact: a crop's layers see zeros at the crop border where the
  dense net sees the neighbouring pixels (inherent to sliding a padded net in one pass);
* **padding only**: the layers are the classifier's own and only padding (and, for GoogLeNet and
  SqueezeNet, ceil-mode pools whose last window overhangs the crop) separate cell and crop;
* **+ LocalSqueeze**: squeeze-and-excitation blocks pool their *whole* input; the dense net replaces each
  such global pool by :class:`LocalSqueeze` (a ``(2m - 1)``-wide stride-1 box mean, ``m`` = the block's
  map side at ``N``): exact at ``N``, an approximation of the crop's pool on larger inputs.

==========================  ==========================================================  ===============
family                      dense version (body -> head)                                larger inputs
==========================  ==========================================================  ===============
AlexNet                     features -> FC-6 as 6x6 conv, FC-7/8 as 1x1                 padding only
VGG 11/13/16/19 (+BN)       features -> FC-6 as 7x7 conv, FC-7/8 as 1x1                 padding only
ResNet, ResNeXt, Wide       conv1..layer4 -> 7x7 stride-1 avg pool, fc as 1x1           padding only
DenseNet 121/161/169/201    features + ReLU -> 7x7 avg pool, classifier as 1x1          padding only
MobileNet V2                features -> 7x7 avg pool, classifier                        padding only
ShuffleNet V2 (all)         conv1..conv5 (units in :class:`BranchedBlock`) -> pool, fc  padding only
MNASNet (all)               layers -> pool, classifier                                  padding only
GoogLeNet, Inception V3     [:class:`ChannelAffine`] trunk -> pool, fc (aux unused)     padding only
SqueezeNet 1.0/1.1          features -> conv 1x1 + ReLU -> 13x13 stride-1 avg pool      padding only
ConvNeXt T/S/B/L            features -> 7x7 pool -> LayerNorm2d per position -> 1x1     padding only
RegNet X (all)              stem, trunk_output -> pool, fc                              padding only
EfficientNet B0-B7, V2      features (SE pools -> LocalSqueeze) -> pool, classifier     + LocalSqueeze
MobileNet V3 small/large    features (SE pools -> LocalSqueeze) -> pool, classifier     + LocalSqueeze
RegNet Y (all)              stem, trunk_output (SE -> LocalSqueeze) -> pool, fc         + LocalSqueeze
ViT, Swin (V1/V2), MaxViT   ConversionError: global or grid-anchored attention           refused
==========================  ==========================================================  ===============

Measured cell-vs-crop differences, 3x3 maps on ``sample_images/astronaut.png`` (``N + 2 stride`` px),
**random weights** (seed 0) with BatchNorm statistics calibrated on two other sample images (random BN
statistics make most nets nearly input-independent). ``rel`` = max |cell - crop| / max |crop logit|;
``/spread`` = the same difference over the largest change of a crop's logits across the 9 crops
(``tests/test_convert_torchvision.py::crop_differences``). For SE nets, ``global`` is the same measure when
each SE block keeps its global pool over the whole large input instead of :class:`LocalSqueeze`.

==================  =====  =======     ==================  =====  =======  ======
padding only         rel   /spread     + LocalSqueeze       rel   /spread  global
==================  =====  =======     ==================  =====  =======  ======
convnext_tiny       0.087   0.13       mobilenet_v3_large  0.408   1.09    0.386
alexnet             0.112   1.15       regnet_y_400mf      0.427   1.40    0.446
squeezenet1_1       0.137   2.94       mobilenet_v3_small  0.485   1.31    0.476
resnet50            0.168   0.65       efficientnet_v2_s   0.679   1.27    0.783
densenet121         0.239   1.41       efficientnet_b0     0.758   1.61    0.602
shufflenet_v2_x1_0  0.240   1.17
googlenet           0.302   1.28
vgg16               0.323   1.57
mobilenet_v2        0.330   2.39
regnet_x_400mf      0.349   1.47
inception_v3        0.385   1.93
mnasnet1_0          0.461   1.78
==================  =====  =======     ==================  =====  =======  ======

On 7x7 maps (``N + 6 stride``): mobilenet_v2 0.456, resnet50 0.334, shufflenet_v2_x1_0 0.395; with
LocalSqueeze (global pool instead): efficientnet_b0 0.655 (0.631), mobilenet_v3_small 0.452 (0.406),
mobilenet_v3_large 0.487 (0.457), regnet_y_400mf 0.591 (0.588). Against the mean over each crop's own
window of the dense features (the crop's SE pool, minus its padding), a whole-image pool drifts further than
LocalSqueeze as the image grows (7x7: 0.82 vs 0.63 for mobilenet_v3_large, 1.59 vs 1.38 for
efficientnet_b0). Reading: with random weights padding dominates (differences comparable to the change
between neighbouring windows), SE nets come out worse than plain ones (0.41-0.76 vs 0.09-0.46), and
against the crops themselves LocalSqueeze and a global pool are within 0.16 of each other with no
consistent winner; LocalSqueeze is kept because it is exact at ``N`` and bounds each cell's context
independently of the image size. Random nets amplify small perturbations, so these are pessimistic
proxies: re-measure with trained weights using ``crop_differences``.

Map size: ``H' = floor((H - N) / stride) + 1`` whenever ``H - N`` is a multiple of the stride (all
architectures). Otherwise a net whose layers need fewer than ``N`` pixels for one cell can give one more
cell, whose window overhangs the bottom/right edge by less than a stride: padded stride-2 convolutions and
pools round up (ResNet, RegNet, MobileNet, EfficientNet, MNASNet, ShuffleNet, DenseNet), ceil-mode pools
(GoogLeNet, SqueezeNet), AlexNet's stride-4 stem (223 px suffice). VGG, ConvNeXt and Inception V3, whose
windows are tight, never do. :func:`fcndetect.geometry.dense_output_size` always predicts it.
The receptive field of SE nets spans thousands of pixels (each :class:`LocalSqueeze` widens it by
``2 (m - 1)`` feature positions), although each cell's window is ``N``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import torch
import torchvision.models as tvm
from torch import nn
from torchvision.models import convnext as _tv_convnext
from torchvision.models import shufflenetv2 as _tv_shufflenet
from torchvision.ops.misc import SqueezeExcitation

from .geometry import Geometry, _merge, _Span, _walk, _window_op, compute_geometry

__all__ = [
    "TORCHVISION_ARCHS",
    "UNSUPPORTED_ARCHS",
    "BranchedBlock",
    "ChannelAffine",
    "ConversionError",
    "DenseNet",
    "LocalSqueeze",
    "Split",
    "make_fully_convolutional",
    "register_adapter",
]

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


class DenseNet(nn.Module):
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


def _box_mean(x: torch.Tensor, dim: int, radius: int) -> torch.Tensor:
    """Mean of ``x`` over ``[i - radius, i + radius]`` (clipped to the axis) at every index ``i`` of ``dim``.

    Same shape as ``x``; the divisor is the number of in-range elements (``count_include_pad=False``).
    Prefix sums make it ``O(n)`` whatever the radius (an ``AvgPool2d`` of side ``2m - 1`` costs ``O(n m)``).
    """
    n = x.shape[dim]
    if radius >= n - 1:  # every window covers the whole axis (the native size): a plain mean
        return x.mean(dim, keepdim=True).expand_as(x)
    acc = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
    prefix = torch.cumsum(acc, dim)
    prefix = torch.cat([torch.zeros_like(prefix.narrow(dim, 0, 1)), prefix], dim)  # n + 1 entries
    idx = torch.arange(n, device=x.device)
    lo = (idx - radius).clamp(min=0)
    hi = (idx + radius + 1).clamp(max=n)
    shape = [1] * x.dim()
    shape[dim] = n
    count = (hi - lo).to(acc.dtype).view(shape)
    return ((prefix.index_select(dim, hi) - prefix.index_select(dim, lo)) / count).to(x.dtype)


class LocalSqueeze(nn.Module):
    """Local stand-in for the global average pool of a squeeze-and-excitation block.

    ``[B, C, H, W] -> [B, C, H, W]``: the mean over a ``(2 m_h - 1) x (2 m_w - 1)`` window centred on each
    position, clipped at the borders and divided by the number of in-range positions, i.e.
    ``AvgPool2d(2m - 1, stride=1, padding=m - 1, count_include_pad=False)`` (computed with prefix sums).
    ``(m_h, m_w)`` is the block's feature-map size at the classifier's native input size, so at that size
    every position averages the whole map and the block is exactly the original one (whose
    ``[B, C, 1, 1]`` result broadcasts to the same values). On larger inputs each position pools a
    window about as large as its classifier window at that depth: an approximation of classifying
    crop by crop (see the module docstring for measured differences).

    Attributes:
        size: ``(m_h, m_w)``, the feature-map size at the native input size.
    """

    def __init__(self, size: tuple[int, int]) -> None:
        super().__init__()
        self.size = (int(size[0]), int(size[1]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C, H, W]`` -> ``[B, C, H, W]`` local means."""
        return _box_mean(_box_mean(x, 2, self.size[0] - 1), 3, self.size[1] - 1)

    def fcn_span(self, span: _Span, axis: int) -> _Span:
        """Geometry hook (:mod:`fcndetect.geometry`): same size and stride, receptive field grown by the window."""
        m = self.size[axis]
        return _window_op(span, 2 * m - 1, 1, m - 1, 1, False, "LocalSqueeze")

    def extra_repr(self) -> str:
        return f"size={self.size}, kernel={tuple(2 * m - 1 for m in self.size)}"


class ChannelAffine(nn.Module):
    """``[B, C, H, W] -> [B, C, H, W]``: ``x * scale[c] + shift[c]`` per channel (a per-position op).

    Stands in for GoogLeNet's and Inception V3's ``transform_input`` (which re-normalises ImageNet
    inputs to the ``[-1, 1]`` range the original weights were trained with).
    """

    fcn_pointwise = True

    def __init__(self, scale: list[float], shift: list[float]) -> None:
        super().__init__()
        self.register_buffer("scale", torch.tensor(scale, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("shift", torch.tensor(shift, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C, H, W]`` -> ``[B, C, H, W]``."""
        return x * self.scale + self.shift


class BranchedBlock(nn.Module):
    """Wraps a block that torch.fx cannot trace but whose output combines parallel branches of its input.

    ``forward`` is the wrapped block's own (``[B, C, H, W] -> [B, C', H', W']``); for the geometry walk
    the block is opaque and its span is the merge of the spans of the named branches (a missing or
    empty branch is the identity). Used for ShuffleNet V2 units (``x.chunk`` / ``channel_shuffle``
    unpack ``x.size()``, which fx cannot trace).

    Attributes:
        block: the wrapped module (shared, not copied).
        branches: names of ``block``'s submodules that each read the block's input.
    """

    def __init__(self, block: nn.Module, branches: list[str]) -> None:
        super().__init__()
        self.block = block
        self.branches = list(branches)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C, H, W]`` -> the wrapped block's output."""
        return self.block(x)

    def fcn_span(self, span: _Span, axis: int) -> _Span:
        """Geometry hook: merge of the branch spans (all branches must have the same stride)."""
        return _merge([_walk(getattr(self.block, b), span, axis) for b in self.branches], type(self.block).__name__)


def _rebuilt(module: nn.Module, replace: Callable[[nn.Module], nn.Module | None]) -> nn.Module:
    """``module`` with every submodule ``m`` for which ``replace(m)`` is not ``None`` swapped for that result.

    Copy-on-write: containers on the path to a replaced module are shallow copies (their parameters,
    buffers and other children are shared), so the original model is left untouched and no weights
    are duplicated. Returns ``module`` itself when nothing is replaced.
    """
    new = replace(module)
    if new is not None:
        return new
    changed = {name: _rebuilt(child, replace) for name, child in module.named_children()}
    changed = {name: m for name, m in changed.items() if m is not module._modules[name]}
    if not changed:
        return module
    clone = copy.copy(module)
    clone._modules = {**module._modules, **changed}
    return clone


def _localise_squeezes(body: nn.Module, probe: torch.Tensor) -> tuple[nn.Module, torch.Tensor]:
    """Run ``body`` on the native-size ``probe`` and replace each SE block's global pool by :class:`LocalSqueeze`.

    Returns ``(body', features)``: ``body'`` shares all weights with ``body`` (which is left as is) and
    ``features`` is ``body(probe)``, ``[1, C, k, k]``.
    """
    sizes: dict[int, tuple[int, int]] = {}
    handles = []
    for m in body.modules():
        if isinstance(m, SqueezeExcitation) and _global_kind(m.avgpool) == "avg":

            def hook(mod: nn.Module, args: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
                sizes[id(mod)] = (int(args[0].shape[-2]), int(args[0].shape[-1]))

            handles.append(m.avgpool.register_forward_hook(hook))
    try:
        feat = body(probe)
    finally:
        for h in handles:
            h.remove()
    if not sizes:
        return body, feat

    def swap(m: nn.Module) -> nn.Module | None:
        if isinstance(m, SqueezeExcitation) and id(m.avgpool) in sizes:
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


def _is_adaptive(m: nn.Module) -> bool:
    return isinstance(m, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d))


def _global_kind(m: nn.Module) -> Literal["avg", "max"] | None:
    if _is_adaptive(m) and tuple(_as_pair(m.output_size)) == (1, 1):
        return "avg" if isinstance(m, nn.AdaptiveAvgPool2d) else "max"
    return None


def _as_pair(v: object) -> tuple[object, object]:
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)  # type: ignore[return-value]


@register_adapter(lambda m: isinstance(m, nn.Sequential))
def _split_sequential(model: nn.Module) -> Split:
    layers = list(model.children())
    idx = next((i for i, m in enumerate(layers) if isinstance(m, nn.Flatten)), None)
    if idx is None:
        raise ConversionError("nn.Sequential classifier has no nn.Flatten before its Linear layers")
    body = layers[:idx]
    pool: Literal["avg", "max"] | None = None
    if body and _global_kind(body[-1]) is not None:
        pool = _global_kind(body[-1])
        body = body[:-1]
    return Split(body=nn.Sequential(*body), head=layers[idx + 1 :], pool=pool)


def _is_mtcnn(m: nn.Module) -> bool:
    return type(m).__name__ in {"ONet", "RNet"} and hasattr(m, "conv3")


@register_adapter(_is_mtcnn)
def _split_mtcnn(model: nn.Module) -> Split:
    names = [n for n, _ in model.named_children()]
    cut = names.index("dense4" if hasattr(model, "dense4") else "dense5")
    children = dict(model.named_children())
    body = nn.Sequential(*[children[n] for n in names[:cut]])
    if hasattr(model, "dense4"):  # R-Net
        head, reg = [model.dense4, model.prelu4, model.dense5_1], [model.dense5_2]
    else:  # O-Net
        head, reg = [model.dense5, model.prelu5, model.dense6_1], [model.dense6_2]
    return Split(body=body, head=head, flatten="whc", regressor=reg)


def _is_alexnet_vgg(m: nn.Module) -> bool:
    return all(hasattr(m, a) for a in ("features", "avgpool", "classifier")) and _is_adaptive(m.avgpool)


@register_adapter(_is_alexnet_vgg)
def _split_features_avgpool_classifier(model: nn.Module) -> Split:
    pool = _global_kind(model.avgpool)
    extra: dict[str, object] = {}
    if pool is None:
        extra["adaptive"] = model.avgpool  # must be the identity at the native size: checked below
    classifier = model.classifier
    head = list(classifier.children()) if isinstance(classifier, nn.Sequential) else [classifier]
    return Split(body=model.features, head=head, pool=pool, extra=extra)


def _is_resnet(m: nn.Module) -> bool:
    return all(hasattr(m, a) for a in ("conv1", "bn1", "layer4", "avgpool", "fc"))


@register_adapter(_is_resnet)
def _split_resnet(model: nn.Module) -> Split:
    body = nn.Sequential(
        model.conv1, model.bn1, model.relu, model.maxpool,
        model.layer1, model.layer2, model.layer3, model.layer4,
    )
    return Split(body=body, head=[model.fc], pool=_global_kind(model.avgpool) or "avg")


def _is_mobilenet_v2(m: nn.Module) -> bool:
    return type(m).__name__ == "MobileNetV2" and hasattr(m, "features") and hasattr(m, "classifier")


@register_adapter(_is_mobilenet_v2)
def _split_mobilenet_v2(model: nn.Module) -> Split:
    # forward(): features -> adaptive_avg_pool2d(1) -> flatten -> classifier (pooling is functional).
    return Split(body=model.features, head=list(model.classifier.children()), pool="avg")


# EfficientNet (V1 and V2), MobileNet V3 and ConvNeXt have ``features / avgpool / classifier`` and are
# split by ``_split_features_avgpool_classifier``; their SE blocks are localised in
# make_fully_convolutional, and ConvNeXt's ``LayerNorm2d`` head layer is handled by ``_convert_head``.


@register_adapter(lambda m: isinstance(m, tvm.DenseNet))
def _split_densenet(model: nn.Module) -> Split:
    # forward(): F.relu(features(x)) -> adaptive_avg_pool2d(1) -> flatten -> classifier.
    return Split(body=nn.Sequential(model.features, nn.ReLU()), head=[model.classifier], pool="avg")


@register_adapter(lambda m: isinstance(m, tvm.RegNet))
def _split_regnet(model: nn.Module) -> Split:
    # forward(): stem -> trunk_output -> avgpool -> flatten -> fc (RegNetY blocks carry SE layers).
    body = nn.Sequential(model.stem, model.trunk_output)
    return Split(body=body, head=[model.fc], pool=_global_kind(model.avgpool) or "avg")


@register_adapter(lambda m: isinstance(m, tvm.ShuffleNetV2))
def _split_shufflenet(model: nn.Module) -> Split:
    # forward(): conv1 -> maxpool -> stage2..4 -> conv5 -> x.mean([2, 3]) -> fc.
    body = nn.Sequential(model.conv1, model.maxpool, model.stage2, model.stage3, model.stage4, model.conv5)

    def wrap(m: nn.Module) -> nn.Module | None:
        if isinstance(m, _tv_shufflenet.InvertedResidual):
            return BranchedBlock(m, ["branch1", "branch2"])  # stride 1: branch1 is empty (identity half)
        return None

    return Split(body=_rebuilt(body, wrap), head=[model.fc], pool="avg")


@register_adapter(lambda m: isinstance(m, tvm.MNASNet))
def _split_mnasnet(model: nn.Module) -> Split:
    # forward(): layers -> x.mean([2, 3]) -> classifier (Dropout, Linear).
    return Split(body=model.layers, head=list(model.classifier.children()), pool="avg")


# GoogLeNet / Inception V3 ``transform_input``: x[:, c] * (std_c / 0.5) + (mean_c - 0.5) / 0.5.
_INCEPTION_SCALE = [0.229 / 0.5, 0.224 / 0.5, 0.225 / 0.5]
_INCEPTION_SHIFT = [(0.485 - 0.5) / 0.5, (0.456 - 0.5) / 0.5, (0.406 - 0.5) / 0.5]


def _inception_body(model: nn.Module, names: list[str]) -> nn.Sequential:
    layers = [getattr(model, n) for n in names]
    if getattr(model, "transform_input", False):
        layers.insert(0, ChannelAffine(_INCEPTION_SCALE, _INCEPTION_SHIFT))
    return nn.Sequential(*layers)


@register_adapter(lambda m: isinstance(m, tvm.GoogLeNet))
def _split_googlenet(model: nn.Module) -> Split:
    # Eval-mode forward(): [transform_input] -> trunk -> avgpool -> flatten -> dropout -> fc (aux heads unused).
    names = [
        "conv1", "maxpool1", "conv2", "conv3", "maxpool2", "inception3a", "inception3b", "maxpool3",
        "inception4a", "inception4b", "inception4c", "inception4d", "inception4e", "maxpool4",
        "inception5a", "inception5b",
    ]
    return Split(body=_inception_body(model, names), head=[model.dropout, model.fc], pool="avg")


@register_adapter(lambda m: isinstance(m, tvm.Inception3))
def _split_inception3(model: nn.Module) -> Split:
    # Eval-mode forward(): [transform_input] -> trunk -> avgpool -> dropout -> flatten -> fc (AuxLogits unused).
    names = [
        "Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1", "Conv2d_3b_1x1", "Conv2d_4a_3x3",
        "maxpool2", "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d",
        "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c",
    ]
    return Split(body=_inception_body(model, names), head=[model.dropout, model.fc], pool="avg")


@register_adapter(lambda m: isinstance(m, tvm.SqueezeNet))
def _split_squeezenet(model: nn.Module) -> Split:
    # forward(): features -> classifier (Dropout, Conv2d 1x1, ReLU, AdaptiveAvgPool2d(1)) -> flatten.
    layers = list(model.classifier.children())
    conv_head = [m for m in layers[:-1] if not isinstance(m, nn.Dropout)]
    pool = _global_kind(layers[-1])
    if pool is None:
        raise ConversionError("SqueezeNet classifier does not end with a global pool")
    return Split(body=model.features, head=[], pool=pool, conv_head=conv_head)


_VIT_REASON = (
    "a vision transformer has no sliding-window equivalent: its self-attention mixes all patches "
    "and its position embeddings fix the input size"
)
_SWIN_REASON = (
    "a Swin transformer has no sliding-window equivalent: its self-attention runs in windows partitioned "
    "on a grid anchored to the image corner (a position's output depends on where the partition "
    "boundaries fall, not only on its neighbourhood) and its shifted windows roll the map cyclically, "
    "mixing opposite image borders"
)
_MAXVIT_REASON = (
    "MaxViT has no sliding-window equivalent: its grid attention mixes positions spread evenly over the "
    "whole feature map (a dilated global grid), and its block/grid partitions are built for the "
    "training input size"
)


def _unsupported(reason: str) -> Adapter:
    def adapter(model: nn.Module) -> Split:
        raise ConversionError(f"{type(model).__name__}: {reason}")

    return adapter


register_adapter(lambda m: isinstance(m, tvm.VisionTransformer))(_unsupported(_VIT_REASON))
register_adapter(lambda m: isinstance(m, tvm.SwinTransformer))(_unsupported(_SWIN_REASON))
register_adapter(lambda m: isinstance(m, tvm.MaxVit))(_unsupported(_MAXVIT_REASON))


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
        if lin.bias is not None:
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
        if first_linear and isinstance(m, _tv_convnext.LayerNorm2d):
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


def _split(model: nn.Module) -> Split:
    for predicate, adapter in _ADAPTERS:
        if predicate(model):
            return adapter(model)
    raise ConversionError(
        f"don't know how to make {type(model).__name__} fully convolutional: "
        "register an adapter with fcndetect.convert.register_adapter"
    )


@torch.no_grad()
def make_fully_convolutional(model: nn.Module, input_size: int) -> DenseNet:
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
        a :class:`DenseNet` mapping ``[B, 3, H, W]`` (``H, W >= N``) to ``[B, K, H', W']`` **logits**
        (pre-softmax; any softmax at the end of the head is dropped), with ``.geometry``.

    Raises:
        ConversionError: the architecture or one of its head layers has no dense equivalent.
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
    if adaptive is not None:
        target = tuple(int(v) if v is not None else s for v, s in zip(_as_pair(adaptive.output_size), (k_h, k_w)))
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
        regressor = nn.Sequential(*_convert_head(split.regressor, layers[last].in_channels, 1, 1, "chw"))
    dense = DenseNet(body, hidden, classifier, input_size, regressor)
    if param is not None:
        dense = dense.to(device=param.device, dtype=param.dtype)
    return dense.eval()


# Builder-name prefixes (torchvision.models.list_models) of the convolutional classifiers handled above.
_SUPPORTED_FAMILIES = (
    "alexnet", "vgg", "resnet", "resnext", "wide_resnet", "mobilenet_v2", "mobilenet_v3", "efficientnet",
    "densenet", "regnet", "convnext", "shufflenet_v2", "mnasnet", "googlenet", "inception_v3", "squeezenet",
)
_UNSUPPORTED_FAMILIES = {"vit_": _VIT_REASON, "swin_": _SWIN_REASON, "maxvit_": _MAXVIT_REASON}


def _native_size(name: str) -> int:
    """Crop side of the builder's default weights (read from the weights enum; nothing is downloaded)."""
    crop = tvm.get_model_weights(name).DEFAULT.transforms().crop_size
    return int(crop[0] if isinstance(crop, (list, tuple)) else crop)


_TV_NAMES = tvm.list_models(module=tvm)

#: Every supported torchvision classification builder -> its native input side (the default weights'
#: crop size: 224 for most, 299 for inception_v3, 240-600 for efficientnet_b1..b7, 384/480/480 for
#: efficientnet_v2_s/m/l, 384 for regnet_y_128gf whose only weights are SWAG end-to-end ones).
TORCHVISION_ARCHS: dict[str, int] = {n: _native_size(n) for n in _TV_NAMES if n.startswith(_SUPPORTED_FAMILIES)}

#: torchvision classification builders that cannot be made fully convolutional -> why.
UNSUPPORTED_ARCHS: dict[str, str] = {
    n: reason for n in _TV_NAMES for prefix, reason in _UNSUPPORTED_FAMILIES.items() if n.startswith(prefix)
}
