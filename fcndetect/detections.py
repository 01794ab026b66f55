"""The :class:`Detections` result of one image, its score maps, and their conversions.

Scores contract: ``logit`` is the ranking key (unbounded log-odds of the class group, computed from the
network's logits, so it never saturates); ``score = sigmoid(logit)`` is the probability in [0, 1] that
``threshold`` compares. Sorting, ``max_det`` and NMS rank by the logit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # geometry imports torch; Detections itself does not need it
    from .geometry import Geometry

__all__ = ["Detections", "ScoreMap", "sigmoid", "BOX_DECIMALS", "SCORE_DECIMALS", "LOGIT_DECIMALS",
           "OPTIONAL_FIELDS"]

BOX_DECIMALS = 2
SCORE_DECIMALS = 5
LOGIT_DECIMALS = 5

#: The optional per-detection fields and each row's shape, declared once: :class:`Detections` (conversion,
#: selection, joining) and the core's :class:`~fcndetect.windows.Windows` follow this list.
OPTIONAL_FIELDS: dict[str, tuple[int, ...]] = {"landmarks": (5, 2), "angles": (), "quads": (4, 2)}


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Numerically stable logistic function, elementwise, float32 in and out for float32 input."""
    x = np.asarray(x)
    out = np.empty_like(x, dtype=np.result_type(x.dtype, np.float32))
    pos = x >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-x[pos]))
    e = np.exp(x[~pos])
    out[~pos] = e / (1.0 + e)
    return out


@dataclass(frozen=True)
class ScoreMap:
    """Dense output of one pyramid level.

    Attributes:
        scale: nominal pyramid scale of the level.
        sx, sy: exact level-size / image-size factors along x and y.
        logits: ``[G, H', W']`` float32 log-odds, one map per class group (``Detections.class_names``).
        geometry: the dense network's geometry: cell ``(i, j)`` covers the image box
            ``fcndetect.geometry.cells_to_boxes(i, j, geometry, (sx, sy))``.
        angle: degrees, counter-clockwise: the level is of the image rotated by ``angle`` (``--rotations``), so
            its cells are in the rotated image's pixels (``fcndetect.rotation.rotation_matrix(W, H, angle)``
            maps the original image's pixels there, and gives the rotated image's size); 0 is upright.
    """

    scale: float
    sx: float
    sy: float
    logits: np.ndarray
    geometry: "Geometry | None" = None
    angle: float = 0.0

    @property
    def scores(self) -> np.ndarray:
        """``[G, H', W']`` float32 probabilities ``sigmoid(logits)``."""
        return sigmoid(self.logits)


