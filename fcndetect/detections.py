"""The :class:`Detections` result of one image, and its conversions."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Detections", "ScoreMap"]

BOX_DECIMALS = 2
SCORE_DECIMALS = 5


@dataclass(frozen=True)
class ScoreMap:
    """Dense scores of one pyramid level.

    Attributes:
        scale: nominal pyramid scale of the level.
        sx, sy: exact level-size / image-size factors along x and y.
        scores: ``[G, H', W']`` float32 scores in [0, 1], one map per class group (``Detections.class_names``);
            cell ``(i, j)`` covers the image box given by :func:`fcndetect.geometry.cells_to_boxes`.
    """

    scale: float
    sx: float
    sy: float
    scores: np.ndarray


@dataclass
class Detections:
    """Detections in one image.

    Attributes:
        boxes: ``[N, 4]`` float32 ``[x1, y1, x2, y2]`` in the (upright) image's pixels, continuous edges.
        scores: ``[N]`` float32 classifier probabilities of the detected class, in [0, 1].
        labels: ``[N]`` int64 indices into ``class_names``.
        class_names: name of each label.
        image_size: ``(width, height)`` of the image.
        score_maps: per pyramid level, when requested (``return_maps=True``).
    """

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...]
    image_size: tuple[int, int]
    score_maps: list[ScoreMap] | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    @classmethod
    def empty(cls, class_names: tuple[str, ...], image_size: tuple[int, int]) -> "Detections":
        return cls(
            boxes=np.zeros((0, 4), np.float32),
            scores=np.zeros((0,), np.float32),
            labels=np.zeros((0,), np.int64),
            class_names=class_names,
            image_size=image_size,
        )

    @property
    def label_names(self) -> list[str]:
        return [self.class_names[int(i)] for i in self.labels]

    def to_records(self) -> list[dict[str, object]]:
        """``[{"box": [x1, y1, x2, y2], "score": float, "label": str}, ...]`` at fixed precision."""
        return [
            {
                "box": [round(float(v), BOX_DECIMALS) for v in box],
                "score": round(float(score), SCORE_DECIMALS),
                "label": name,
            }
            for box, score, name in zip(self.boxes, self.scores, self.label_names)
        ]
