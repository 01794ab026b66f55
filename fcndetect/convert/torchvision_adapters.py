"""Built-in adapters of the torchvision classifiers: how to split each family at its flatten
(:class:`~.core.Split`). Imported on first need (:func:`fcndetect.convert.core._split`), since it imports
torchvision's models; the static catalogue :mod:`fcndetect.models.torchvision_catalogue` names the same
architectures without importing anything.

Every convolutional torchvision classification builder is supported (:data:`TORCHVISION_ARCHS`, with
its native input side ``N``); the transformers are refused with the reason (:data:`UNSUPPORTED_ARCHS`).
At the native size every converted net *is* its classifier: one cell whose logits match to float
rounding (measured <= 3e-6 relative on random weights; tested at 1e-4, tests/convert/test_adapters.py).
On a larger input, cell ``(i, j)`` is compared with the classifier run on the crop at
``(stride * j, stride * i)``:

* **exact** for a net without padding (tested on AlexNet with its paddings removed, ``N = 355``, and on
  MTCNN's nets with receptive-field-sized crops; a one-stride shift fails those tests). Every
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
(the classifier on each window crop against the dense map). For SE nets, ``global`` is the same measure
when each SE block keeps its global pool over the whole large input instead of :class:`LocalSqueeze`.

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
proxies; yet trained MobileNetV2 weights give the same picture (rel 0.10-0.39 on three sample images, and
on a 5x5 map under half the cells are nearest to their own crop rather than a neighbour's). These figures
are a record, not a test: a padding error this size cannot tell a correct map from one shifted by a
stride, so the tests check padded nets with exact oracles instead (native-size logits; each cell depends
on exactly the pixels of its receptive field, tests/convert/test_adapters.py).

Map size: ``H' = floor((H - N) / stride) + 1`` whenever ``H - N`` is a multiple of the stride (all
architectures). Otherwise a net whose layers need fewer than ``N`` pixels for one cell can give one more
cell, whose window overhangs the bottom/right edge by less than a stride: padded stride-2 convolutions and
pools round up (ResNet, RegNet, MobileNet, EfficientNet, MNASNet, ShuffleNet, DenseNet), ceil-mode pools
(GoogLeNet, SqueezeNet), AlexNet's stride-4 stem (223 px suffice). VGG, ConvNeXt and Inception V3, whose
windows are tight, never do. :func:`fcndetect.spans.dense_output_size` always predicts it.
The receptive field of SE nets spans thousands of pixels (each :class:`LocalSqueeze` widens it by
``2 (m - 1)`` feature positions), although each cell's window is ``N``.
"""


from __future__ import annotations

from typing import Any

import torchvision.models as tvm
from torch import nn
from torchvision.models import shufflenetv2 as _tv_shufflenet

from .core import Adapter, ConversionError, Split, _global_kind, _is_adaptive, register_builtin_adapter
from .modules import BranchedBlock, ChannelAffine, _rebuilt

__all__ = ["TORCHVISION_ARCHS", "UNSUPPORTED_ARCHS"]


def _is_alexnet_vgg(m: Any) -> bool:
    return all(hasattr(m, a) for a in ("features", "avgpool", "classifier")) and _is_adaptive(m.avgpool)


@register_builtin_adapter(_is_alexnet_vgg)
def _split_features_avgpool_classifier(model: Any) -> Split:
    pool = _global_kind(model.avgpool)
    extra: dict[str, object] = {}
    if pool is None:
        extra["adaptive"] = model.avgpool  # must be the identity at the native size: checked below
    classifier = model.classifier
    head = list(classifier.children()) if isinstance(classifier, nn.Sequential) else [classifier]
    return Split(body=model.features, head=head, pool=pool, extra=extra)


def _is_resnet(m: nn.Module) -> bool:
    return all(hasattr(m, a) for a in ("conv1", "bn1", "layer4", "avgpool", "fc"))


@register_builtin_adapter(_is_resnet)
def _split_resnet(model: Any) -> Split:
    body = nn.Sequential(
        model.conv1, model.bn1, model.relu, model.maxpool,
        model.layer1, model.layer2, model.layer3, model.layer4,
    )
    return Split(body=body, head=[model.fc], pool=_global_kind(model.avgpool) or "avg")


