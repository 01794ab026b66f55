"""The torch.fx walker that computes a dense network's :class:`~fcndetect.geometry.Geometry` from its layers.

A dense network maps an input of ``H x W`` pixels to a score map of ``H' x W'`` cells. Cell ``(i, j)``
(row ``i``, column ``j``) corresponds to the classifier's training window (its *native* input size) placed
at ``(offset + stride * j, offset + stride * i)`` in the input: the crop that, classified on its own,
gives (up to border effects of padding and ceil-mode pooling) the score in that cell.

The *receptive field* is reported separately: it is every input pixel that can influence a cell, and it
can be larger than the window (O-Net: 49 px for a 48 px window, because its ceil-mode pools see one
padded column at the native size) or smaller than it (VGG-16: 212 px of context... plus padding).

The geometry is read from the network's torch.fx graph, one axis at a time, and must be the same along
both axes (a net with, say, ``stride=(1, 2)`` is refused). Only known operations are accepted:
convolutions and pools, per-position modules/functions (activations, BatchNorm, dropout, arithmetic,
concatenation or softmax over channels, channels-last permutes). Anything else raises
:class:`GeometryError` naming it. A layer of your own declares its geometry with a method
``fcn_span(self, span: Span, axis: int) -> Span`` (``axis`` 0 = rows, 1 = columns) that returns the
span of its output, built with :func:`window_span` (a convolution-like window), :func:`walk_spans` (its
submodules) and :func:`merge_spans` (parallel branches), or with the class attribute
``fcn_pointwise = True`` if it acts on each position independently.

All boxes are ``[x1, y1, x2, y2]`` floats with continuous edges: ``[0, 0, W, H]`` is the whole image.
"""


from __future__ import annotations

import operator
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import fx, nn

from .geometry import Geometry, GeometryError

__all__ = [
    "LayerTrace", "Span", "SPAN_HOOK_HELP", "trace_layers", "compute_geometry", "dense_output_size",
    "merge_spans", "walk_spans", "window_span",
]


@dataclass(frozen=True)
class Span:
    """A tensor's geometry along one axis, relative to the network input (what ``fcn_span`` maps).

    Attributes:
        size: the tensor's side along the axis.
        jump: input pixels between neighbouring positions (the stride so far).
        left: left edge, in input pixels, of the receptive field of position 0 (negative with padding).
        extent: receptive field size, in input pixels.
        channels_last: the tensor is ``[B, H, W, C]`` (ConvNeXt blocks permute around ``Linear``).
    """

    size: int
    jump: int
    left: int
    extent: int
    channels_last: bool = False


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


# What an unknown operation is told to do (also the documented extension point for user layers).
SPAN_HOOK_HELP = (
    "declare its geometry: wrap it in an nn.Module with a method fcn_span(self, span, axis) that returns the "
    "fcndetect.spans.Span of its output (see window_span, walk_spans and merge_spans), or the class "
    "attribute fcn_pointwise = True if it acts on each position independently"
)

# Modules that act on each position independently (or mix only channels) of a [B, C, H, W] map.
_POINTWISE_MODULES: tuple[type[nn.Module], ...] = (
    nn.ReLU, nn.ReLU6, nn.PReLU, nn.LeakyReLU, nn.ELU, nn.CELU, nn.SELU, nn.GELU, nn.SiLU, nn.Mish,
    nn.Hardswish, nn.Hardsigmoid, nn.Hardtanh, nn.Sigmoid, nn.LogSigmoid, nn.Tanh, nn.Softplus, nn.Threshold,
    nn.BatchNorm2d, nn.LocalResponseNorm, nn.Identity, nn.ChannelShuffle, nn.Softmax2d,
    nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.AlphaDropout, nn.FeatureAlphaDropout,
)
# Of those, the ones that index the channel axis as dim 1 (wrong on a channels-last tensor).
_CHANNELS_FIRST_MODULES = (nn.PReLU, nn.BatchNorm2d, nn.LocalResponseNorm, nn.ChannelShuffle, nn.Softmax2d)

