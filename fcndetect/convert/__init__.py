"""Make a classifier fully convolutional: its FC head rewritten as convolutions (OverFeat / FCN / DDFD).

* :mod:`.core`: :func:`make_fully_convolutional`, :class:`DenseModel`, :class:`Split`, the adapter registry
  (:func:`register_adapter`) and the head conversion;
* :mod:`.adapters`: the built-in adapters of Sequential classifiers and MTCNN's nets;
* :mod:`.torchvision_adapters`: those of the torchvision families (registered on first need: it imports
  torchvision's models), with the table of what is exact for each family, and :data:`TORCHVISION_ARCHS` /
  :data:`UNSUPPORTED_ARCHS` (read from torchvision; imported on first use of either name);
* :mod:`.modules`: the helper modules a conversion inserts (:class:`LocalSqueeze`, :class:`ChannelAffine`,
  :class:`BranchedBlock`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import adapters as _adapters  # noqa: F401  (registers the Sequential and MTCNN adapters)
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

if TYPE_CHECKING:
    from .torchvision_adapters import TORCHVISION_ARCHS, UNSUPPORTED_ARCHS


def __getattr__(name: str) -> Any:
    if name in ("TORCHVISION_ARCHS", "UNSUPPORTED_ARCHS"):  # torchvision's tables: they import its models
        from . import torchvision_adapters

        return getattr(torchvision_adapters, name)
    raise AttributeError(f"module 'fcndetect.convert' has no attribute {name!r}")
