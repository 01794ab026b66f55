"""Run a dense network over a large input in tiles, with exactly the untiled result.

A cell's value depends only on the input inside its receptive field. A tile that covers output cells
``[c0, c1)`` therefore reads the input ``[c0 * stride - margin, (c1 - 1) * stride + rf_offset + rf)`` with a left
margin that covers the receptive field's negative offset (padding) and is a multiple of the stride, so that
every strided layer keeps its phase. Neighbouring tiles overlap by about one receptive field (one window),
and the cells of each tile outside ``[c0, c1)`` are discarded. Where a tile reaches the input's border it is
cut there, which is exactly what the untiled run sees.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from .geometry import Geometry

__all__ = ["activation_bytes_per_pixel", "run_tiled", "plan_tiles"]

DenseFn = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor | None]]


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
    dense._fcn_bytes_per_pixel = value  # type: ignore[attr-defined]
    return value


def plan_tiles(out_size: int, tile_cells: int) -> list[tuple[int, int]]:
    """Split ``[0, out_size)`` output cells into ``[c0, c1)`` runs of at most ``tile_cells``."""
    tile_cells = max(1, tile_cells)
    return [(c0, min(out_size, c0 + tile_cells)) for c0 in range(0, out_size, tile_cells)]


def _input_span(c0: int, c1: int, g: Geometry, size: int) -> tuple[int, int, int]:
    """Input rows ``[a, b)`` for output cells ``[c0, c1)``, and the index of cell ``c0`` in the tile's output."""
    margin = math.ceil(max(0, -g.rf_offset) / g.stride)  # in cells
    a = max(0, (c0 - margin) * g.stride)
    last = (c1 - 1) * g.stride
    b = min(size, max(last + g.rf_offset + g.receptive_field, last + g.window))
    return a, b, c0 - a // g.stride


@torch.inference_mode()
def run_tiled(
    fn: DenseFn,
    x: torch.Tensor,
    geometry: Geometry,
    out_hw: tuple[int, int],
    max_bytes: float | None,
    bytes_per_pixel: float,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``fn(x)`` computed tile by tile when ``x`` would need more than ``max_bytes`` of activations.

    Args:
        fn: the dense network: ``[B, 3, H, W]`` -> ``(scores [B, K, H', W'], regression [B, 4, H', W'] | None)``.
        x: ``[B, 3, H, W]`` input.
        geometry: the network's geometry.
        out_hw: ``(H', W')``, the untiled output size.
        max_bytes: activation budget per image of the batch (``None``: never tile).
        bytes_per_pixel: from :func:`activation_bytes_per_pixel`.

    Returns:
        the same tensors as ``fn(x)`` (equal up to floating-point summation order of the convolutions).
    """
    b, _, h, w = x.shape
    # The budget is per image, so the tile grid (and every number) does not depend on the batch size.
    if max_bytes is None or h * w * bytes_per_pixel <= max_bytes:
        return fn(x)
    oh, ow = out_hw
    # square tiles of about max_bytes, in whole cells, at least one cell
    side_px = math.sqrt(max(max_bytes / bytes_per_pixel, 1.0))
    cells = max(1, int((side_px - geometry.receptive_field) // geometry.stride) + 1)
    out_s: torch.Tensor | None = None
    out_r: torch.Tensor | None = None
    for r0, r1 in plan_tiles(oh, cells):
        ya, yb, ry = _input_span(r0, r1, geometry, h)
        for c0, c1 in plan_tiles(ow, cells):
            xa, xb, rx = _input_span(c0, c1, geometry, w)
            s, r = fn(x[:, :, ya:yb, xa:xb])
            if out_s is None:
                out_s = s.new_empty((b, s.shape[1], oh, ow))
                out_r = r.new_empty((b, r.shape[1], oh, ow)) if r is not None else None
            out_s[:, :, r0:r1, c0:c1] = s[:, :, ry : ry + r1 - r0, rx : rx + c1 - c0]
            if r is not None and out_r is not None:
                out_r[:, :, r0:r1, c0:c1] = r[:, :, ry : ry + r1 - r0, rx : rx + c1 - c0]
    if out_s is None:
        return fn(x)
    return out_s, out_r
