"""Geometry from layer parameters, against the crop oracle, PyTorch's own output sizes and hand-derived values."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import oracles
from fcndetect.geometry import GeometryError, boxes_to_cells, cells_to_boxes
from fcndetect.spans import Span, compute_geometry, dense_output_size, trace_layers, window_span


def _net(*layers: nn.Module) -> nn.Sequential:
    return nn.Sequential(*layers).eval()


@pytest.mark.parametrize(
    "layers, window, stride, rf, rf_offset",
    [
        # conv3 -> pool2/2 -> conv3: rf = 3 + 1*1 + 2*2 = 8, stride 2
        ((nn.Conv2d(3, 4, 3), nn.MaxPool2d(2), nn.Conv2d(4, 2, 3)), 8, 2, 8, 0),
        # padding 1 shifts the receptive field left by 1 input pixel per layer at jump 1
        ((nn.Conv2d(3, 4, 3, padding=1), nn.MaxPool2d(2), nn.Conv2d(4, 2, 4)), 8, 2, 10, -1),
        # dilation 2: effective kernel 5
        ((nn.Conv2d(3, 4, 3, dilation=2), nn.Conv2d(4, 2, 2, stride=2)), 6, 2, 6, 0),
        # O-Net-like ceil-mode pooling: receptive field one pixel larger than the window
        ((nn.Conv2d(3, 4, 3), nn.MaxPool2d(3, 2, ceil_mode=True), nn.Conv2d(4, 2, 4)), 10, 2, 11, 0),
    ],
)
def test_geometry_hand_derived(layers, window, stride, rf, rf_offset):
    g = compute_geometry(_net(*layers), window)
    assert (g.stride, g.window, g.receptive_field, g.rf_offset, g.offset) == (stride, window, rf, rf_offset, 0.0)


@pytest.mark.parametrize("size", [8, 9, 10, 17, 31, 64])
@pytest.mark.parametrize("ceil", [False, True])
def test_output_size_matches_pytorch(size, ceil):
    net = _net(nn.Conv2d(3, 4, 3), nn.MaxPool2d(3, 2, ceil_mode=ceil), nn.Conv2d(4, 4, 2, padding=1),
               nn.AvgPool2d(2, 2, ceil_mode=ceil), nn.Conv2d(4, 2, 1))
    out = net(torch.zeros(1, 3, size, size + 3))
    assert dense_output_size(net, size, size + 3) == tuple(out.shape[-2:])


def test_residual_branches_merge():
    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Conv2d(3, 3, 3, padding=1)
            self.b = nn.Conv2d(3, 3, 5, padding=2)

        def forward(self, x):
            return self.a(x) + self.b(x)

    t = trace_layers(Block(), 10)
    assert (t.output_size, t.stride, t.receptive_field, t.rf_offset) == (10, 1, 5, -2)


@pytest.mark.parametrize(
    "layer, words",
    [
        (nn.Upsample(scale_factor=2), "Upsample.*fcn_span"),
        (nn.ConvTranspose2d(4, 4, 3), "ConvTranspose2d.*fcn_span"),
        (nn.PixelUnshuffle(2), "PixelUnshuffle.*fcn_span"),
        (nn.Conv2d(4, 4, 3, padding=1, padding_mode="circular"), "circular padding"),
    ],
)
def test_unknown_spatial_layer_is_refused(layer, words):
    net = _net(nn.Conv2d(3, 4, 3), layer, nn.Conv2d(4, 2, 3))
    with pytest.raises(GeometryError, match=words):
        trace_layers(net, 12)


def test_wrong_window_is_refused():
    with pytest.raises(GeometryError, match="not 1x1"):
        compute_geometry(_net(nn.Conv2d(3, 4, 3), nn.Conv2d(4, 2, 3)), 8)


# --------------------------------------------------------------------------------------------------------
# Rows and columns must agree


@pytest.mark.parametrize(
    "conv, window, words",
    [
        (nn.Conv2d(3, 4, 3, stride=(1, 2)), 8, "stride_y=1, stride_x=2"),
        (nn.Conv2d(3, 4, (3, 5), padding=(1, 2)), 8, "receptive field 10 x 12 px, rf_offset -1 / -2"),
        (nn.Conv2d(3, 4, 3, padding=(1, 0)), 8, "receptive field 10 x 8 px, rf_offset -1 / 0"),
        (nn.Conv2d(3, 4, 3, dilation=(2, 1), padding=(2, 1)), 8, "receptive field 12 x 10 px"),
    ],
)
def test_axes_with_different_geometry_are_refused(conv: nn.Conv2d, window: int, words: str) -> None:
    """One cell at the native size along both axes, but a different stride or field along each: refused."""
    rows, cols = conv(torch.zeros(1, 3, window, window)).shape[-2:]
    net = _net(conv, nn.Conv2d(4, 2, (rows, cols)))
    with pytest.raises(GeometryError, match=words):
        compute_geometry(net, window)


def test_axes_may_differ_layer_by_layer_when_the_totals_agree() -> None:
    """A (3, 1) then (1, 3) kernel has a 3 x 3 field and stride 1 along both axes: accepted."""
    g = compute_geometry(_net(nn.Conv2d(3, 4, (3, 1)), nn.Conv2d(4, 2, (1, 3)), nn.Conv2d(2, 2, 4)), 6)
    assert (g.stride, g.receptive_field, g.rf_offset) == (1, 6, 0)


# --------------------------------------------------------------------------------------------------------
# Allow-list: operations of unknown spatial effect are refused, per-position ones pass


class _Then(nn.Module):
    """``fn(conv(x))``: a 3x3 convolution followed by the operation under test (traced by torch.fx)."""

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor], extra: nn.Module | None = None) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.fn = fn
        self.extra = extra if extra is not None else nn.Identity()
        self.register_buffer("per_position", torch.ones(1, 4, 6, 6))
        self.register_buffer("per_channel", torch.ones(1, 4, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(self, self.conv(x))


@pytest.mark.parametrize(
    "fn, words",
    [
        (lambda m, x: torch.flip(x, (3,)), "'flip'"),
        (lambda m, x: x.flip(2), "'flip'"),
        (lambda m, x: torch.roll(x, 1, 3), "'roll'"),
        (lambda m, x: x.transpose(2, 3), "'transpose'"),
        (lambda m, x: torch.cat([x, x], dim=3), "dim 3"),
        (lambda m, x: torch.cat([x, x], 2), "dim 2"),
        (lambda m, x: F.pixel_unshuffle(x, 2), "'pixel_unshuffle'"),
        (lambda m, x: m.extra(x), "PixelUnshuffle"),
        (lambda m, x: F.conv_transpose2d(x, torch.ones(4, 4, 3, 3)), "'conv_transpose2d'"),
        (lambda m, x: F.softmax(x, dim=3), "dim 3"),
        (lambda m, x: x.softmax(-1), "dim -1"),
        (lambda m, x: x.permute(0, 1, 3, 2), r"permute\(0, 1, 3, 2\)"),
        (lambda m, x: x[:, :, 1:], "indexing"),
        (lambda m, x: x.mean((2, 3), keepdim=True), "'mean'"),
        (lambda m, x: x + m.per_position, "per_position"),
        (lambda m, x: torch.rot90(x, 1, (2, 3)), "'rot90'"),
    ],
)
def test_ops_of_unknown_geometry_are_refused(fn, words: str) -> None:
    extra = nn.PixelUnshuffle(2)
    with pytest.raises(GeometryError, match=words) as err:
        trace_layers(_Then(fn, extra), 6)
    if "per_position" not in words and "indexing" not in words:
        assert "fcn_span" in str(err.value)  # the message says how to declare the op's geometry


@pytest.mark.parametrize("dim", [2, 3, -1, -2])
def test_softmax_over_a_spatial_dim_is_refused(dim: int) -> None:
    for module in (nn.Softmax(dim=dim), nn.LogSoftmax(dim=dim)):
        with pytest.raises(GeometryError, match=f"dim {dim}.*fcn_span"):
            trace_layers(_net(nn.Conv2d(3, 4, 3), module), 6)


@pytest.mark.parametrize(
    "fn",
    [
        lambda m, x: m.extra(x),  # nn.Softmax(dim=1)
        lambda m, x: F.softmax(x, dim=1),
        lambda m, x: x.log_softmax(-3),
        lambda m, x: torch.cat([x, x.relu()], dim=1),
        lambda m, x: torch.cat(x.chunk(2, dim=1)[::-1], 1),
        lambda m, x: F.channel_shuffle(x, 2),
        lambda m, x: x * m.per_channel + 1,
        lambda m, x: F.hardswish(torch.sigmoid(x) * x)[:, :2],
        lambda m, x: F.layer_norm(x.permute(0, 2, 3, 1), (4,)).permute(0, 3, 1, 2),
    ],
)
def test_per_position_ops_keep_the_geometry(fn) -> None:
    """Softmax over channels and other per-position ops: same map size and field as the convolution alone."""
    net = _Then(fn, nn.Softmax(dim=1))
    x = torch.zeros(1, 3, 11, 9)
    assert tuple(net(x).shape[-2:]) == dense_output_size(net, 11, 9) == (9, 7)
    t = trace_layers(net, 11)
    assert (t.stride, t.receptive_field, t.rf_offset) == (1, 3, 0)


class _Blur(nn.Module):
    """A 3-tap circular blur built from ``torch.roll`` (unknown to the walk), declaring its span."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (torch.roll(x, 1, 3) + x + torch.roll(x, -1, 3)) / 3

    def fcn_span(self, span: Span, axis: int) -> Span:
        return window_span(span, 3, 1, 1, 1, False, "blur")


