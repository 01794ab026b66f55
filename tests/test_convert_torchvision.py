"""Every convolutional torchvision classifier made fully convolutional, with random weights.

For each architecture in :data:`fcndetect.convert.TORCHVISION_ARCHS` (built with ``weights=None``, seed 0,
eval mode, BatchNorm statistics and ConvNeXt layer scales randomised so no layer is the identity):

* (a) at the native size the dense map is ``1 x 1`` and equals the classifier's logits;
* (b) on a larger, non-square input ``[1, 3, N + 2 s, N + s + s // 2]`` (stride ``s``) its size is what
  :func:`fcndetect.geometry.dense_output_size` predicts; along the height (``H - N`` a multiple of the
  stride) it is ``floor((H - N) / s) + 1 = 3`` for every architecture; along the width (``W - N`` not a
  multiple) it is that formula or one more: nets whose downsampling rounds up (padded stride-2 layers,
  ceil-mode pools) add a cell whose window overhangs the right edge by less than a stride;
* (c) cell ``(i, j)`` against the classifier on the crop at ``(stride * j, stride * i)``: exact for an
  unpadded net (AlexNet with its paddings removed); for padded nets the measured differences are
  checked against the table in :mod:`fcndetect.convert`'s docstring (``CROP_MEASURED``).

The heavy architectures are marked ``slow`` (``pytest -m slow``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image
from torch import nn
from torchvision.ops.misc import SqueezeExcitation

from fcndetect.convert import (
    TORCHVISION_ARCHS,
    UNSUPPORTED_ARCHS,
    BranchedBlock,
    ChannelAffine,
    ConversionError,
    DenseNet,
    LocalSqueeze,
    make_fully_convolutional,
)
from fcndetect.geometry import GeometryError, dense_output_size, trace_layers

SAMPLES = Path(__file__).resolve().parents[1] / "sample_images"

#: Heavy on 2 CPU cores (tens of GFLOPs, or 100M+ parameters to initialise): run with ``-m slow``.
SLOW = {
    "vgg19", "vgg19_bn",
    "resnet152", "wide_resnet101_2",
    "efficientnet_b5", "efficientnet_b6", "efficientnet_b7", "efficientnet_v2_m", "efficientnet_v2_l",
    "densenet161", "densenet201",
    "regnet_x_32gf", "regnet_y_32gf", "regnet_y_128gf",
    "convnext_large",
}

#: Measured crop-vs-cell differences of padded nets, ``rel`` = max |cell - crop| / max |crop logits| over
#: a 3x3 map (the table in fcndetect.convert's docstring); the test allows 25 % above these.
CROP_MEASURED: dict[str, float] = {
    "alexnet": 0.112, "vgg16": 0.323, "resnet50": 0.168, "densenet121": 0.239, "mobilenet_v2": 0.330,
    "googlenet": 0.302, "inception_v3": 0.385, "squeezenet1_1": 0.137, "shufflenet_v2_x1_0": 0.240,
    "mnasnet1_0": 0.461, "convnext_tiny": 0.087, "regnet_x_400mf": 0.349,
    "efficientnet_b0": 0.758, "efficientnet_v2_s": 0.679, "mobilenet_v3_small": 0.485,
    "mobilenet_v3_large": 0.408, "regnet_y_400mf": 0.427,
}
#: Crop measurements too heavy for the default run (16 classifier passes each).
CROP_SLOW = {"vgg16", "resnet50", "inception_v3", "convnext_tiny", "efficientnet_v2_s", "densenet121"}


def _randomise(model: nn.Module) -> nn.Module:
    """Non-trivial BatchNorm statistics/affines and ConvNeXt layer scales (``1e-6`` at init) so no block is
    (nearly) the identity; returns ``model`` in eval mode."""
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            n = m.num_features
            m.running_mean.copy_(0.1 * torch.randn(n, generator=g))
            m.running_var.copy_(0.75 + 0.5 * torch.rand(n, generator=g))
            if m.affine:
                m.weight.data.copy_(1 + 0.1 * torch.randn(n, generator=g))
                m.bias.data.copy_(0.1 * torch.randn(n, generator=g))
        if type(m).__name__ == "CNBlock":
            m.layer_scale.data.copy_(0.1 + 0.1 * torch.rand(m.layer_scale.shape, generator=g))
    return model.eval()


def _build(name: str, **kwargs: object) -> nn.Module:
    torch.manual_seed(0)
    if name in ("googlenet", "inception_v3"):
        kwargs.setdefault("init_weights", False)  # torchvision's truncated-normal init makes 1e12 logits
    return _randomise(torchvision.models.get_model(name, weights=None, **kwargs))


@pytest.fixture(
    scope="module",
    params=[pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in TORCHVISION_ARCHS],
)
def converted(request: pytest.FixtureRequest) -> Iterator[tuple[str, nn.Module, DenseNet]]:
    """``(name, classifier, dense)`` for one architecture (module-scoped: built once for its tests)."""
    name = request.param
    model = _build(name)
    with torch.no_grad():
        dense = make_fully_convolutional(model, TORCHVISION_ARCHS[name])
    yield name, model, dense


def test_native_size_equivalence(converted: tuple[str, nn.Module, DenseNet]) -> None:
    """(a) ``dense(x)[..., 0, 0] == model(x)`` for a native-size ``x`` ``[1, 3, N, N]``."""
    name, model, dense = converted
    n = TORCHVISION_ARCHS[name]
    x = torch.randn(1, 3, n, n, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ref = model(x)
        out = dense(x)
    assert out.shape == (1, ref.shape[1], 1, 1)
    assert (out[..., 0, 0] - ref).abs().max() <= 1e-4 * max(1.0, float(ref.abs().max()))


def test_larger_input_map_size(converted: tuple[str, nn.Module, DenseNet]) -> None:
    """(b) ``[1, 3, N + 2 s, N + 1.5 s]`` -> the predicted map: 3 rows, 2 (floor) or 3 (rounding up) columns."""
    name, _, dense = converted
    n, s = TORCHVISION_ARCHS[name], dense.geometry.stride
    h, w = n + 2 * s, n + s + s // 2
    with torch.no_grad():
        out = dense(torch.randn(1, 3, h, w, generator=torch.Generator().manual_seed(3)))
    assert tuple(out.shape[-2:]) == dense_output_size(dense, h, w)
    assert out.shape[-2] == (h - n) // s + 1 == 3
    assert out.shape[-1] in ((w - n) // s + 1, (w - n) // s + 2)
    assert torch.isfinite(out).all()


# --------------------------------------------------------------------------------------------------------
# (c) crops


def _image(h: int, w: int) -> torch.Tensor:
    """A natural image ``[1, 3, h, w]``, ImageNet-normalised."""
    im = Image.open(SAMPLES / "astronaut.png").convert("RGB").resize((w, h), Image.BILINEAR)
    x = torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1).float() / 255
    mean = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
    return ((x - mean) / std)[None]


@torch.no_grad()
def _calibrate_bn(model: nn.Module, n: int) -> None:
    """Data-dependent BatchNorm statistics (averages over 4 crops of two sample images), so a random
    net's activations keep depending on its input as a trained net's do."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
        m.train()
    g = torch.Generator().manual_seed(0)
    for stem in ("chelsea", "coffee"):
        im = Image.open(SAMPLES / f"{stem}.png").convert("RGB").resize((2 * n, 2 * n), Image.BILINEAR)
        x = torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1).float()[None] / 255 - 0.45
        for _ in range(2):
            i, j = torch.randint(0, n, (2,), generator=g).tolist()
            model(x[:, :, i : i + n, j : j + n] / 0.225)
    for m in bns:
        m.eval()


