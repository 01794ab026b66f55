"""fcndetect: sliding-window detection with classifiers made fully convolutional.

Public API::

    from fcndetect import Detector, DetectorConfig, Detections, load_model, make_fully_convolutional
"""

__version__ = "0.1.0"

from .config import DetectorConfig  # noqa: E402
from .convert import DenseNet, make_fully_convolutional  # noqa: E402
from .detections import Detections  # noqa: E402
from .detector import DetectionResult, Detector  # noqa: E402
from .models import load_model  # noqa: E402

__all__ = [
    "__version__",
    "DenseNet",
    "DetectionResult",
    "Detections",
    "Detector",
    "DetectorConfig",
    "load_model",
    "make_fully_convolutional",
]
