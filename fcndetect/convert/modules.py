"""Helper modules the conversion puts into dense networks: each declares its sliding-window geometry.

* :class:`LocalSqueeze` stands in for the global pool of a squeeze-and-excitation block;
* :class:`ChannelAffine` is GoogLeNet's / Inception V3's ``transform_input``;
* :class:`BranchedBlock` wraps a block that torch.fx cannot trace (ShuffleNet V2 units).

They describe their spatial effect to :mod:`fcndetect.geometry` through the ``fcn_span(span, axis)`` hook
or ``fcn_pointwise = True``, the same way a user's own layer can.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn

from ..spans import Span, merge_spans, walk_spans, window_span

__all__ = ["BranchedBlock", "ChannelAffine", "LocalSqueeze"]


def _box_mean(x: torch.Tensor, dim: int, radius: int) -> torch.Tensor:
    """Mean of ``x`` over ``[i - radius, i + radius]`` (clipped to the axis) at every index ``i`` of ``dim``.

    Same shape as ``x``; the divisor is the number of in-range elements (``count_include_pad=False``).
    Prefix sums make it ``O(n)`` whatever the radius (an ``AvgPool2d`` of side ``2m - 1`` costs ``O(n m)``).
    """
    n = x.shape[dim]
    if radius >= n - 1:  # every window covers the whole axis (the native size): a plain mean
        return x.mean(dim, keepdim=True).expand_as(x)
    acc = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
    prefix = torch.cumsum(acc, dim)
    prefix = torch.cat([torch.zeros_like(prefix.narrow(dim, 0, 1)), prefix], dim)  # n + 1 entries
    idx = torch.arange(n, device=x.device)
    lo = (idx - radius).clamp(min=0)
    hi = (idx + radius + 1).clamp(max=n)
    shape = [1] * x.dim()
    shape[dim] = n
    count = (hi - lo).to(acc.dtype).view(shape)
    return ((prefix.index_select(dim, hi) - prefix.index_select(dim, lo)) / count).to(x.dtype)


class LocalSqueeze(nn.Module):
    """Local stand-in for the global average pool of a squeeze-and-excitation block.

    ``[B, C, H, W] -> [B, C, H, W]``: the mean over a ``(2 m_h - 1) x (2 m_w - 1)`` window centred on each
    position, clipped at the borders and divided by the number of in-range positions, i.e.
    ``AvgPool2d(2m - 1, stride=1, padding=m - 1, count_include_pad=False)`` (computed with prefix sums).
    ``(m_h, m_w)`` is the block's feature-map size at the classifier's native input size, so at that size
    every position averages the whole map and the block is exactly the original one (whose
    ``[B, C, 1, 1]`` result broadcasts to the same values). On larger inputs each position pools a
    window about as large as its classifier window at that depth: an approximation of classifying
    crop by crop (see the module docstring for measured differences).

    Attributes:
        size: ``(m_h, m_w)``, the feature-map size at the native input size.
    """

    def __init__(self, size: tuple[int, int]) -> None:
        super().__init__()
        self.size = (int(size[0]), int(size[1]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C, H, W]`` -> ``[B, C, H, W]`` local means."""
        return _box_mean(_box_mean(x, 2, self.size[0] - 1), 3, self.size[1] - 1)

    def fcn_span(self, span: Span, axis: int) -> Span:
        """Geometry hook (:mod:`fcndetect.geometry`): same size and stride, receptive field grown by the window."""
        m = self.size[axis]
        return window_span(span, 2 * m - 1, 1, m - 1, 1, False, "LocalSqueeze")

    def extra_repr(self) -> str:
        return f"size={self.size}, kernel={tuple(2 * m - 1 for m in self.size)}"


class ChannelAffine(nn.Module):
    """``[B, C, H, W] -> [B, C, H, W]``: ``x * scale[c] + shift[c]`` per channel (a per-position op).

    Stands in for GoogLeNet's and Inception V3's ``transform_input`` (which re-normalises ImageNet
    inputs to the ``[-1, 1]`` range the original weights were trained with).
    """

    fcn_pointwise = True

    def __init__(self, scale: list[float], shift: list[float]) -> None:
        super().__init__()
        self.scale: torch.Tensor
        self.shift: torch.Tensor
        self.register_buffer("scale", torch.tensor(scale, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("shift", torch.tensor(shift, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C, H, W]`` -> ``[B, C, H, W]``."""
        return x * self.scale + self.shift


class BranchedBlock(nn.Module):
    """Wraps a block that torch.fx cannot trace but whose output combines parallel branches of its input.

    ``forward`` is the wrapped block's own (``[B, C, H, W] -> [B, C', H', W']``); for the geometry walk
    the block is opaque and its span is the merge of the spans of the named branches (a missing or
    empty branch is the identity). Used for ShuffleNet V2 units (``x.chunk`` / ``channel_shuffle``
    unpack ``x.size()``, which fx cannot trace).

    Attributes:
        block: the wrapped module (shared, not copied).
        branches: names of ``block``'s submodules that each read the block's input.
    """

    def __init__(self, block: nn.Module, branches: list[str]) -> None:
        super().__init__()
        self.block = block
        self.branches = list(branches)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C, H, W]`` -> the wrapped block's output."""
        return self.block(x)

    def fcn_span(self, span: Span, axis: int) -> Span:
        """Geometry hook: merge of the branch spans (all branches must have the same stride)."""
        spans = [walk_spans(getattr(self.block, b), span, axis) for b in self.branches]
        return merge_spans(spans, type(self.block).__name__)


def _rebuilt(module: nn.Module, replace: Callable[[nn.Module], nn.Module | None]) -> nn.Module:
    """``module`` with every submodule ``m`` for which ``replace(m)`` is not ``None`` swapped for that result.

    Copy-on-write: containers on the path to a replaced module are shallow copies (their parameters,
    buffers and other children are shared), so the original model is left untouched and no weights
    are duplicated. Returns ``module`` itself when nothing is replaced.
    """
    new = replace(module)
    if new is not None:
        return new
    changed = {name: _rebuilt(child, replace) for name, child in module.named_children()}
    changed = {name: m for name, m in changed.items() if m is not module._modules[name]}
    if not changed:
        return module
    clone = copy.copy(module)
    clone._modules = {**module._modules, **changed}
    return clone
