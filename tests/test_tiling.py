"""Tiled dense evaluation equals the untiled run (tiny memory budgets force many tiles)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from fcndetect import Detector, make_fully_convolutional
from fcndetect.geometry import dense_output_size
from fcndetect.models.mtcnn import ONet, RNet
from fcndetect.tiling import activation_bytes_per_pixel, plan_tiles, run_tiled


def test_plan_tiles_covers_everything_once():
    assert plan_tiles(10, 4) == [(0, 4), (4, 8), (8, 10)]
    assert plan_tiles(3, 0) == [(0, 1), (1, 2), (2, 3)]


def _padded_net() -> nn.Module:
    torch.manual_seed(0)
    body = [nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2, ceil_mode=True), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU()]
    return nn.Sequential(*body, nn.Flatten(), nn.Linear(8 * 4 * 4, 5)).eval()  # 16 px window


@pytest.mark.parametrize(
    "make, window",
    [(lambda: ONet().eval(), 48), (lambda: RNet().eval(), 24), (_padded_net, 16)],
)
@pytest.mark.parametrize("size", [(97, 131), (160, 120)])
def test_tiled_equals_untiled(make, window, size):
    torch.manual_seed(1)
    dense = make_fully_convolutional(make(), window)
    g = dense.geometry
    x = torch.randn(2, 3, *size)
    fn = lambda t: (dense(t), None)  # noqa: E731
    ref, _ = fn(x)
    bpp = activation_bytes_per_pixel(dense, g.window, g.stride)
    out_hw = dense_output_size(dense, *size)
    assert tuple(ref.shape[-2:]) == out_hw
    for budget in (bpp * 2 * (g.receptive_field + g.stride) ** 2, bpp * 2 * (g.receptive_field + 5 * g.stride) ** 2):
        tiled, _ = run_tiled(fn, x, g, out_hw, budget, bpp)
        assert torch.allclose(tiled, ref, atol=1e-5), (tiled - ref).abs().max()


def test_detector_tiled_equals_untiled(samples):
    image = np.asarray(__import__("PIL.Image", fromlist=["Image"]).open(samples / "astronaut.png").convert("RGB"))
    untiled = Detector(max_memory_mb=0, threshold=0.5)(image)
    tiled = Detector(max_memory_mb=1, threshold=0.5)(image)  # 1 MiB: dozens of tiles per level
    np.testing.assert_allclose(tiled.boxes, untiled.boxes, atol=1e-3)
    np.testing.assert_allclose(tiled.scores, untiled.scores, atol=1e-5)