# Functions and tensor methods that act on each position independently: the output span is the merge of
# the input spans (broadcast constants are checked separately).
_POINTWISE_FUNCTIONS: frozenset[object] = frozenset({
    operator.add, operator.sub, operator.mul, operator.truediv, operator.neg, operator.iadd, operator.imul,
    torch.add, torch.sub, torch.mul, torch.div, torch.neg, torch.relu, torch.sigmoid, torch.tanh, torch.clamp,
    F.relu, F.relu6, F.elu, F.selu, F.celu, F.gelu, F.silu, F.mish, F.hardswish, F.hardsigmoid, F.hardtanh,
    F.leaky_relu, F.prelu, F.sigmoid, F.tanh, F.dropout, F.dropout1d, F.dropout2d, F.alpha_dropout,
    F.batch_norm, torch.channel_shuffle,
})


def _is_pointwise_function(target: object) -> bool:
    """Whether a called function acts on each position independently: :data:`_POINTWISE_FUNCTIONS`, or
    torchvision's ``stochastic_depth`` (identity in eval), looked up only where torchvision is loaded
    already (a network that calls it imported it), so computing a geometry never imports torchvision."""
    if target in _POINTWISE_FUNCTIONS:
        return True
    module = sys.modules.get("torchvision.ops.stochastic_depth")
    return module is not None and target is getattr(module, "stochastic_depth", None)
_POINTWISE_METHODS = frozenset({
    "add", "add_", "sub", "sub_", "mul", "mul_", "div", "div_", "neg", "relu", "relu_", "sigmoid", "sigmoid_",
    "tanh", "tanh_", "clamp", "clamp_", "clamp_min", "clamp_max", "contiguous", "clone", "float", "half",
    "to", "type_as", "detach", "size", "dim",
})
# Ops that are per-position only along the channel dimension: (positional index of ``dim``, its default).
_CHANNEL_DIM_FUNCTIONS: dict[object, tuple[int, int | None]] = {
    torch.cat: (1, 0), torch.concat: (1, 0), torch.concatenate: (1, 0), torch.chunk: (2, 0), torch.split: (2, 0),
    torch.softmax: (1, None), torch.log_softmax: (1, None), F.softmax: (1, None), F.log_softmax: (1, None),
}
_CHANNEL_DIM_METHODS: dict[str, tuple[int, int | None]] = {
    "chunk": (2, 0), "split": (2, 0), "softmax": (1, None), "log_softmax": (1, None),
}
# Functional pools (Inception V3 calls them in forward): positional parameters after ``input``.
_POOL_PARAMS: dict[object, tuple[str, ...]] = {
    F.max_pool2d: ("kernel_size", "stride", "padding", "dilation", "ceil_mode"),
    torch.max_pool2d: ("kernel_size", "stride", "padding", "dilation", "ceil_mode"),
    F.avg_pool2d: ("kernel_size", "stride", "padding", "ceil_mode"),
}
_PERMUTE_TO_LAST, _PERMUTE_TO_FIRST = (0, 2, 3, 1), (0, 3, 1, 2)


def _pair(v: int | tuple[int, ...]) -> tuple[int, int]:
    if isinstance(v, (tuple, list)):
        return (int(v[0]), int(v[1]))
    return (int(v), int(v))


def window_span(
    span: Span, kernel: int, stride: int, padding: int, dilation: int, ceil_mode: bool, name: str
) -> Span:
    """``span`` after one convolution/pooling along one axis (PyTorch's output-size rule, ceil mode included)."""
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
    left, extent = span.left - padding * span.jump, span.extent + (eff - 1) * span.jump
    return replace(span, size=out, jump=span.jump * stride, left=left, extent=extent)


