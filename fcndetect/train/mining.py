"""Hard negatives: the current model runs densely over photos without the object (the tool's own
:class:`~fcndetect.Detector`), and its best-scoring windows are cut out as new negative windows."""

from __future__ import annotations

import numpy as np

from .data import Photo, crop_window

__all__ = ["detector_config", "scan"]


def detector_config(arch: str, weights: str, input_size: int, mean: tuple[float, ...], std: tuple[float, ...],
                    grayscale: bool, label: str, **settings: object):
    """The :class:`~fcndetect.DetectorConfig` of a trained two-output model (as its preset will say)."""
    from ..config import DetectorConfig, load_preset

    base = load_preset("custom")
    base.update(settings)
    return DetectorConfig(model=arch, weights=weights, input_size=input_size, mean=tuple(mean), std=tuple(std),
                          num_classes=2, classes=("background", label), grayscale=grayscale, **base)


def scan(config, photos: list[Photo], size: int, per_image: int) -> tuple[np.ndarray, np.ndarray]:
    """Run the detector ``config`` over ``photos`` and cut out its detections.

    Returns:
        ``[N, size, size, 3]`` uint8 windows (at most ``per_image`` per photo, best first) and their logits
        ``[N]`` float32, photo by photo.
    """
    from ..detector import Detector

    det = Detector(config.replace(max_det=per_image))
    windows: list[np.ndarray] = []
    logits: list[float] = []
    for photo in photos:
        found = det.detect_array(photo.image)
        for box, logit in zip(found.boxes.tolist(), found.logits.tolist()):
            if box[2] - box[0] >= 1 and box[3] - box[1] >= 1:
                windows.append(crop_window(photo.image, box, size))
                logits.append(logit)
    out = np.stack(windows) if windows else np.empty((0, size, size, 3), np.uint8)
    return out, np.asarray(logits, np.float32)
