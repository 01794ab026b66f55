"""Every convolutional torchvision classifier made fully convolutional, with random weights.

For each architecture in :data:`fcndetect.convert.TORCHVISION_ARCHS` (built with ``weights=None``, seed 0,
eval mode, BatchNorm statistics and ConvNeXt layer scales randomised so no layer is the identity):

* (a) at the native size the dense map is ``1 x 1`` and equals the classifier's logits;
* (b) on a larger, non-square input ``[1, 3, N + 2 s, N + s + s // 2]`` (stride ``s``) its size is what
  :func:`fcndetect.spans.dense_output_size` predicts; along the height (``H - N`` a multiple of the
  stride) it is ``floor((H - N) / s) + 1 = 3`` for every architecture; along the width (``W - N`` not a
  multiple) it is that formula or one more: nets whose downsampling rounds up (padded stride-2 layers,
  ceil-mode pools) add a cell whose window overhangs the right edge by less than a stride;
* (c) cells against exact oracles, each sharp enough that a one-stride shift fails: for an unpadded net
  (AlexNet with its paddings removed) cell ``(i, j)`` is the classifier on the crop at
  ``(stride * j, stride * i)``; for padded nets a cell depends on exactly the pixels of its receptive
  field. Padded nets are not compared with window crops: their padding error is as large as the change
  between neighbouring windows (measured in :mod:`fcndetect.convert.adapters`), so such a comparison
  cannot tell a correct map from one shifted by a stride.

The heavy architectures are marked ``slow`` (``pytest -m slow``).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
import torchvision
from torch import nn

from fcndetect.convert import (
    TORCHVISION_ARCHS,
    UNSUPPORTED_ARCHS,
    ChannelAffine,
    ConversionError,
    DenseModel,
    make_fully_convolutional,
)
from fcndetect.geometry import Geometry
from fcndetect.spans import dense_output_size

#: The fast tier converts the smallest architecture of each family (each adapter, SE block, conv head and
#: pooling variant is exercised); ``-m slow`` converts every other one.
FAST = {
    "alexnet", "resnet18", "mobilenet_v2", "mobilenet_v3_small", "efficientnet_b0",
    "densenet121", "regnet_x_400mf", "regnet_y_400mf", "convnext_tiny", "shufflenet_v2_x0_5", "mnasnet0_5",
    "googlenet", "inception_v3", "squeezenet1_0", "squeezenet1_1",
}


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
    params=[n if n in FAST else pytest.param(n, marks=pytest.mark.slow) for n in TORCHVISION_ARCHS],
)
def converted(request: pytest.FixtureRequest) -> Iterator[tuple[str, nn.Module, DenseModel]]:
    """``(name, classifier, dense)`` for one architecture (module-scoped: built once for its tests)."""
    name = request.param
    model = _build(name)
    with torch.no_grad():
        dense = make_fully_convolutional(model, TORCHVISION_ARCHS[name])
    yield name, model, dense


def test_native_size_equivalence(converted: tuple[str, nn.Module, DenseModel]) -> None:
    """(a) ``dense(x)[..., 0, 0] == model(x)`` for a native-size ``x`` ``[1, 3, N, N]``."""
    name, model, dense = converted
    n = TORCHVISION_ARCHS[name]
    x = torch.randn(1, 3, n, n, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ref = model(x)
        out = dense(x)
    assert out.shape == (1, ref.shape[1], 1, 1)
    assert (out[..., 0, 0] - ref).abs().max() <= 1e-4 * max(1.0, float(ref.abs().max()))


def test_larger_input_map_size(converted: tuple[str, nn.Module, DenseModel]) -> None:
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
# (c) exact oracles

SHIFTS = [(0, 0), (0, 1), (1, 0), (-1, -1)]


@pytest.fixture(scope="module")
def unpadded_alexnet() -> tuple[Geometry, torch.Tensor, torch.Tensor]:
    """AlexNet with its paddings removed (native 355 px, so the trunk gives the 6x6 map its head expects):
    ``(geometry, cells [K, 3, 3], crops [K, 3, 3])``, the classifier's logits on the crop at
    ``(32 j, 32 i)`` in ``crops[:, i, j]``, for a random ``[1, 3, 419, 419]`` input."""
    model = _build("alexnet")
    for m in model.features:
        if isinstance(m, nn.Conv2d):
            m.padding = (0, 0)
    dense = make_fully_convolutional(model, 355)
    x = torch.randn(1, 3, 355 + 64, 355 + 64, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        got = dense(x)[0]
        crops = torch.cat([x[:, :, 32 * i : 32 * i + 355, 32 * j : 32 * j + 355] for i in range(3) for j in range(3)])
        ref = model(crops).T.reshape(got.shape)
    return dense.geometry, got, ref


@pytest.mark.parametrize("shift", SHIFTS)
def test_unpadded_crops_are_exact(unpadded_alexnet: tuple[Geometry, torch.Tensor, torch.Tensor], shift) -> None:
    """(c) cell ``(i, j)`` == the classifier on the crop at ``(32 j, 32 i)`` with the same top-1 class;
    pairing each cell with the crop one stride off (``shift``) fails the same tolerance."""
    g, got, ref = unpadded_alexnet
    assert (g.stride, g.offset, g.receptive_field, g.rf_offset) == (32, 0.0, 355, 0)
    assert got.shape[1:] == (3, 3)
    (di, dj), tol = shift, 1e-4 * max(1.0, float(ref.abs().max()))
    cells = got[:, max(-di, 0) : 3 - max(di, 0), max(-dj, 0) : 3 - max(dj, 0)]
    crops = ref[:, max(di, 0) : 3 - max(-di, 0), max(dj, 0) : 3 - max(-dj, 0)]
    assert ((cells - crops).abs().max() <= tol) == (shift == (0, 0))
    if shift == (0, 0):
        assert torch.equal(cells.argmax(0), crops.argmax(0))


#: Padded nets whose receptive-field border measurably matters with random weights: replacing the band one
#: stride wide just inside a cell's field changes it by >= 4e-3 of the logit scale (measured: alexnet 3.5,
#: squeezenet1_1 5e-2, resnet18 4e-3). In deeper nets that band's influence is at float rounding (1e-7).
RF_ARCHS = ["alexnet", "squeezenet1_1", "resnet18"]


@pytest.fixture(scope="module", params=RF_ARCHS)
def rf_probe(request: pytest.FixtureRequest) -> tuple[DenseModel, torch.Tensor, torch.Tensor]:
    """``(dense, x, noise)``: ``x`` and ``noise`` ``[1, 3, N + (m - 1) s, N]`` (an ``m x 1`` map), tall enough
    that the first cell's field ends and the last cell's begins inside the image."""
    name = request.param
    dense = make_fully_convolutional(_build(name), TORCHVISION_ARCHS[name])
    g = dense.geometry
    cells = next(m for m in range(2, 64) if g.rf_offset + g.stride * (m - 1) > 0)
    side = g.window + g.stride * (cells - 1)
    x = torch.randn(1, 3, side, g.window, generator=torch.Generator().manual_seed(7))
    noise = 100 * torch.randn(1, 3, side, g.window, generator=torch.Generator().manual_seed(8))
    return dense, x, noise


def _rows_outside_replaced(x: torch.Tensor, noise: torch.Tensor, top: int, size: int) -> torch.Tensor:
    """``x`` (``[B, C, H, W]``) with every row outside ``[top, top + size)`` taken from ``noise``."""
    out = noise.clone()
    lo, hi = max(top, 0), min(top + size, x.shape[2])
    out[:, :, lo:hi] = x[:, :, lo:hi]
    return out


@pytest.mark.parametrize("shift", [0, 1, -1])
def test_cells_depend_on_exactly_their_receptive_field(
    rf_probe: tuple[DenseModel, torch.Tensor, torch.Tensor], shift: int
) -> None:
    """(c) padded nets: replacing every row outside the first and the last cell's receptive field
    (``[rf_offset + stride * i, ... + receptive_field)``) leaves them unchanged; the same field moved by
    one stride (``shift``) does not, so a one-stride error in stride, offset or field size fails."""
    dense, x, noise = rf_probe
    g = dense.geometry
    last = dense_output_size(dense, x.shape[2], x.shape[3])[0] - 1
    assert g.rf_offset + g.receptive_field < x.shape[2] and g.rf_offset + g.stride * last > 0
    tops = [g.rf_offset + g.stride * (i + shift) for i in (0, last)]
    images = [x] + [_rows_outside_replaced(x, noise, top, g.receptive_field) for top in tops]
    with torch.no_grad():
        out = dense(torch.cat(images))[:, :, :, 0]  # [3, K, m]; one batch, so the arithmetic is the same
    scale = float(out[0].abs().max())
    change = max(float((out[k + 1, :, i] - out[0, :, i]).abs().max()) for k, i in enumerate((0, last))) / scale
    if shift == 0:
        assert change <= 1e-6  # measured: exactly 0
    else:
        assert change > 1e-4


# --------------------------------------------------------------------------------------------------------
# Family-specific heads and input transforms


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


@pytest.mark.slow  # VGG-16 at 448 px
def test_vgg16_fc6_is_a_7x7_conv_and_448_gives_8x8() -> None:
    dense = make_fully_convolutional(_build("vgg16"), 224)
    fc6 = dense.hidden[0]
    assert isinstance(fc6, nn.Conv2d)
    assert (fc6.in_channels, fc6.out_channels, fc6.kernel_size) == (512, 4096, (7, 7))
    with torch.no_grad():
        out = dense(torch.zeros(1, 3, 448, 448))
    assert out.shape == (1, 1000, 8, 8)
