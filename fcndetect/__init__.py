"""fcndetect: sliding-window detection with classifiers made fully convolutional.

Public API::

    from fcndetect import Detector, DetectorConfig, Detections, load_model, make_fully_convolutional

The names are imported on first use, so ``import fcndetect.evaluate`` and ``fcndetect --help`` never load
torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__

from .threads import apply_env_defaults as _apply_env_defaults  # noqa: E402  (no torch import)

_apply_env_defaults()  # OpenMP wait policy, read when torch loads: see fcndetect.threads

#: public name -> module that defines it
_EXPORTS = {
    "DenseNet": ".convert",
    "make_fully_convolutional": ".convert",
    "DetectorConfig": ".config",
    "Detections": ".detections",
    "DetectionResult": ".detector",
    "Detector": ".detector",
    "load_model": ".models",
    "inspect": ".inspection",
}

__all__ = ["__version__", *sorted(_EXPORTS)]

if TYPE_CHECKING:
    from .config import DetectorConfig
    from .convert import DenseNet, make_fully_convolutional
    from .detections import Detections
    from .detector import DetectionResult, Detector
    from .inspection import inspect
    from .models import load_model


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'fcndetect' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