@dataclass
class Detections:
    """Detections in one image.

    Attributes:
        boxes: ``[N, 4]`` float32 ``[x1, y1, x2, y2]`` in the (upright) image's pixels, continuous edges.
        scores: ``[N]`` float32 probabilities of the detected class group, in [0, 1] (``sigmoid(logits)``).
        labels: ``[N]`` int64 indices into ``class_names``.
        class_names: name of each label.
        image_size: ``(width, height)`` of the image.
        logits: ``[N]`` float32 log-odds, the ranking key (``None``: taken as ``logit(scores)``).
        score_maps: per pyramid level, when requested (``return_maps=True``).
        landmarks: ``[N, 5, 2]`` float32 points ``(x, y)`` in image pixels, for models with a landmark head
            (O-Net): left eye, right eye, nose, left mouth corner, right mouth corner (MTCNN's order; left
            and right as seen in the image); ``None`` otherwise.
        angles: ``[N]`` float32 degrees, counter-clockwise: the rotation of the image under which each face
            was upright (``--rotations``); ``None`` without rotations.
        quads: ``[N, 4, 2]`` float32 corners of each rotated window in the image (``boxes`` is their
            axis-aligned box); ``None`` without rotations.

    Selection works like numpy: ``dets[dets.scores > 0.9]``, ``dets[:5]``, ``dets[[0, 2]]``;
    :meth:`concat` joins detections of one image.
    """

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...]
    image_size: tuple[int, int]
    logits: np.ndarray | None = None
    score_maps: list[ScoreMap] | None = field(default=None, repr=False)
    landmarks: np.ndarray | None = None
    angles: np.ndarray | None = None
    quads: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.boxes = np.asarray(self.boxes, np.float32).reshape(-1, 4)
        n = self.boxes.shape[0]
        self.scores = np.asarray(self.scores, np.float32).reshape(-1)
        self.labels = np.asarray(self.labels, np.int64).reshape(-1)
        if self.logits is None:
            p = np.clip(self.scores.astype(np.float64), 1e-12, 1 - 1e-12)
            self.logits = np.log(p / (1 - p)).astype(np.float32)
        self.logits = np.asarray(self.logits, np.float32).reshape(-1)
        for name, row in OPTIONAL_FIELDS.items():
            if getattr(self, name) is not None:
                setattr(self, name, np.asarray(getattr(self, name), np.float32).reshape(-1, *row))
        for name in ("scores", "labels", "logits", *OPTIONAL_FIELDS):
            if getattr(self, name) is None:
                continue
            if getattr(self, name).shape[0] != n:
                raise ValueError(f"Detections: {name} has {getattr(self, name).shape[0]} entries, boxes {n}")

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    def __getitem__(self, index: int | slice | Sequence[int] | np.ndarray) -> "Detections":
        """The detections selected by a boolean mask ``[N]``, an index array, a slice or one index."""
        if isinstance(index, (int, np.integer)):
            index = [int(index)]
        idx = np.asarray(index) if not isinstance(index, slice) else index
        if isinstance(idx, np.ndarray) and idx.dtype == bool and idx.shape != (len(self),):
            raise IndexError(f"boolean index of shape {idx.shape} for {len(self)} detections")
        optional: dict[str, Any] = {name: getattr(self, name)[idx] if getattr(self, name) is not None else None
                                    for name in OPTIONAL_FIELDS}
        return replace(
            self,
            boxes=self.boxes[idx],
            scores=self.scores[idx],
            labels=self.labels[idx],
            logits=self.logits[idx],  # type: ignore[index]
            **optional,
        )

    @classmethod
    def concat(cls, parts: Sequence["Detections"]) -> "Detections":
        """Join detections of one image (same ``class_names`` and ``image_size``), in the given order.

        An optional field (:data:`OPTIONAL_FIELDS`: ``landmarks``, ``angles``, ``quads``) that only some parts carry is kept: the rows
        of the parts without it are NaN (and :meth:`to_records` leaves it out of those records)."""
        if not parts:
            raise ValueError("Detections.concat needs at least one Detections")
        first = parts[0]
        for p in parts[1:]:
            if p.class_names != first.class_names or p.image_size != first.image_size:
                raise ValueError("Detections.concat: parts differ in class_names or image_size")
        optional: dict[str, Any] = {name: _concat_optional(parts, name) for name in OPTIONAL_FIELDS}
        return cls(
            boxes=np.concatenate([p.boxes for p in parts]),
            scores=np.concatenate([p.scores for p in parts]),
            labels=np.concatenate([p.labels for p in parts]),
            class_names=first.class_names,
            image_size=first.image_size,
            logits=np.concatenate([p.logits for p in parts]),
            **optional,
        )

    @classmethod
    def empty(cls, class_names: tuple[str, ...], image_size: tuple[int, int]) -> "Detections":
        return cls(
            boxes=np.zeros((0, 4), np.float32),
            scores=np.zeros((0,), np.float32),
            labels=np.zeros((0,), np.int64),
            class_names=class_names,
            image_size=image_size,
            logits=np.zeros((0,), np.float32),
        )

    @property
    def label_names(self) -> list[str]:
        return [self.class_names[int(i)] for i in self.labels]

    def to_records(self) -> list[dict[str, object]]:
        """``[{"box": [x1, y1, x2, y2], "score": float, "logit": float, "label": str}, ...]`` at fixed
        precision (boxes 2 decimals, score 5, logit 5), with ``"landmarks": [[x, y] x 5]`` (2 decimals) where
        the detections have them."""
        records: list[dict[str, object]] = [
            {
                "box": [round(float(v), BOX_DECIMALS) for v in box],
                "score": round(float(score), SCORE_DECIMALS),
                "logit": round(float(logit), LOGIT_DECIMALS),
                "label": name,
            }
            for box, score, logit, name in zip(self.boxes, self.scores, self.logits, self.label_names)  # type: ignore[arg-type]
        ]
        if self.landmarks is not None:
            for rec, points in zip(records, self.landmarks):
                if np.isnan(points).any():  # a part without landmarks (Detections.concat)
                    continue
                rec["landmarks"] = [[round(float(x), BOX_DECIMALS), round(float(y), BOX_DECIMALS)] for x, y in points]
        if self.angles is not None and self.quads is not None:
            for rec, angle, quad in zip(records, self.angles, self.quads):
                if np.isnan(angle) or np.isnan(quad).any():
                    continue
                rec["angle"] = round(float(angle), 1) + 0.0
                rec["quad"] = [[round(float(x), BOX_DECIMALS), round(float(y), BOX_DECIMALS)] for x, y in quad]
        return records


def _concat_optional(parts: Sequence[Detections], name: str) -> np.ndarray | None:
    """``name``'s rows of every part joined, NaN rows for parts without it; ``None`` if no part has it."""
    present = [getattr(p, name) for p in parts if getattr(p, name) is not None]
    if not present:
        return None
    tail, dtype = present[0].shape[1:], present[0].dtype
    return np.concatenate([
        getattr(p, name) if getattr(p, name) is not None else np.full((len(p.boxes), *tail), np.nan, dtype)
        for p in parts
    ])