def _is_mobilenet_v2(m: nn.Module) -> bool:
    return type(m).__name__ == "MobileNetV2" and hasattr(m, "features") and hasattr(m, "classifier")


@register_builtin_adapter(_is_mobilenet_v2)
def _split_mobilenet_v2(model: Any) -> Split:
    # forward(): features -> adaptive_avg_pool2d(1) -> flatten -> classifier (pooling is functional).
    return Split(body=model.features, head=list(model.classifier.children()), pool="avg")


# EfficientNet (V1 and V2), MobileNet V3 and ConvNeXt have ``features / avgpool / classifier`` and are
# split by ``_split_features_avgpool_classifier``; their SE blocks are localised in
# make_fully_convolutional, and ConvNeXt's ``LayerNorm2d`` head layer is handled by ``_convert_head``.


@register_builtin_adapter(lambda m: isinstance(m, tvm.DenseNet))
def _split_densenet(model: Any) -> Split:
    # forward(): F.relu(features(x)) -> adaptive_avg_pool2d(1) -> flatten -> classifier.
    return Split(body=nn.Sequential(model.features, nn.ReLU()), head=[model.classifier], pool="avg")


@register_builtin_adapter(lambda m: isinstance(m, tvm.RegNet))
def _split_regnet(model: Any) -> Split:
    # forward(): stem -> trunk_output -> avgpool -> flatten -> fc (RegNetY blocks carry SE layers).
    body = nn.Sequential(model.stem, model.trunk_output)
    return Split(body=body, head=[model.fc], pool=_global_kind(model.avgpool) or "avg")


@register_builtin_adapter(lambda m: isinstance(m, tvm.ShuffleNetV2))
def _split_shufflenet(model: Any) -> Split:
    # forward(): conv1 -> maxpool -> stage2..4 -> conv5 -> x.mean([2, 3]) -> fc.
    body = nn.Sequential(model.conv1, model.maxpool, model.stage2, model.stage3, model.stage4, model.conv5)

    def wrap(m: nn.Module) -> nn.Module | None:
        if isinstance(m, _tv_shufflenet.InvertedResidual):
            return BranchedBlock(m, ["branch1", "branch2"])  # stride 1: branch1 is empty (identity half)
        return None

    return Split(body=_rebuilt(body, wrap), head=[model.fc], pool="avg")


@register_builtin_adapter(lambda m: isinstance(m, tvm.MNASNet))
def _split_mnasnet(model: Any) -> Split:
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


@register_builtin_adapter(lambda m: isinstance(m, tvm.GoogLeNet))
def _split_googlenet(model: Any) -> Split:
    # Eval-mode forward(): [transform_input] -> trunk -> avgpool -> flatten -> dropout -> fc (aux heads unused).
    names = [
        "conv1", "maxpool1", "conv2", "conv3", "maxpool2", "inception3a", "inception3b", "maxpool3",
        "inception4a", "inception4b", "inception4c", "inception4d", "inception4e", "maxpool4",
        "inception5a", "inception5b",
    ]
    return Split(body=_inception_body(model, names), head=[model.dropout, model.fc], pool="avg")


@register_builtin_adapter(lambda m: isinstance(m, tvm.Inception3))
def _split_inception3(model: Any) -> Split:
    # Eval-mode forward(): [transform_input] -> trunk -> avgpool -> dropout -> flatten -> fc (AuxLogits unused).
    names = [
        "Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1", "Conv2d_3b_1x1", "Conv2d_4a_3x3",
        "maxpool2", "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d",
        "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c",
    ]
    return Split(body=_inception_body(model, names), head=[model.dropout, model.fc], pool="avg")


@register_builtin_adapter(lambda m: isinstance(m, tvm.SqueezeNet))
def _split_squeezenet(model: Any) -> Split:
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
    def adapter(model: Any) -> Split:
        raise ConversionError(f"{type(model).__name__}: {reason}")

    return adapter


register_builtin_adapter(lambda m: isinstance(m, tvm.VisionTransformer))(_unsupported(_VIT_REASON))
register_builtin_adapter(lambda m: isinstance(m, tvm.SwinTransformer))(_unsupported(_SWIN_REASON))
register_builtin_adapter(lambda m: isinstance(m, tvm.MaxVit))(_unsupported(_MAXVIT_REASON))

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