@torch.no_grad()
def crop_differences(model: nn.Module, dense: DenseNet, cells: int = 3) -> dict[str, float]:
    """Dense cells against per-crop classification on a natural image of ``N + (cells - 1) * stride``.

    Returns ``rel``: max |cell - crop| / max |crop logits|; ``spread``: the same max difference over the
    largest deviation of a crop's logits from the mean over crops (how much windows differ); ``top1``:
    fraction of cells whose arg-max class is the crop's.
    """
    g = dense.geometry
    n, s = g.window, g.stride
    x = _image(n + (cells - 1) * s, n + (cells - 1) * s)
    got = dense(x)[0]
    crops = torch.cat([x[:, :, s * i : s * i + n, s * j : s * j + n] for i in range(cells) for j in range(cells)])
    ref = model(crops).T.reshape(got.shape)
    err = (got - ref).abs().max()
    spread = (ref - ref.mean((1, 2), keepdim=True)).abs().max()
    return {
        "rel": float(err / ref.abs().max()),
        "spread": float(err / spread),
        "top1": float((got.argmax(0) == ref.argmax(0)).float().mean()),
    }


def test_unpadded_crops_are_exact() -> None:
    """(c) hard oracle: without padding (AlexNet's paddings removed, native 355 px so the trunk gives the
    6x6 map its head expects), every cell of a 3x3 map is the classifier on its crop."""
    model = _build("alexnet")
    for m in model.features:
        if isinstance(m, nn.Conv2d):
            m.padding = (0, 0)
    dense = make_fully_convolutional(model, 355)
    assert (dense.geometry.stride, dense.geometry.receptive_field, dense.geometry.rf_offset) == (32, 355, 0)
    x = torch.randn(1, 3, 355 + 64, 355 + 64, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        got = dense(x)[0]
        crops = torch.cat([x[:, :, 32 * i : 32 * i + 355, 32 * j : 32 * j + 355] for i in range(3) for j in range(3)])
        ref = model(crops).T.reshape(got.shape)
    assert got.shape[1:] == (3, 3)
    assert (got - ref).abs().max() <= 1e-4 * max(1.0, float(ref.abs().max()))


@pytest.mark.parametrize(
    "name",
    [pytest.param(n, marks=pytest.mark.slow) if n in CROP_SLOW else n for n in CROP_MEASURED],
)
def test_padded_crop_differences_as_documented(name: str) -> None:
    """(c) padded nets: the measured crop-vs-cell difference stays within the documented value."""
    model = _build(name)
    _calibrate_bn(model, TORCHVISION_ARCHS[name])
    dense = make_fully_convolutional(model, TORCHVISION_ARCHS[name])
    diff = crop_differences(model, dense)
    print(f"{name}: {diff}")
    assert diff["rel"] <= 1.25 * CROP_MEASURED[name]


# --------------------------------------------------------------------------------------------------------
# Squeeze-and-excitation, sharing, input transforms


def test_local_squeeze_is_the_documented_avg_pool() -> None:
    """LocalSqueeze == AvgPool2d(2m - 1, stride 1, padding m - 1, count_include_pad=False), and at the
    native map size it is the global mean at every position."""
    x = torch.randn(2, 5, 23, 17, generator=torch.Generator().manual_seed(5))
    for m in [(3, 4), (7, 7), (12, 9)]:
        ref = nn.AvgPool2d((2 * m[0] - 1, 2 * m[1] - 1), 1, (m[0] - 1, m[1] - 1), count_include_pad=False)(x)
        assert torch.allclose(LocalSqueeze(m)(x), ref, atol=1e-5)
    native = x[:, :, :7, :9]
    assert torch.allclose(LocalSqueeze((7, 9))(native), native.mean((2, 3), keepdim=True).expand_as(native))


def test_se_blocks_are_localised_without_touching_the_model() -> None:
    model = _build("efficientnet_b0")
    dense = make_fully_convolutional(model, 224)
    ses = [m for m in model.modules() if isinstance(m, SqueezeExcitation)]
    local = [m for m in dense.modules() if isinstance(m, LocalSqueeze)]
    assert len(ses) == len(local) == 16
    assert all(isinstance(m.avgpool, nn.AdaptiveAvgPool2d) for m in ses)  # the classifier is unchanged
    assert local[0].size == (112, 112) and local[-1].size == (7, 7)
    assert {p.data_ptr() for p in dense.body.parameters()} <= {p.data_ptr() for p in model.parameters()}
    assert dense.geometry.receptive_field > 224  # each SE sees its whole native map


def test_shufflenet_units_are_wrapped_for_the_geometry_walk() -> None:
    model = _build("shufflenet_v2_x0_5")
    dense = make_fully_convolutional(model, 224)
    assert sum(isinstance(m, BranchedBlock) for m in dense.modules()) == 16
    assert not any(isinstance(m, BranchedBlock) for m in model.modules())
    assert dense.geometry.stride == 32


@pytest.mark.parametrize("name, n", [("googlenet", 224), ("inception_v3", 299)])
def test_transform_input(name: str, n: int) -> None:
    """ImageNet-weights builds re-normalise inputs in forward(): the dense body starts with that affine."""
    model = _build(name, transform_input=True, aux_logits=False)
    dense = make_fully_convolutional(model, n)
    assert isinstance(dense.body[0], ChannelAffine)
    x = torch.randn(1, 3, n, n, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        ref = model(x)
        out = dense(x)[..., 0, 0]
    assert (out - ref).abs().max() <= 1e-4 * max(1.0, float(ref.abs().max()))


def test_convnext_head_normalises_each_position_after_the_pool() -> None:
    dense = make_fully_convolutional(_build("convnext_tiny"), 224)
    pool, norm = dense.hidden
    assert isinstance(pool, nn.AvgPool2d) and pool.kernel_size == (7, 7) and pool.stride == 1
    assert type(norm).__name__ == "LayerNorm2d"
    assert dense.classifier[0].kernel_size == (1, 1)


def test_squeezenet_conv_head_then_stride1_pool() -> None:
    dense = make_fully_convolutional(_build("squeezenet1_1"), 224)
    conv, relu, pool = dense.classifier
    assert isinstance(conv, nn.Conv2d) and isinstance(relu, nn.ReLU)
    assert isinstance(pool, nn.AvgPool2d) and pool.kernel_size == (13, 13)
    assert dense.geometry.stride == 16


class _FunctionalPools(nn.Module):
    """Inception-style block: F.max_pool2d / F.avg_pool2d called in forward()."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.nn.functional.avg_pool2d(x, kernel_size=3, stride=1, padding=1)
        return torch.nn.functional.max_pool2d(y, 3, stride=2, ceil_mode=True)


class _ChannelsLastMLP(nn.Module):
    """ConvNeXt-style: permute to [B, H, W, C], LayerNorm + Linear per position, permute back."""

    def __init__(self, channels_last: bool) -> None:
        super().__init__()
        self.channels_last = channels_last
        self.norm = nn.LayerNorm(4)
        self.fc = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.channels_last:
            return self.fc(x)  # mixes the W axis of a [B, C, H, W] tensor
        return self.fc(self.norm(x.permute(0, 2, 3, 1))).permute(0, 3, 1, 2)


@pytest.mark.parametrize("size", [9, 10, 17])
def test_geometry_of_functional_pools(size: int) -> None:
    out = _FunctionalPools()(torch.zeros(1, 2, size, size))
    t = trace_layers(_FunctionalPools(), size)
    assert (t.output_size, t.stride, t.receptive_field) == (out.shape[-1], 2, 5)


def test_geometry_of_linear_layers_needs_channels_last() -> None:
    t = trace_layers(_ChannelsLastMLP(channels_last=True), 4)
    assert (t.output_size, t.stride, t.receptive_field) == (4, 1, 1)
    with pytest.raises(GeometryError, match="channels-first"):
        trace_layers(_ChannelsLastMLP(channels_last=False), 4)


# --------------------------------------------------------------------------------------------------------
# Tables, unsupported architectures, VGG-16


def test_tables_cover_every_torchvision_classifier() -> None:
    names = set(torchvision.models.list_models(module=torchvision.models))
    assert set(TORCHVISION_ARCHS) | set(UNSUPPORTED_ARCHS) == names
    assert not set(TORCHVISION_ARCHS) & set(UNSUPPORTED_ARCHS)
    assert TORCHVISION_ARCHS["resnet50"] == 224 and TORCHVISION_ARCHS["inception_v3"] == 299
    assert [TORCHVISION_ARCHS[f"efficientnet_b{i}"] for i in range(8)] == [224, 240, 288, 300, 380, 456, 528, 600]
    assert [TORCHVISION_ARCHS[f"efficientnet_v2_{v}"] for v in "sml"] == [384, 480, 480]
    assert {n.split("_")[0] for n in UNSUPPORTED_ARCHS} == {"vit", "swin", "maxvit"}


@pytest.mark.parametrize(
    "name, words",
    [
        ("vit_b_16", "position embeddings fix the input size"),
        ("swin_t", "windows partitioned on a grid"),
        ("maxvit_t", "grid attention"),
    ],
)
def test_transformers_are_refused_with_the_reason(name: str, words: str) -> None:
    model = torchvision.models.get_model(name, weights=None)
    assert words in UNSUPPORTED_ARCHS[name]
    with pytest.raises(ConversionError, match="no sliding-window equivalent") as err:
        make_fully_convolutional(model, 224)
    assert words in str(err.value)


def test_vgg16_fc6_is_a_7x7_conv_and_448_gives_8x8() -> None:
    dense = make_fully_convolutional(_build("vgg16"), 224)
    fc6 = dense.hidden[0]
    assert isinstance(fc6, nn.Conv2d)
    assert (fc6.in_channels, fc6.out_channels, fc6.kernel_size) == (512, 4096, (7, 7))
    with torch.no_grad():
        out = dense(torch.zeros(1, 3, 448, 448))
    assert out.shape == (1, 1000, 8, 8)