class _Erf(nn.Module):
    fcn_pointwise = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.erf(x)


def test_declared_geometry_is_used() -> None:
    """The documented hooks: ``fcn_span`` widens the field by the declared window; ``fcn_pointwise`` passes."""
    t = trace_layers(_net(nn.Conv2d(3, 4, 3), _Blur(), _Erf()), 10)
    assert (t.output_size, t.stride, t.receptive_field, t.rf_offset) == (8, 1, 5, -1)
    with pytest.raises(GeometryError, match="'erf'"):
        trace_layers(_Then(lambda m, x: torch.erf(x)), 10)


class _FunctionalPools(nn.Module):
    """Inception-style block: F.max_pool2d / F.avg_pool2d called in forward()."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.avg_pool2d(x, kernel_size=3, stride=1, padding=1)
        return F.max_pool2d(y, 3, stride=2, ceil_mode=True)


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
# Cells <-> boxes, and the crop oracle


@pytest.mark.parametrize("scale", [(1.0, 1.0), (0.5, 0.5), (2.0, 1.5), (0.7937, 0.8)])
def test_cells_boxes_roundtrip(scale):
    net = _net(nn.Conv2d(3, 4, 3), nn.MaxPool2d(2), nn.Conv2d(4, 2, 3))
    g = compute_geometry(net, 8)
    rows = torch.tensor([0, 1, 5, 7])
    cols = torch.tensor([0, 3, 2, 9])
    boxes = cells_to_boxes(rows, cols, g, scale)
    sx, sy = scale
    assert torch.allclose(boxes[1], torch.tensor([3 * 2 / sx, 1 * 2 / sy, (3 * 2 + 8) / sx, (1 * 2 + 8) / sy]))
    r2, c2 = boxes_to_cells(boxes, g, scale)
    assert torch.equal(r2, rows) and torch.equal(c2, cols)


@pytest.mark.parametrize("name", ["onet", "rnet"])
def test_mtcnn_cells_are_the_classifier_on_their_receptive_field(name):
    """Cell ``(i, j)`` is the classifier's logits on the receptive-field crop whose top-left corner is the
    cell's box (``cells_to_boxes``) plus ``rf_offset``: exact (its ceil-mode pools read the field's last
    pixel), and no other cell matches that crop, so a one-stride shift of the boxes would fail."""
    from fcndetect.convert import make_fully_convolutional
    from fcndetect.models.mtcnn import load_mtcnn

    net = load_mtcnn(name)
    dense = make_fully_convolutional(net, net.input_size)
    g = dense.geometry
    assert g.window == net.input_size and g.receptive_field == net.input_size + 1
    torch.manual_seed(0)
    x = torch.rand(1, 3, g.receptive_field + 5 * g.stride, g.receptive_field + 4 * g.stride) * 2 - 1
    with torch.no_grad():
        cells = dense(x)[0].flatten(1).T  # [H' * W', 2], row-major
        h, w = dense_output_size(dense, x.shape[2], x.shape[3])
        rows, cols = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
        boxes = cells_to_boxes(rows.flatten(), cols.flatten(), g)
        corners = boxes[:, :2].round().long() + g.rf_offset
        rf = g.receptive_field
        crops = torch.cat([x[:, :, int(y0):int(y0) + rf, int(x0):int(x0) + rf] for x0, y0 in corners])
        ref = oracles.mtcnn_logits(net, crops)
    assert (h, w) == (6, 5)
    dist = (ref[:, None] - cells[None]).abs().amax(-1)  # [crops, cells]
    assert dist.diagonal().max() <= 1e-4
    assert torch.equal(dist.argmin(1), torch.arange(h * w))  # the crop-aligned cell is the best match
    off_diagonal = dist + torch.eye(h * w) * 1e9
    assert off_diagonal.min() > 1e-4  # no other cell is within the tolerance (measured: >= 2e-3, logits ~4)
