"""Where each cell of a dense score map looks in its input, computed from layer parameters.

A dense network maps an input of ``H x W`` pixels to a score map of ``H' x W'`` cells. Cell ``(i, j)``
(row ``i``, column ``j``) corresponds to the classifier's training window (its *native* input size) placed
at ``(offset + stride * j, offset + stride * i)`` in the input: the crop that, classified on its own,
gives (up to border effects of padding and ceil-mode pooling) the score in that cell.

The *receptive field* is reported separately: it is every input pixel that can influence a cell, and it
can be larger than the window (O-Net: 49 px for a 48 px window, because its ceil-mode pools see one
padded column at the native size) or smaller than it (VGG-16: 212 px of context... plus padding).

All boxes are ``[x1, y1, x2, y2]`` floats with continuous edges: ``[0, 0, W, H]`` is the whole image.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import fx, nn

__all__ = [
    "Geometry",
    "GeometryError",
    "LayerTrace",
    "trace_layers",
    "compute_geometry",
    "dense_output_size",
    "cells_to_boxes",
    "boxes_to_cells",
]


class GeometryError(ValueError):
    """The network contains a layer whose spatial effect cannot be expressed as a sliding window."""


@dataclass(frozen=True)
class Geometry:
    """Sliding-window geometry of a dense network (the same along both axes).

    Attributes:
        stride: input pixels between neighbouring cells.
        offset: left/top edge, in input pixels, of the window of cell ``(0, 0)``.
        window: side of the classifier's native input (the box emitted for a cell).
        receptive_field: side of the region of input pixels that can influence one cell.
        rf_offset: left/top edge of the receptive field of cell ``(0, 0)`` (negative with padding).
    """

    stride: int
    offset: float
    window: int
    receptive_field: int
    rf_offset: int

    def to_dict(self) -> dict[str, float | int]:
        return {
            "stride": self.stride,
            "offset": self.offset,
            "window": self.window,
            "receptive_field": self.receptive_field,
            "rf_offset": self.rf_offset,
        }


@dataclass(frozen=True)
class _Span:
    """Per-tensor state while walking the graph: size along one axis, jump, receptive field."""

    size: int
    jump: int
    left: int  # left edge of the receptive field of output index 0, in input pixels
    extent: int  # receptive field size
    channels_last: bool = False  # the tensor is ``[B, H, W, C]`` (ConvNeXt blocks permute around Linear)


@dataclass(frozen=True)
class LayerTrace:
    """Result of walking a network's graph for one input side.

    Attributes:
        output_size: side of the output map for the given input side.
        stride: product of strides along the path (all paths must agree).
        rf_offset: left edge of the receptive field of output index 0.
        receptive_field: receptive field size.
    """

    output_size: int
    stride: int
    rf_offset: int
    receptive_field: int


# Modules and functions that act on each position independently (or only on channels).
_POINTWISE_MODULES: tuple[type[nn.Module], ...] = (
    nn.ReLU,
    nn.ReLU6,
    nn.PReLU,
    nn.LeakyReLU,
    nn.ELU,
    nn.SELU,
    nn.GELU,
    nn.SiLU,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.Sigmoid,
    nn.Tanh,
    nn.Mish,
    nn.BatchNorm2d,
    nn.Identity,
    nn.Dropout,
    nn.Dropout2d,
    nn.Softmax,
    nn.LogSoftmax,
    nn.ChannelShuffle,
)
_SPATIAL_FUNCTIONS = {
    "adaptive_avg_pool2d",
    "adaptive_max_pool2d",
    "avg_pool2d",
    "max_pool2d",
    "conv2d",
    "interpolate",
    "pad",
    "flatten",
    "mean",
}


def _pair(v: int | tuple[int, ...]) -> tuple[int, int]:
    if isinstance(v, tuple):
        return (int(v[0]), int(v[1]))
    return (int(v), int(v))


def _window_op(
    span: _Span, kernel: int, stride: int, padding: int, dilation: int, ceil_mode: bool, name: str
) -> _Span:
    """Apply one convolution/pooling along one axis (PyTorch's output-size rule, ceil mode included)."""
    eff = dilation * (kernel - 1) + 1
    num = span.size + 2 * padding - eff
    if num < 0:
        raise GeometryError(f"{name}: input of {span.size} px is smaller than its kernel ({eff})")
    if ceil_mode:
        out = -(-num // stride) + 1
        if (out - 1) * stride >= span.size + padding:  # last window must start inside the input
            out -= 1
    else:
        out = num // stride + 1
    return replace(
        span,
        size=out,
        jump=span.jump * stride,
        left=span.left - padding * span.jump,
        extent=span.extent + (eff - 1) * span.jump,
    )


def _module_span(mod: nn.Module, span: _Span, axis: int, name: str) -> _Span:
    if isinstance(mod, nn.Conv2d):
        if isinstance(mod.padding, str):
            raise GeometryError(f"{name}: string padding '{mod.padding}' is not supported")
        return _window_op(
            span,
            _pair(mod.kernel_size)[axis],
            _pair(mod.stride)[axis],
            _pair(mod.padding)[axis],
            _pair(mod.dilation)[axis],
            False,
            name,
        )
    if isinstance(mod, nn.MaxPool2d):
        return _window_op(
            span,
            _pair(mod.kernel_size)[axis],
            _pair(mod.stride if mod.stride is not None else mod.kernel_size)[axis],
            _pair(mod.padding)[axis],
            _pair(mod.dilation)[axis],
            bool(mod.ceil_mode),
            name,
        )
    if isinstance(mod, nn.AvgPool2d):
        return _window_op(
            span,
            _pair(mod.kernel_size)[axis],
            _pair(mod.stride if mod.stride is not None else mod.kernel_size)[axis],
            _pair(mod.padding)[axis],
            1,
            bool(mod.ceil_mode),
            name,
        )
    if isinstance(mod, _POINTWISE_MODULES) or getattr(mod, "fcn_pointwise", False):
        return span
    if isinstance(mod, (nn.Linear, nn.LayerNorm)):
        # Per position only when they act on a channels-last tensor (ConvNeXt's Permute -> LayerNorm ->
        # Linear -> GELU -> Linear -> Permute); on a [B, C, H, W] tensor they would mix the W axis.
        if span.channels_last and (not isinstance(mod, nn.LayerNorm) or len(mod.normalized_shape) == 1):
            return span
        raise GeometryError(f"{name}: {type(mod).__name__} on a channels-first map mixes spatial positions")
    span_fn = getattr(mod, "fcn_span", None)
    if span_fn is not None:  # modules of our own that describe their spatial effect
        return span_fn(span, axis)
    raise GeometryError(
        f"{name}: layer {type(mod).__name__} has no known sliding-window geometry"
    )


def _merge(spans: list[_Span], name: str) -> _Span:
    if len(spans) == 1:
        return spans[0]
    jumps = {s.jump for s in spans}
    if len(jumps) != 1:
        raise GeometryError(f"{name}: inputs with different strides {sorted(jumps)} are combined")
    left = min(s.left for s in spans)
    right = max(s.left + s.extent for s in spans)
    return replace(spans[0], size=min(s.size for s in spans), left=left, extent=right - left)


class _Tracer(fx.Tracer):
    """torch.fx tracer that keeps modules describing their own geometry (``fcn_span``/``fcn_pointwise``) opaque."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        if hasattr(m, "fcn_span") or getattr(m, "fcn_pointwise", False):
            return True
        return super().is_leaf_module(m, module_qualified_name)


# Positional parameters after ``input`` of the functional pools (torch.nn.functional signatures).
_POOL_PARAMS = {
    "max_pool2d": ("kernel_size", "stride", "padding", "dilation", "ceil_mode"),
    "avg_pool2d": ("kernel_size", "stride", "padding", "ceil_mode"),
}


def _function_pool_span(node: fx.Node, fname: str, span: _Span, axis: int) -> _Span:
    """``F.max_pool2d`` / ``F.avg_pool2d`` called with constant arguments (Inception V3 calls them in forward)."""
    bound: dict[str, object] = dict(zip(_POOL_PARAMS[fname], node.args[1:]))
    bound.update({k: v for k, v in node.kwargs.items() if k in _POOL_PARAMS[fname]})
    kernel = bound["kernel_size"]
    stride = bound.get("stride") or kernel
    if any(isinstance(v, fx.Node) for v in (kernel, stride, bound.get("padding"), bound.get("dilation"))):
        raise GeometryError(f"{node.name}: '{fname}' with computed arguments has no static geometry")
    return _window_op(
        span,
        _pair(kernel)[axis],  # type: ignore[arg-type]
        _pair(stride)[axis],  # type: ignore[arg-type]
        _pair(bound.get("padding", 0))[axis],  # type: ignore[arg-type]
        _pair(bound.get("dilation", 1))[axis],  # type: ignore[arg-type]
        bool(bound.get("ceil_mode", False)),
        node.name,
    )


def _permute_span(node: fx.Node, span: _Span) -> _Span:
    """Track ``[B, C, H, W]`` <-> ``[B, H, W, C]`` permutes (other permutes leave the layout flag alone)."""
    dims = node.args[1:]
    if len(dims) == 1 and isinstance(dims[0], (list, tuple)):
        dims = tuple(dims[0])
    if tuple(dims) == (0, 2, 3, 1):
        return replace(span, channels_last=True)
    if tuple(dims) == (0, 3, 1, 2):
        return replace(span, channels_last=False)
    return span


def _trace_axis(module: nn.Module, size: int, axis: int) -> _Span:
    return _walk(module, _Span(size=size, jump=1, left=0, extent=1), axis)


def _walk(module: nn.Module, start: _Span, axis: int) -> _Span:
    """Propagate ``start`` (the span of ``module``'s single input) through ``module``'s fx graph.

    Modules of our own use this in ``fcn_span`` to describe blocks that torch.fx cannot trace.
    """
    graph = module.__dict__.get("_fcn_fx_graph")  # traced once per module: tracing costs milliseconds
    if graph is None:
        try:
            graph = _Tracer().trace(module)
        except Exception as exc:  # noqa: BLE001 - fx raises many types
            raise GeometryError(f"cannot trace {type(module).__name__} with torch.fx: {exc}") from exc
        module.__dict__["_fcn_fx_graph"] = graph
    spans: dict[fx.Node, _Span] = {}
    result: _Span | None = None
    for node in graph.nodes:
        if node.op == "placeholder":
            spans[node] = start
            continue
        inputs = [a for a in node.all_input_nodes if a in spans]
        if node.op == "output":
            result = _merge([spans[a] for a in inputs], "output")
            continue
        if not inputs:
            continue  # constants / attributes
        if node.op == "call_module":
            mod = module.get_submodule(str(node.target))
            spans[node] = _module_span(mod, _merge([spans[a] for a in inputs], str(node.target)), axis, str(node.target))
        elif node.op == "call_function" or node.op == "call_method":
            fname = getattr(node.target, "__name__", str(node.target))
            if fname in _POOL_PARAMS and node.op == "call_function":
                spans[node] = _function_pool_span(node, fname, spans[inputs[0]], axis)
            elif fname in _SPATIAL_FUNCTIONS:
                raise GeometryError(f"{node.name}: function '{fname}' changes the spatial layout")
            elif fname == "permute":  # torch.permute(x, dims) or x.permute(*dims)
                spans[node] = _permute_span(node, spans[inputs[0]])
            elif node.target is operator.getitem:
                spans[node] = spans[inputs[0]]
            else:
                spans[node] = _merge([spans[a] for a in inputs], node.name)
        else:
            spans[node] = _merge([spans[a] for a in inputs], node.name)
    if result is None:
        raise GeometryError("network has no output")
    return result


def trace_layers(module: nn.Module, size: int, axis: int = 0) -> LayerTrace:
    """Walk ``module``'s graph (torch.fx) for an input side of ``size`` pixels along ``axis``.

    Args:
        module: a network mapping ``[B, C, H, W]`` to ``[B, K, H', W']``.
        size: input side in pixels (``H`` for axis 0, ``W`` for axis 1).
        axis: 0 for rows, 1 for columns.

    Returns:
        the output side, stride and receptive field, from kernel, stride, padding, dilation and
        ceil_mode of every convolution and pooling layer.
    """
    span = _trace_axis(module, size, axis)
    return LayerTrace(output_size=span.size, stride=span.jump, rf_offset=span.left, receptive_field=span.extent)


def compute_geometry(module: nn.Module, window: int) -> Geometry:
    """Geometry of a dense network whose native input (training window) has side ``window``.

    The window of cell ``(0, 0)`` starts where the native input starts (``offset = 0``), since the
    conversion keeps every layer's padding: the native-size input yields exactly one cell. That is
    checked here, and a :class:`GeometryError` is raised when it does not hold.
    """
    t = trace_layers(module, window, 0)
    if t.output_size != 1:
        raise GeometryError(
            f"a {window}x{window} input gives a {t.output_size}-cell map, not 1: wrong input size?"
        )
    return Geometry(
        stride=t.stride,
        offset=0.0,
        window=window,
        receptive_field=t.receptive_field,
        rf_offset=t.rf_offset,
    )


def dense_output_size(module: nn.Module, height: int, width: int) -> tuple[int, int]:
    """Score-map size ``(H', W')`` that ``module`` produces for an ``height x width`` input."""
    return (trace_layers(module, height, 0).output_size, trace_layers(module, width, 1).output_size)


def cells_to_boxes(
    rows: torch.Tensor | np.ndarray,
    cols: torch.Tensor | np.ndarray,
    geometry: Geometry,
    scale: tuple[float, float] = (1.0, 1.0),
) -> torch.Tensor:
    """Boxes of score-map cells in original-image pixels.

    Args:
        rows: ``[N]`` cell row indices ``i``.
        cols: ``[N]`` cell column indices ``j``.
        geometry: the dense network's geometry.
        scale: ``(sx, sy)``: level size over original image size along x and y (a pyramid level is the
            original image resized by these factors).

    Returns:
        ``[N, 4]`` float32 boxes ``[x1, y1, x2, y2]`` in original-image pixels (continuous edges).
    """
    rows_t = torch.as_tensor(rows, dtype=torch.float32)
    cols_t = torch.as_tensor(cols, dtype=torch.float32)
    sx, sy = scale
    x1 = (geometry.offset + geometry.stride * cols_t) / sx
    y1 = (geometry.offset + geometry.stride * rows_t) / sy
    x2 = x1 + geometry.window / sx
    y2 = y1 + geometry.window / sy
    return torch.stack([x1, y1, x2, y2], dim=-1)


def boxes_to_cells(
    boxes: torch.Tensor | np.ndarray,
    geometry: Geometry,
    scale: tuple[float, float] = (1.0, 1.0),
) -> tuple[torch.Tensor, torch.Tensor]:
    """Inverse of :func:`cells_to_boxes`: the cell whose window is nearest to each box's top-left corner.

    Args:
        boxes: ``[N, 4]`` boxes ``[x1, y1, x2, y2]`` in original-image pixels.
        geometry: the dense network's geometry.
        scale: ``(sx, sy)`` as in :func:`cells_to_boxes`.

    Returns:
        ``(rows, cols)``, each ``[N]`` int64 (may be negative or past the map for boxes off the grid).
    """
    b = torch.as_tensor(boxes, dtype=torch.float64)
    sx, sy = scale
    cols = torch.round((b[:, 0] * sx - geometry.offset) / geometry.stride).to(torch.int64)
    rows = torch.round((b[:, 1] * sy - geometry.offset) / geometry.stride).to(torch.int64)
    return rows, cols

