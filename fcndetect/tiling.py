"""Run a dense network over a large input in tiles, with exactly the untiled result, and only where it pays.

A cell's value depends only on the input inside its receptive field. A tile that covers output cells
``[c0, c1)`` therefore reads the input ``[c0 * stride - margin, (c1 - 1) * stride + rf_offset + rf)`` with a left
margin that covers the receptive field's negative offset (padding) and is a multiple of the stride, so that
every strided layer keeps its phase. Neighbouring tiles overlap by about one receptive field, and the cells of
each tile outside ``[c0, c1)`` are discarded. Where a tile reaches the input's border it is cut there, which is
exactly what the untiled run sees.

Tiles are sized by that true input extent (receptive field plus margin, not the window), square in cells, as
large as the memory budget allows. The overlap is computed twice, so tiling is a trade of time for memory; a
level is tiled only when the trade is good (:func:`plan_level`):

- tiles are grown (past the budget if need be) until all tiles together read at most :data:`MAX_OVERHEAD`
  times the level's pixels. A network whose receptive field is wide against the budget (torchvision
  MobileNetV2: 683 px) therefore gets tiles larger than the budget, or none;
- the level is tiled only when one tile is at most :data:`MAX_TILE_FRACTION` of the level's pixels, so a level
  that needs less than about twice the budget runs whole.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from .geometry import Geometry

__all__ = [
    "MAX_OVERHEAD",
    "MAX_TILE_FRACTION",
    "AxisTile",
    "TilePlan",
    "activation_bytes_per_pixel",
    "budget_cells",
    "plan_axis",
    "plan_level",
    "plan_tiles",
    "run_tiled",
    "tile_extent",
]

DenseFn = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor | None]]

#: Tiles read at most this many input pixels per pixel of the level (the overlap is computed twice). O-Net's
#: 32 MiB tiles read 1.17x (1000 px level) to 1.26x (10624 px), and run faster than untiled because they stay
#: in the CPU caches; MobileNetV2's 1 GiB tiles read 1.5x on a 2800 px level and ran 1.25x slower.
MAX_OVERHEAD = 1.3
#: A level is tiled only when one tile has at most this fraction of its pixels.
MAX_TILE_FRACTION = 0.5


@torch.inference_mode()
def activation_bytes_per_pixel(dense: nn.Module, window: int, stride: int) -> float:
    """Peak bytes of activations per input pixel (batch 1), measured with forward hooks on a probe input.

    The peak of one layer is its input plus its output (both are alive while it runs).
    """
    cached = getattr(dense, "_fcn_bytes_per_pixel", None)
    if cached is not None:
        return float(cached)
    side = window + 4 * stride
    param = next(dense.parameters(), None)
    x = torch.zeros(1, 3, side, side, dtype=param.dtype if param is not None else torch.float32,
                    device=param.device if param is not None else "cpu")
    peak = 0

    def hook(_m: nn.Module, inputs: tuple[object, ...], output: object) -> None:
        nonlocal peak
        size = sum(t.numel() * t.element_size() for t in inputs if isinstance(t, torch.Tensor))
        if isinstance(output, torch.Tensor):
            size += output.numel() * output.element_size()
        peak = max(peak, size)

    handles = [m.register_forward_hook(hook) for m in dense.modules() if not list(m.children())]
    try:
        dense(x)
    finally:
        for h in handles:
            h.remove()
    value = peak / (side * side)
    setattr(dense, "_fcn_bytes_per_pixel", value)  # noqa: B010  (a cache on a plain nn.Module)
    return value


def plan_tiles(out_size: int, tile_cells: int) -> list[tuple[int, int]]:
    """Split ``[0, out_size)`` output cells into ``[c0, c1)`` runs of at most ``tile_cells``."""
    tile_cells = max(1, tile_cells)
    return [(c0, min(out_size, c0 + tile_cells)) for c0 in range(0, out_size, tile_cells)]


def _margin_cells(g: Geometry) -> int:
    """Cells of left margin that cover the receptive field's negative offset (padding)."""
    return math.ceil(max(0, -g.rf_offset) / g.stride)


def tile_extent(cells: int, g: Geometry) -> int:
    """Input pixels along one axis that a tile of ``cells`` output cells reads, away from the borders."""
    return (cells - 1 + _margin_cells(g)) * g.stride + max(g.rf_offset + g.receptive_field, g.window)


def budget_cells(max_bytes: float, bytes_per_pixel: float, g: Geometry) -> int:
    """The most cells per side of a square tile whose input (:func:`tile_extent` squared) fits in
    ``max_bytes`` of activations; at least 1."""
    side = math.sqrt(max(max_bytes / max(bytes_per_pixel, 1e-12), 0.0))
    return max(1, math.floor((side - tile_extent(1, g)) / g.stride) + 1)


@dataclass(frozen=True)
class AxisTile:
    """One run of tiles along an axis: output cells ``[c0, c1)`` read input ``[a, b)``; cell ``c0`` is at index
    ``skip`` of the tile's output."""

    c0: int
    c1: int
    a: int
    b: int
    skip: int


