"""What a classifier becomes as a dense network: layer table, converted head, geometry and pyramid cost.

:func:`inspect_model` (exported as ``fcndetect.inspect_model``) answers what a user otherwise settles by simulating a
forward pass: the ``in_features`` of each fully-connected layer at the native input, the convolution it became,
each layer's cumulative stride, receptive field and first-cell offset, and what the pyramid of a photo costs.

Conventions: 2-D values (kernel, stride, padding, dilation) are ``[h, w]`` lists; shapes are ``[C, H, W]``;
FLOPs count a multiply-add as two (convolutions and linear layers only: activations, normalisations and pools
are an order of magnitude cheaper and not counted).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .spans import Span, walk_spans

__all__ = [
    "dense_flops", "inspect_model", "format_report", "head_table", "inspect_config", "inspect_loaded", "layer_table",
    "pyramid_table",
]


@dataclass
class _Call:
    name: str
    module: nn.Module
    rows: Span
    cols: Span


def _walk(dense: nn.Module, height: int, width: int) -> list[_Call]:
    """Every leaf-module call of ``dense`` in execution order, with its output span along rows and columns."""
    rows: list[tuple[str, nn.Module, Span]] = []
    cols: list[Span] = []
    walk_spans(dense, Span(height, 1, 0, 1), 0, lambda n, m, s: rows.append((n, m, s)))
    walk_spans(dense, Span(width, 1, 0, 1), 1, lambda n, m, s: cols.append(s))
    return [_Call(n, m, r, c) for (n, m, r), c in zip(rows, cols)]


def _pair(v: Any) -> list[int] | None:
    if v is None:
        return None
    return [int(v[0]), int(v[1])] if isinstance(v, (tuple, list)) else [int(v), int(v)]


def _flops(call: _Call, out_channels: int | None = None) -> int:
    """FLOPs (2 per multiply-add) of one leaf-module call at the spans' output size."""
    m, cells = call.module, call.rows.size * call.cols.size
    if isinstance(m, nn.Conv2d):
        kh, kw = _pair(m.kernel_size) or (1, 1)  # a Conv2d always has a kernel size
        return 2 * cells * m.out_channels * (m.in_channels // m.groups) * kh * kw
    if isinstance(m, nn.Linear):  # channels-last linear layers (ConvNeXt blocks)
        return 2 * cells * m.in_features * m.out_features
    return 0


def dense_flops(dense: nn.Module, height: int, width: int) -> int:
    """FLOPs of one ``dense`` forward pass on a ``height x width`` input (convolutions and linear layers)."""
    return sum(_flops(c) for c in _walk(dense, height, width))


@torch.no_grad()
def _output_shapes(dense: nn.Module, size: int) -> dict[str, list[list[int]]]:
    """Output shapes ``[C, H, W]`` of every module call at a ``size x size`` input, per module name, in order."""
    shapes: dict[str, list[list[int]]] = {}
    names = {id(m): n for n, m in dense.named_modules()}
    hooks = []

    def hook(mod: nn.Module, _inp: Any, out: Any) -> None:
        if isinstance(out, torch.Tensor):
            shapes.setdefault(names[id(mod)], []).append(list(out.shape[1:]))

    for m in dense.modules():
        hooks.append(m.register_forward_hook(hook))
    try:
        param = next(dense.parameters(), None)
        x = torch.zeros(1, 3, size, size, device=param.device if param is not None else "cpu")
        dense(x)
    finally:
        for h in hooks:
            h.remove()
    return shapes


def layer_table(dense: nn.Module, input_size: int, names: dict[int, str] | None = None) -> list[dict[str, Any]]:
    """One row per leaf-module call of the dense network at its native ``input_size`` (one output cell).

    Keys: ``name``, ``type``, ``kernel_size``/``stride``/``padding``/``dilation`` (``[h, w]``, or ``None`` for
    layers without them), ``output_shape`` ``[C, H, W]``, ``cumulative_stride``, ``receptive_field`` and
    ``offset`` (left edge of the first cell's receptive field, in input pixels; negative with padding),
    ``params`` and ``mflops`` (per window). ``names`` (``id(module) -> name``) renames the modules shared with
    the original classifier; the layers the conversion made are called ``dense.<name>``.
    """
    shapes = _output_shapes(dense, input_size)
    seen: dict[str, int] = {}
    rows = []
    for call in _walk(dense, input_size, input_size):
        k = seen.get(call.name, 0)
        seen[call.name] = k + 1
        m = call.module
        shape = shapes.get(call.name, [[]])
        spatial = isinstance(m, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d))
        stride = getattr(m, "stride", None) if spatial else None
        rows.append({
            "name": names.get(id(m), f"dense.{call.name}") if names is not None else call.name,
            "type": type(m).__name__,
            "kernel_size": _pair(getattr(m, "kernel_size", None)) if spatial else None,
            "stride": _pair(stride if stride is not None else getattr(m, "kernel_size", None)) if spatial else None,
            "padding": _pair(getattr(m, "padding", 0)) if spatial else None,
            "dilation": _pair(getattr(m, "dilation", 1)) if isinstance(m, (nn.Conv2d, nn.MaxPool2d)) else None,
            "output_shape": shape[min(k, len(shape) - 1)],
            "cumulative_stride": call.rows.jump,
            "receptive_field": call.rows.extent,
            "offset": call.rows.left,
            "params": sum(p.numel() for p in m.parameters()) if k == 0 else 0,
            "mflops": round(_flops(call) / 1e6, 4),
        })
    return rows


