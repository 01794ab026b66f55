"""Train a detector from examples (``fcndetect train``): crops or annotated photos and photos without the
object in; a classifier, its preset and per-epoch metrics out. See :func:`fcndetect.train.train`."""

from .archs import TrainableModel, build_trainable
from .data import TrainDataError
from .loop import OUTPUT_FILES, TrainError, TrainOptions, TrainResult, choose_threshold, train

__all__ = [
    "OUTPUT_FILES", "TrainDataError", "TrainError", "TrainOptions", "TrainResult", "TrainableModel",
    "build_trainable", "choose_threshold", "train",
]