def _input_span(c0: int, c1: int, g: Geometry, size: int) -> AxisTile:
    """Input ``[a, b)`` (clipped to ``[0, size)``) for output cells ``[c0, c1)``."""
    a = max(0, (c0 - _margin_cells(g)) * g.stride)
    last = (c1 - 1) * g.stride
    b = min(size, max(last + g.rf_offset + g.receptive_field, last + g.window))
    return AxisTile(c0, c1, a, b, c0 - a // g.stride)


def plan_axis(out_size: int, size: int, cells: int, g: Geometry) -> list[AxisTile]:
    """The tiles of ``cells`` output cells along an axis of ``size`` input pixels and ``out_size`` cells."""
    return [_input_span(c0, c1, g, size) for c0, c1 in plan_tiles(out_size, cells)]


@dataclass(frozen=True)
class TilePlan:
    """A grid of tiles over one ``[H, W]`` level: ``rows`` x ``cols`` network calls."""

    rows: tuple[AxisTile, ...]
    cols: tuple[AxisTile, ...]

    @property
    def calls(self) -> int:
        """Network calls (per batch)."""
        return len(self.rows) * len(self.cols)

    def read_pixels(self) -> int:
        """Input pixels read by all tiles together (the overlaps counted each time)."""
        return sum(t.b - t.a for t in self.rows) * sum(t.b - t.a for t in self.cols)

    def max_tile_pixels(self) -> int:
        """Input pixels of the largest tile."""
        return max(t.b - t.a for t in self.rows) * max(t.b - t.a for t in self.cols)


def plan_level(
    in_hw: tuple[int, int],
    out_hw: tuple[int, int],
    g: Geometry,
    max_bytes: float | None,
    bytes_per_pixel: float,
    max_overhead: float = MAX_OVERHEAD,
    max_tile_fraction: float = MAX_TILE_FRACTION,
) -> TilePlan | None:
    """The tiles of an ``[H, W]`` input with an ``[H', W']`` output, or ``None`` to run it whole.

    The input runs whole when it fits ``max_bytes`` (``None``: always). Otherwise tiles have the most cells
    that fit the budget (:func:`budget_cells`), grown one cell at a time until they read at most
    ``max_overhead`` times the input's pixels; if a tile is then more than ``max_tile_fraction`` of the input,
    it runs whole.
    """
    h, w = in_hw
    oh, ow = out_hw
    if max_bytes is None or h * w * bytes_per_pixel <= max_bytes or oh < 1 or ow < 1:
        return None
    cells = budget_cells(max_bytes, bytes_per_pixel, g)
    while cells < max(oh, ow):
        plan = TilePlan(tuple(plan_axis(oh, h, cells, g)), tuple(plan_axis(ow, w, cells, g)))
        if plan.read_pixels() <= max_overhead * h * w:
            return plan if plan.max_tile_pixels() <= max_tile_fraction * h * w else None
        cells += 1  # the smallest tiles that pay: O(out / cells) per step, O(out log out) in all
    return None


@torch.inference_mode()
def run_tiled(
    fn: DenseFn,
    x: torch.Tensor,
    geometry: Geometry,
    out_hw: tuple[int, int],
    max_bytes: float | None,
    bytes_per_pixel: float,
    max_overhead: float = MAX_OVERHEAD,
    max_tile_fraction: float = MAX_TILE_FRACTION,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``fn(x)`` computed tile by tile when :func:`plan_level` says so.

    Args:
        fn: the dense network: ``[B, 3, H, W]`` -> ``(scores [B, K, H', W'], regression [B, 4, H', W'] | None)``.
        x: ``[B, 3, H, W]`` input.
        geometry: the network's geometry.
        out_hw: ``(H', W')``, the untiled output size.
        max_bytes: activation budget per image of the batch (``None``: never tile).
        bytes_per_pixel: from :func:`activation_bytes_per_pixel`.
        max_overhead, max_tile_fraction: see :func:`plan_level` (``math.inf`` and ``1.0`` tile to the budget
            whatever it costs).

    Returns:
        the same tensors as ``fn(x)`` (equal up to floating-point summation order of the convolutions).
    """
    b, _, h, w = x.shape
    # The budget is per image, so the tile grid (and every number) does not depend on the batch size.
    plan = plan_level((h, w), out_hw, geometry, max_bytes, bytes_per_pixel, max_overhead, max_tile_fraction)
    if plan is None:
        return fn(x)
    oh, ow = out_hw
    out_s: torch.Tensor | None = None
    out_r: torch.Tensor | None = None
    for ty in plan.rows:
        for tx in plan.cols:
            s, r = fn(x[:, :, ty.a : ty.b, tx.a : tx.b])
            if out_s is None:
                out_s = s.new_empty((b, s.shape[1], oh, ow))
                out_r = r.new_empty((b, r.shape[1], oh, ow)) if r is not None else None
            rows = slice(ty.skip, ty.skip + ty.c1 - ty.c0)
            cols = slice(tx.skip, tx.skip + tx.c1 - tx.c0)
            out_s[:, :, ty.c0 : ty.c1, tx.c0 : tx.c1] = s[:, :, rows, cols]
            if r is not None and out_r is not None:
                out_r[:, :, ty.c0 : ty.c1, tx.c0 : tx.c1] = r[:, :, rows, cols]
    if out_s is None:  # no tile (an empty output)
        return fn(x)
    return out_s, out_r