@torch.no_grad()
def head_table(classifier: nn.Module, input_size: int) -> list[dict[str, Any]]:
    """Each fully-connected layer of ``classifier``'s head and the convolution it becomes.

    The first ``Linear`` reads the trunk's output at the native input, ``[C, h, w]`` (``[C, 1, 1]`` after a
    global pool): its ``in_features`` is ``C * h * w`` and it becomes ``Conv2d(C, out, (h, w))``; every later
    one becomes a 1x1 convolution. A box-regression head (MTCNN) is listed too, marked ``"regression"``.
    """
    from .convert.core import _split

    classifier.eval()
    split = _split(classifier)
    param = next(classifier.parameters(), None)
    probe = torch.zeros(1, 3, input_size, input_size, device=param.device if param is not None else "cpu")
    feat = split.body(probe)
    channels, h, w = (int(v) for v in feat.shape[1:])
    if split.conv_head is not None:
        h, w = (int(v) for v in nn.Sequential(*split.conv_head)(feat).shape[-2:])
    if split.pool is not None:
        h = w = 1
    names = {id(m): n for n, m in classifier.named_modules()}
    rows: list[dict[str, Any]] = []
    for part, layers in (("classification", split.head), ("regression", split.regressor or [])):
        first = part == "classification"
        for m in layers:
            if not isinstance(m, nn.Linear):
                continue
            in_shape = [channels, h, w] if first else [m.in_features, 1, 1]
            kernel = [h, w] if first else [1, 1]
            if first and m.in_features != channels * h * w:
                in_shape = [m.in_features, 1, 1]
            rows.append({
                "name": names.get(id(m), type(m).__name__), "part": part,
                "in_features": m.in_features, "out_features": m.out_features, "in_shape": in_shape,
                "conv": {"in_channels": in_shape[0], "out_channels": m.out_features, "kernel_size": kernel},
            })
            first = False
    return rows


