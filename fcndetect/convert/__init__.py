"""Make a classifier fully convolutional: its FC head rewritten as convolutions (OverFeat / FCN / DDFD).

* :mod:`.core`: :func:`make_fully_convolutional`, :class:`DenseModel`, :class:`Split`, the adapter registry
  (:func:`register_adapter`) and the head conversion;
* :mod:`.adapters`: the built-in per-family adapters (Sequential, MTCNN, torchvision), with the table of
  what is exact for each family, and :data:`TORCHVISION_ARCHS` / :data:`UNSUPPORTED_ARCHS`;
* :mod:`.modules`: the helper modules a conversion inserts (:class:`LocalSqueeze`, :class:`ChannelAffine`,
  :class:`BranchedBlock`).
"""

from __future__ import annotations

from .adapters import TORCHVISION_ARCHS, UNSUPPORTED_ARCHS
from .core import ConversionError, DenseModel, Split, make_fully_convolutional, register_adapter
from .modules import BranchedBlock, ChannelAffine, LocalSqueeze

__all__ = [
    "TORCHVISION_ARCHS",
    "UNSUPPORTED_ARCHS",
    "BranchedBlock",
    "ChannelAffine",
    "ConversionError",
    "DenseModel",
    "LocalSqueeze",
    "Split",
    "make_fully_convolutional",
    "register_adapter",
]