def _module_span(mod: nn.Module, span: Span, axis: int, name: str) -> Span:
    """``span`` after the leaf module ``mod``; :class:`GeometryError` for a module of unknown geometry."""
    if isinstance(mod, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
        if isinstance(mod.padding, str):
            raise GeometryError(f"{name}: string padding '{mod.padding}' is not supported")
        if getattr(mod, "padding_mode", "zeros") == "circular":  # wraps the opposite border into each cell
            raise GeometryError(f"{name}: circular padding mixes opposite image borders; {SPAN_HOOK_HELP}")
        stride = mod.stride if mod.stride is not None else mod.kernel_size  # pools: stride None = kernel
        dilation = 1 if isinstance(mod, nn.AvgPool2d) else _pair(mod.dilation)[axis]
        ceil_mode = bool(getattr(mod, "ceil_mode", False))
        return window_span(
            span, _pair(mod.kernel_size)[axis], _pair(stride)[axis], _pair(mod.padding)[axis], dilation,
            ceil_mode, name,
        )
    if isinstance(mod, (nn.Softmax, nn.LogSoftmax)):
        return _channel_dim_span(mod.dim, span, f"{name} ({type(mod).__name__})")
    if isinstance(mod, _POINTWISE_MODULES) or getattr(mod, "fcn_pointwise", False):
        if span.channels_last and isinstance(mod, _CHANNELS_FIRST_MODULES):
            raise GeometryError(f"{name}: {type(mod).__name__} on a channels-last map mixes spatial positions")
        return span
    if isinstance(mod, (nn.Linear, nn.LayerNorm)):
        # Per position only when they act on a channels-last tensor (ConvNeXt's Permute -> LayerNorm ->
        # Linear -> GELU -> Linear -> Permute); on a [B, C, H, W] tensor they would mix the W axis.
        if span.channels_last and (not isinstance(mod, nn.LayerNorm) or len(mod.normalized_shape) == 1):
            return span
        raise GeometryError(f"{name}: {type(mod).__name__} on a channels-first map mixes spatial positions")
    span_fn = getattr(mod, "fcn_span", None)
    if span_fn is not None:  # modules that describe their own spatial effect
        return span_fn(span, axis)
    raise GeometryError(
        f"{name}: layer {type(mod).__name__} has no known sliding-window geometry; {SPAN_HOOK_HELP}"
    )


def merge_spans(spans: list[Span], name: str) -> Span:
    """The span of an output that combines inputs position by position (residual sums, channel concats).

    All inputs must have the same stride; the receptive field is the union of theirs.
    """
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


def _argument(node: fx.Node, position: int, name: str, default: object) -> object:
    """Argument ``name`` of a call node (``position`` counts ``self``/``input`` as 0)."""
    if len(node.args) > position:
        return node.args[position]
    return node.kwargs.get(name, default)


def _channel_dim_span(dim: object, span: Span, name: str) -> Span:
    """``span`` after an op along dimension ``dim`` of a 4-D map: per position only for the channel dim.

    ``dim=None`` is the implicit softmax dimension, 1 for a 4-D tensor.
    """
    channel = (3, -1) if span.channels_last else (1, -3)
    if dim is None and not span.channels_last:
        return span
    if dim not in channel:
        raise GeometryError(
            f"{name} works along dim {dim}, not the channel dim {channel[0]}: it mixes spatial positions; "
            f"{SPAN_HOOK_HELP}"
        )
    return span


def _function_pool_span(node: fx.Node, span: Span, axis: int) -> Span:
    """``F.max_pool2d`` / ``F.avg_pool2d`` called with constant arguments (Inception V3 calls them in forward)."""
    params = _POOL_PARAMS[node.target]
    bound: dict[str, object] = dict(zip(params, node.args[1:]))
    bound.update({k: v for k, v in node.kwargs.items() if k in params})
    kernel = bound["kernel_size"]
    stride = bound.get("stride") or kernel
    if any(isinstance(v, fx.Node) for v in (kernel, stride, bound.get("padding"), bound.get("dilation"))):
        raise GeometryError(f"{node.name}: '{getattr(node.target, '__name__', node.target)}' with computed arguments "
                            "has no static geometry")
    values = (kernel, stride, bound.get("padding", 0), bound.get("dilation", 1))
    k, s, p, d = (_pair(v)[axis] for v in values)  # type: ignore[arg-type]
    return window_span(span, k, s, p, d, bool(bound.get("ceil_mode", False)), node.name)


def _permute_span(node: fx.Node, span: Span) -> Span:
    """Track ``[B, C, H, W]`` <-> ``[B, H, W, C]`` permutes; any other permutation is refused."""
    args: tuple[object, ...] = node.args[1:] if node.op == "call_method" else (_argument(node, 1, "dims", ()),)
    first = args[0] if len(args) == 1 else None
    dims = tuple(first) if isinstance(first, (list, tuple)) else tuple(args)
    if dims == (_PERMUTE_TO_FIRST if span.channels_last else _PERMUTE_TO_LAST):
        return replace(span, channels_last=not span.channels_last)
    if dims == (0, 1, 2, 3):
        return span
    raise GeometryError(f"{node.name}: permute{dims} moves a spatial axis; {SPAN_HOOK_HELP}")


def _getitem_span(node: fx.Node, span: Span) -> Span:
    """``x[index]``: an element of a tuple (chunks, branch outputs) or a slice that keeps both spatial axes whole."""
    index = node.args[1]
    if isinstance(index, (int, slice)):
        return span  # elements of a tuple (chunks, branches), or a selection along the batch dim
    spatial = (1, 2) if span.channels_last else (2, 3)
    if isinstance(index, tuple) and Ellipsis not in index and None not in index:
        if all(index[d] == slice(None) for d in spatial if d < len(index)):
            return span
    raise GeometryError(f"{node.name}: indexing with {index!r} may crop or reorder a spatial axis; {SPAN_HOOK_HELP}")


def _layer_norm_span(node: fx.Node, span: Span) -> Span:
    """``F.layer_norm`` is per position only over the channels of a channels-last map (ConvNeXt's LayerNorm2d)."""
    shape = _argument(node, 1, "normalized_shape", ())
    if span.channels_last and isinstance(shape, (tuple, list)) and len(shape) == 1:
        return span
    raise GeometryError(f"{node.name}: layer_norm over {shape} mixes spatial positions; {SPAN_HOOK_HELP}")


def _check_constants(node: fx.Node, root: nn.Module, span: Span) -> None:
    """Refuse a pointwise op whose module-attribute operand varies over positions (e.g. a position embedding)."""
    spatial = (1, 2) if span.channels_last else (2, 3)
    for arg in node.all_input_nodes:
        if arg.op != "get_attr":
            continue
        value = root
        for part in str(arg.target).split("."):
            value = getattr(value, part)
        if isinstance(value, torch.Tensor) and value.dim() > 1:
            shape = (1,) * (4 - value.dim()) + tuple(value.shape[-4:])
            if any(shape[d] != 1 for d in spatial):
                raise GeometryError(
                    f"{node.name}: operand {arg.target} of shape {tuple(value.shape)} differs between positions"
                )


def _op_span(node: fx.Node, span: Span, axis: int, root: nn.Module) -> Span:
    """``span`` (the merged span of the node's map inputs) after a function or tensor-method call."""
    target = node.target
    is_function = node.op == "call_function"
    if is_function and target in _POOL_PARAMS:
        return _function_pool_span(node, span, axis)
    if (is_function and _is_pointwise_function(target)) or (not is_function and target in _POINTWISE_METHODS):
        _check_constants(node, root, span)
        return span
    rule = _CHANNEL_DIM_FUNCTIONS.get(target) if is_function else _CHANNEL_DIM_METHODS.get(str(target))
    if rule is not None:
        return _channel_dim_span(_argument(node, rule[0], "dim", rule[1]), span, node.name)
    if target in (torch.permute, "permute"):
        return _permute_span(node, span)
    if target is operator.getitem:
        return _getitem_span(node, span)
    if target is F.layer_norm:
        return _layer_norm_span(node, span)
    if target is getattr:  # tensor metadata (x.shape): carries no map
        return span
    name = getattr(target, "__name__", str(target))
    raise GeometryError(
        f"{node.name}: '{name}' is not a known per-position operation, so its sliding-window geometry is "
        f"unknown; {SPAN_HOOK_HELP}"
    )


def _trace_axis(module: nn.Module, size: int, axis: int) -> Span:
    return walk_spans(module, Span(size=size, jump=1, left=0, extent=1), axis)


def _fx_graph(module: nn.Module) -> fx.Graph:
    """``module``'s torch.fx graph, traced once and cached on the module (tracing costs milliseconds)."""
    graph = module.__dict__.get("_fcn_fx_graph")
    if graph is None:
        try:
            graph = _Tracer().trace(module)
        except Exception as exc:  # noqa: BLE001 - fx raises many types
            raise GeometryError(f"cannot trace {type(module).__name__} with torch.fx: {exc}") from exc
        module.__dict__["_fcn_fx_graph"] = graph
    return graph


def walk_spans(module: nn.Module, start: Span, axis: int,
               on_module: Callable[[str, nn.Module, Span], None] | None = None) -> Span:
    """Propagate ``start`` (the span of ``module``'s single input) through ``module``'s fx graph.

    Every operation must be known: convolutions and pools (kernel, stride, padding, dilation, ceil mode),
    an allow-list of per-position modules, functions and methods (activations, BatchNorm, dropout,
    arithmetic, concatenation/softmax over channels, channels-last permutes), or a module with an
    ``fcn_span(span, axis)`` hook, which may call this function on its submodules (``BranchedBlock``).
    Anything else raises :class:`GeometryError` naming it. ``on_module(name, submodule, output span)`` is
    called for every leaf module in execution order (``fcndetect.inspect_model``'s layer table).
    """
    graph = _fx_graph(module)
    spans: dict[fx.Node, Span] = {}
    result: Span | None = None
    for node in graph.nodes:
        if node.op == "placeholder":
            spans[node] = start
            continue
        inputs = [spans[a] for a in node.all_input_nodes if a in spans]
        if node.op == "output":
            result = merge_spans(inputs, "output")
        elif not inputs:
            continue  # constants / attributes
        elif node.op == "call_module":
            name = str(node.target)
            sub = module.get_submodule(name)
            spans[node] = _module_span(sub, merge_spans(inputs, name), axis, name)
            if on_module is not None:
                on_module(name, sub, spans[node])
        else:
            spans[node] = _op_span(node, merge_spans(inputs, node.name), axis, module)
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
    checked here, as is that rows and columns have the same stride and receptive field (kernel, stride,
    padding or dilation that differ between the axes would need a per-axis geometry, which fcndetect
    does not map): otherwise a :class:`GeometryError` is raised.
    """
    rows, cols = trace_layers(module, window, 0), trace_layers(module, window, 1)
    if (rows.output_size, cols.output_size) != (1, 1):
        raise GeometryError(
            f"a {window}x{window} input gives a {rows.output_size}x{cols.output_size} map, not 1x1: "
            "wrong input size?"
        )
    if rows != cols:
        raise GeometryError(
            f"rows and columns have different sliding-window geometry: stride_y={rows.stride}, "
            f"stride_x={cols.stride}, receptive field {rows.receptive_field} x {cols.receptive_field} px, "
            f"rf_offset {rows.rf_offset} / {cols.rf_offset}; only nets with the same kernel, stride, padding "
            "and dilation along both axes are supported"
        )
    return Geometry(rows.stride, 0.0, window, rows.receptive_field, rows.rf_offset)


def dense_output_size(module: nn.Module, height: int, width: int) -> tuple[int, int]:
    """Score-map size ``(H', W')`` that ``module`` produces for an ``height x width`` input (a module with an
    ``output_size(height, width)`` method, such as an exported network, answers itself)."""
    output_size = getattr(module, "output_size", None)
    if callable(output_size):
        h, w = output_size(height, width)
        return int(h), int(w)
    return (trace_layers(module, height, 0).output_size, trace_layers(module, width, 1).output_size)