def pyramid_table(dense: nn.Module, levels: list[Any], window_flops: int) -> dict[str, Any]:
    """Cost of a pyramid (``fcndetect.pyramid.Level`` list): per level its size, score-map size, windows and
    GFLOPs; the totals and the FLOP ratio against classifying every window as a crop."""
    rows = []
    for lv in levels:
        calls = _walk(dense, lv.height, lv.width)
        out = calls[-1]
        windows = out.rows.size * out.cols.size
        rows.append({"scale": round(lv.scale, 6), "size": [lv.height, lv.width],
                     "score_map": [out.rows.size, out.cols.size], "windows": windows,
                     "gflops": round(sum(_flops(c) for c in calls) / 1e9, 4)})
    total = sum(r["gflops"] for r in rows)
    windows = sum(r["windows"] for r in rows)
    crops = windows * window_flops / 1e9
    return {"levels": rows, "windows": windows, "gflops": round(total, 4), "crops_gflops": round(crops, 4),
            "flop_ratio": round(crops / total, 3) if total else None}


def inspect_model(model: nn.Module, input_size: int, *, image_size: tuple[int, int] | None = (640, 480),
            min_size: float | None = None, scale_factor: float = 2 ** (-1 / 3), name: str | None = None
            ) -> dict[str, Any]:
    """Inspect a classifier (any ``nn.Module`` mapping ``[B, 3, N, N]`` to ``[B, K]``) as a dense network.

    Args:
        model: the classifier (converted here with :func:`fcndetect.make_fully_convolutional`), or a
            ``DenseModel`` already converted (then without ``head``).
        input_size: its native input side ``N``.
        image_size: ``(width, height)`` of the photo whose pyramid is costed (``None``: no pyramid).
        min_size, scale_factor: the pyramid's smallest object (default: the window) and scale step.

    Returns:
        ``{"model", "input_size", "geometry": {"window", "stride", "offset", "receptive_field"}, "layers":
        [...] (:func:`layer_table`), "head": [...] (:func:`head_table`), "params", "mflops_per_window",
        "pyramid": {...} (:func:`pyramid_table`)}``.

    Raises:
        fcndetect.convert.ConversionError: the classifier cannot be made fully convolutional (names why).
    """
    from .convert import DenseModel, make_fully_convolutional
    from .pyramid import pyramid_levels

    if isinstance(model, DenseModel):
        dense, head, names = model, [], None
    else:
        dense = make_fully_convolutional(model, input_size)
        head = head_table(model, input_size)
        names = {id(m): n for n, m in model.named_modules()}
    return _document(dense, head, input_size, name or type(model).__name__, image_size,
                     (lambda w, h: pyramid_levels((w, h), input_size, min_size or input_size, None, scale_factor)),
                     names)


def _document(dense: Any, head: list[dict[str, Any]], input_size: int, name: str,
              image_size: tuple[int, int] | None, levels: Any,
              original_names: dict[int, str] | None = None) -> dict[str, Any]:
    g = dense.geometry
    layers = layer_table(dense, input_size, original_names)
    converted = iter(h["name"] for h in head)
    for row in layers:  # the convolutions the head's Linear layers became, named after them
        if row["name"].startswith("dense.") and row["type"] == "Conv2d":
            row["name"] = f"{next(converted, row['name'][6:])} (conv)"
    window_flops = dense_flops(dense, input_size, input_size)
    doc = {
        "model": name, "input_size": input_size,
        "geometry": {"window": g.window, "stride": g.stride, "offset": g.offset, "receptive_field": g.receptive_field},
        "layers": layers, "head": head,
        "params": sum(p.numel() for p in dense.parameters()), "mflops_per_window": round(window_flops / 1e6, 4),
    }
    if image_size is not None:
        width, height = image_size
        doc["image_size"] = [width, height]
        doc["pyramid"] = pyramid_table(dense, levels(width, height), window_flops)
    return doc


def inspect_loaded(loaded: Any, image_size: tuple[int, int] | None, levels: Any) -> dict[str, Any]:
    """:func:`inspect_model` for a ``fcndetect.models.LoadedModel`` (its name, window and dense network as loaded)."""
    head = head_table(loaded.classifier, loaded.window) if not _already_dense(loaded) else []
    names = {id(m): n for n, m in loaded.classifier.named_modules()}
    return _document(loaded.dense, head, loaded.window, loaded.spec.name, image_size, levels, names)


