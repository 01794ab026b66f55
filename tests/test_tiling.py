"""Tiling: the planned tiles (counted network calls) and tiled output equal to the untiled run."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from fcndetect import Detector, make_fully_convolutional
from fcndetect.geometry import Geometry
from fcndetect.spans import dense_output_size
from fcndetect.models.mtcnn import ONet, RNet
from fcndetect.tiling import (
    MAX_OVERHEAD,
    activation_bytes_per_pixel,
    budget_cells,
    plan_level,
    plan_tiles,
    run_tiled,
    tile_extent,
)

MIB = 2**20
ONET = Geometry(stride=8, offset=0.0, window=48, receptive_field=49, rf_offset=0)
ONET_BPP = 243.36
MOBILENET = Geometry(stride=32, offset=0.0, window=224, receptive_field=683, rf_offset=-245)  # torchvision's
MOBILENET_BPP = 192.0


def _out(side: int, g: Geometry) -> int:
    return (side - g.window) // g.stride + 1


def _counted(fn):
    """``fn`` and a list that gets one entry per call."""
    calls: list[tuple[int, ...]] = []

    def wrapped(t: torch.Tensor):
        calls.append(tuple(t.shape))
        return fn(t)

    return wrapped, calls


def _count_calls(dense: nn.Module) -> list[int]:
    """Counts forward calls of ``dense`` (a hook on its first layer, so every entry point is seen), after its
    memory probe (:func:`activation_bytes_per_pixel`, cached on the module) has run."""
    activation_bytes_per_pixel(dense, dense.geometry.window, dense.geometry.stride)
    first = next(m for m in dense.modules() if not list(m.children()))
    calls: list[int] = []
    first.register_forward_pre_hook(lambda _m, _i: calls.append(1))
    return calls


def test_plan_tiles_covers_everything_once():
    assert plan_tiles(10, 4) == [(0, 4), (4, 8), (8, 10)]
    assert plan_tiles(3, 0) == [(0, 1), (1, 2), (2, 3)]


def test_tile_extent_is_the_true_input_of_a_tile():
    assert tile_extent(1, ONET) == 49  # O-Net: receptive field 49 px
    # MobileNetV2: 245 px of padding (8 cells of margin = 256 px) + the 683 px field, minus the offset
    assert tile_extent(1, MOBILENET) == 8 * 32 + (683 - 245) == 694
    assert tile_extent(3, MOBILENET) == 694 + 2 * 32


def test_budget_cells_fit_the_budget():
    cells = budget_cells(32 * MIB, ONET_BPP, ONET)
    assert cells == 41  # 369 px: sqrt(32 MiB / 243.36 B) = 371 px
    assert tile_extent(cells, ONET) ** 2 * ONET_BPP <= 32 * MIB < tile_extent(cells + 1, ONET) ** 2 * ONET_BPP
    assert budget_cells(32 * MIB, MOBILENET_BPP, MOBILENET) == 1  # 694 px > 418 px: no tile fits


def test_level_within_the_budget_runs_whole():
    assert plan_level((300, 300), (_out(300, ONET),) * 2, ONET, 32 * MIB, ONET_BPP) is None
    assert plan_level((3000, 3000), (_out(3000, ONET),) * 2, ONET, None, ONET_BPP) is None


def test_wide_receptive_field_against_the_budget_runs_whole():
    # chelsea's first level with MobileNetV2 at 32 MiB: one-cell tiles would each read nearly the level
    hw = (420, 631)
    assert hw[0] * hw[1] * MOBILENET_BPP > 32 * MIB
    assert plan_level(hw, (_out(420, MOBILENET), _out(631, MOBILENET)), MOBILENET, 32 * MIB, MOBILENET_BPP) is None


def test_level_just_over_the_budget_runs_whole():
    # 4 tiles of 369 px would each be more than half of a 420x631 level
    assert plan_level((420, 631), (_out(420, ONET), _out(631, ONET)), ONET, 32 * MIB, ONET_BPP) is None


def test_large_level_tiles_to_the_budget():
    plan = plan_level((1000, 1000), (_out(1000, ONET),) * 2, ONET, 32 * MIB, ONET_BPP)
    assert plan is not None
    assert plan.calls == 9  # 120 cells per side in tiles of 41
    assert [(t.c0, t.c1, t.a, t.b) for t in plan.rows] == [(0, 41, 0, 369), (41, 82, 328, 697), (82, 120, 656, 1000)]
    assert plan.max_tile_pixels() * ONET_BPP <= 32 * MIB
    assert plan.read_pixels() == (369 + 369 + 344) ** 2


def test_tiles_grow_until_the_overlap_pays():
    hw = (4200, 5600)
    out_hw = (_out(4200, MOBILENET), _out(5600, MOBILENET))
    plan = plan_level(hw, out_hw, MOBILENET, 32 * MIB, MOBILENET_BPP)
    assert plan is not None
    assert plan.read_pixels() <= MAX_OVERHEAD * hw[0] * hw[1]
    assert plan.calls == 4  # not the 125 x 169 one-cell tiles the budget alone would give
    forced = plan_level(hw, out_hw, MOBILENET, 32 * MIB, MOBILENET_BPP, max_overhead=math.inf)
    assert forced is not None and forced.calls == out_hw[0] * out_hw[1]


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
@pytest.mark.parametrize("cells", [1, 2, 5])
def test_tiled_equals_untiled(make, window, size, cells):
    torch.manual_seed(1)
    dense = make_fully_convolutional(make(), window)
    g = dense.geometry
    x = torch.randn(2, 3, *size)
    ref = dense(x)
    bpp = activation_bytes_per_pixel(dense, g.window, g.stride)
    out_hw = dense_output_size(dense, *size)
    assert tuple(ref.shape[-2:]) == out_hw
    budget = bpp * (tile_extent(cells, g) + 0.5) ** 2  # tiles of exactly `cells` cells per side
    fn, calls = _counted(lambda t: (dense(t), None))
    tiled, _ = run_tiled(fn, x, g, out_hw, budget, bpp, math.inf, 1.0)  # small tiles, whatever they cost
    assert len(calls) == math.ceil(out_hw[0] / cells) * math.ceil(out_hw[1] / cells) > 1
    assert torch.allclose(tiled, ref, atol=1e-5), (tiled - ref).abs().max()


def test_detector_tiled_equals_untiled(samples):
    image = np.asarray(Image.open(samples / "astronaut.png").convert("RGB"))
    untiled_det = Detector(model="face", max_memory_mb=0, threshold=0.5)  # the dense O-Net
    tiled_det = Detector(model="face", max_memory_mb=1, threshold=0.5)  # 1 MiB: 2x2 to 6x6 tiles on 8 of 14 levels
    untiled_calls = _count_calls(untiled_det.dense_model.dense)
    tiled_calls = _count_calls(tiled_det.dense_model.dense)
    untiled, tiled = untiled_det(image), tiled_det(image)
    levels = tiled_det.levels(image.shape[1], image.shape[0])
    dense = tiled_det.dense_model.dense
    g = dense.geometry
    bpp = activation_bytes_per_pixel(dense, g.window, g.stride)
    plans = [plan_level((lv.height, lv.width), dense_output_size(dense, lv.height, lv.width), g, MIB, bpp)
             for lv in levels]
    assert len(untiled_calls) == len(levels)
    assert len(tiled_calls) == sum(p.calls if p else 1 for p in plans) > 3 * len(levels)
    np.testing.assert_allclose(tiled.boxes, untiled.boxes, atol=1e-3)
    np.testing.assert_allclose(tiled.scores, untiled.scores, atol=1e-5)


def test_mobilenet_runs_one_call_per_level_at_the_default_budget(samples, mobilenet_weights):
    weights = str(mobilenet_weights)
    image = np.asarray(Image.open(samples / "chelsea.png").convert("RGB"))
    det = Detector(model="mobilenet_v2", weights=weights, classes=("cat",))
    assert det.config.max_memory_mb > 0  # the preset's budget, not "never tile"
    calls = _count_calls(det.dense_model.dense)
    out = det(image)
    assert len(calls) == len(det.levels(image.shape[1], image.shape[0])) == 2  # was 112 + 1 calls
    ref = Detector(model="mobilenet_v2", weights=weights, classes=("cat",), max_memory_mb=0)(image)
    assert len(out) > 0
    np.testing.assert_array_equal(out.boxes, ref.boxes)
    np.testing.assert_array_equal(out.scores, ref.scores)
