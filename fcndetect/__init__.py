"""fcndetect: sliding-window detection with classifiers made fully convolutional.

Public API::

    from fcndetect import Detector, DetectorConfig, Detections, load_model, make_fully_convolutional

The names are imported on first use, so ``import fcndetect.evaluate`` and ``fcndetect --help`` never load
torch.
"""

from __future__ import annotations

import importlib
import warnings
from typing import TYPE_CHECKING, Any

from ._version import __version__
from .threads import apply_env_defaults as _apply_env_defaults

_apply_env_defaults()  # OpenMP wait policy, read when torch loads: see fcndetect.threads

#: public name -> module that defines it
_EXPORTS = {
    # detection
    "Detector": ".detector",
    "DetectorConfig": ".config",
    "Detections": ".detections",
    "DetectionResult": ".detector",
    "load_model": ".models",
    # conversion and inspection
    "DenseModel": ".convert",
    "make_fully_convolutional": ".convert",
    "inspect_model": ".inspection",
    # drawing and anonymising
    "draw_detections": ".io.draw",
    "heatmap_overlay": ".io.draw",
    "upright_crops": ".io.draw",
    "anonymize": ".io.anonymize",
    # errors a caller may catch
    "AnnotationError": ".evaluate.errors",
    "ConfigError": ".config",
    "ConversionError": ".convert",
    "DeviceError": ".detector",
    "ExportError": ".export",
    "GeometryError": ".geometry",
    "ImageLoadError": ".io.images",
    "ModelLoadError": ".models.torchvision_models",
    "OutputDirError": ".runner",
    "RayEngineError": ".engines.ray.options",
    "TrainDataError": ".train.data",
    "TrainError": ".train.loop",
    "WeightsNotFoundError": ".models.mtcnn",
}

#: old name -> new name; each still works once, with a DeprecationWarning
_DEPRECATED = {"DenseNet": "DenseModel", "inspect": "inspect_model"}

#: written out, so that tools see the names (tests/test_structure.py checks it against _EXPORTS)
__all__ = [
    "__version__",
    "AnnotationError",
    "ConfigError",
    "ConversionError",
    "DenseModel",
    "DetectionResult",
    "Detections",
    "Detector",
    "DetectorConfig",
    "DeviceError",
    "ExportError",
    "GeometryError",
    "ImageLoadError",
    "ModelLoadError",
    "OutputDirError",
    "RayEngineError",
    "TrainDataError",
    "TrainError",
    "WeightsNotFoundError",
    "anonymize",
    "draw_detections",
    "heatmap_overlay",
    "inspect_model",
    "load_model",
    "make_fully_convolutional",
    "upright_crops",
]

if TYPE_CHECKING:
    from .config import ConfigError, DetectorConfig
    from .convert import ConversionError, DenseModel, make_fully_convolutional
    from .detections import Detections
    from .detector import DetectionResult, Detector, DeviceError
    from .engines.ray.options import RayEngineError
    from .evaluate.errors import AnnotationError
    from .export import ExportError
    from .geometry import GeometryError
    from .inspection import inspect_model
    from .io.anonymize import anonymize
    from .io.draw import draw_detections, heatmap_overlay, upright_crops
    from .io.images import ImageLoadError
    from .models import load_model
    from .models.mtcnn import WeightsNotFoundError
    from .models.torchvision_models import ModelLoadError
    from .runner import OutputDirError
    from .train.data import TrainDataError
    from .train.loop import TrainError


def __getattr__(name: str) -> Any:
    if name in _DEPRECATED:
        new = _DEPRECATED[name]
        warnings.warn(f"fcndetect.{name} is deprecated; use fcndetect.{new}", DeprecationWarning, stacklevel=2)
        return __getattr__(new)
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'fcndetect' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