def _already_dense(loaded: Any) -> bool:
    try:
        from .convert.core import _split

        _split(loaded.classifier)
        return False
    except Exception:  # noqa: BLE001 - a fully convolutional classifier (P-Net) has no head to split
        return True


def _cell(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, list):
        return "x".join(str(x) for x in v)
    return str(v)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths)))
            for r in [header, *rows]]


def format_report(doc: dict[str, Any]) -> str:
    """The aligned text form of an :func:`inspect_model` document (a cascade's ``stages`` one after another)."""
    if "stages" in doc:
        return "\n\n".join(format_report(s) for s in doc["stages"])
    g = doc["geometry"]
    out = [f"{doc['model']}: native input {doc['input_size']} px, window {g['window']}, stride {g['stride']}, "
           f"offset {g['offset']:g}, receptive field {g['receptive_field']}, {doc['params']:,} parameters, "
           f"{doc['mflops_per_window']:g} MFLOPs per window", ""]
    out += _table(["layer", "type", "kernel", "stride", "pad", "dil", "output", "cum.stride", "rf", "offset",
                   "params", "MFLOPs"],
                  [[r["name"], r["type"], _cell(r["kernel_size"]), _cell(r["stride"]), _cell(r["padding"]),
                    _cell(r["dilation"]), _cell(r["output_shape"]), str(r["cumulative_stride"]),
                    str(r["receptive_field"]), str(r["offset"]), f"{r['params']:,}", f"{r['mflops']:g}"]
                   for r in doc["layers"]])
    if doc["head"]:
        out += ["", "head (fully-connected layers of the classifier -> convolutions of the dense network):"]
        for h in doc["head"]:
            c = h["conv"]
            out.append(f"  {h['name']}{' (regression)' if h['part'] == 'regression' else ''}: Linear("
                       f"{h['in_features']} -> {h['out_features']}) over a {_cell(h['in_shape'])} map -> "
                       f"Conv2d({c['in_channels']}, {c['out_channels']}, {_cell(c['kernel_size'])})")
    if "pyramid" in doc:
        p = doc["pyramid"]
        w, h = doc["image_size"]
        out += ["", f"pyramid for a {w}x{h} image:"]
        out += _table(["scale", "level", "score map", "windows", "GFLOPs"],
                      [[f"{r['scale']:.4g}", _cell(r["size"][::-1]), _cell(r["score_map"][::-1]), f"{r['windows']:,}",
                        f"{r['gflops']:.3f}"] for r in p["levels"]])
        ratio = f"{p['flop_ratio']:.1f}x" if p["flop_ratio"] is not None else "-"
        out.append(f"total: {len(p['levels'])} levels, {p['windows']:,} windows, {p['gflops']:.2f} GFLOPs dense "
                   f"against {p['crops_gflops']:.2f} crop by crop ({ratio} fewer)")
    return "\n".join(out)


def inspect_config(cfg: Any, image_size: tuple[int, int] | None = (640, 480)) -> dict[str, Any]:
    """:func:`inspect_model` for a detector configuration (:class:`fcndetect.DetectorConfig`): its model, or each
    stage of a cascade (``{"model": chain, "stages": [...]}``; only the first stage, which runs densely, gets
    a pyramid), loaded with the configuration's weights and preprocessing."""
    from .models import load_model
    from .pyramid import pyramid_levels

    def levels(window: int) -> Any:
        return lambda w, h: pyramid_levels((w, h), window, cfg.min_size, cfg.max_size, cfg.scale_factor)

    stages = [load_model(n, cfg.device) for n in cfg.stages] + [load_model(cfg.model, cfg.device, **cfg.model_options())]
    docs = [inspect_loaded(m, image_size if k == 0 else None, levels(m.window)) for k, m in enumerate(stages)]
    return docs[0] if len(docs) == 1 else {"model": cfg.chain, "stages": docs}
