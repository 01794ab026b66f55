"""Candidate windows of one image as they flow through the core (torch, on the CPU), before they become
:class:`~fcndetect.detections.Detections`: one container indexed and joined as a whole, so that no step
carries parallel tensors that could fall out of step.

Boxes are ``[x1, y1, x2, y2]`` in image pixels with continuous edges.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

import torch

from .detections import OPTIONAL_FIELDS

__all__ = ["Windows", "OPTIONAL_FIELDS"]


@dataclass(frozen=True)
class Windows:
    """``N`` windows of one image.

    Attributes:
        boxes: ``[N, 4]`` xyxy image pixels.
        logits: ``[N]`` ranking keys (log-odds).
        labels: ``[N]`` int64 class-group indices.
        landmarks: ``[N, 5, 2]`` points ``(x, y)`` in image pixels, or ``None``.
        angles: ``[N]`` rotation (degrees) each window was found at (:mod:`fcndetect.rotation`), or ``None``.
        quads: ``[N, 4, 2]`` corners of each rotated window in the image, or ``None``.

    Select with a boolean mask ``[N]`` or an index tensor (``w[keep]``); join with :meth:`cat`.
    """

    boxes: torch.Tensor
    logits: torch.Tensor
    labels: torch.Tensor
    landmarks: torch.Tensor | None = None
    angles: torch.Tensor | None = None
    quads: torch.Tensor | None = None

    def __post_init__(self) -> None:
        n = self.boxes.shape[0]
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None and value.shape[0] != n:
                raise ValueError(f"Windows: {f.name} has {value.shape[0]} rows, boxes {n}")

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    def _tensors(self) -> dict[str, torch.Tensor]:
        """Every field that is present, by name."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}

    def __getitem__(self, index: torch.Tensor | slice) -> Windows:
        """The windows a boolean mask ``[N]``, an index tensor or a slice selects, every field alike."""
        return replace(self, **{name: t[index] for name, t in self._tensors().items()})

    def replace(self, **changes: Any) -> Windows:
        """A copy with ``changes`` (field name -> tensor or ``None``)."""
        return replace(self, **changes)

    def float(self) -> Windows:
        """Boxes, logits and the optional fields as float32 (labels stay int64)."""
        return replace(self, **{name: t.float() for name, t in self._tensors().items() if name != "labels"})

    @classmethod
    def empty(cls) -> Windows:
        return cls(torch.zeros((0, 4)), torch.zeros(0), torch.zeros(0, dtype=torch.int64))

    @classmethod
    def cat(cls, parts: Sequence[Windows]) -> Windows:
        """The parts joined in order. An optional field is kept where every part with windows has it (a part
        without windows lacks nothing); otherwise it is ``None``."""
        parts = list(parts)
        if not parts:
            return cls.empty()
        optional: dict[str, torch.Tensor | None] = {}
        for name, row in OPTIONAL_FIELDS.items():
            have = [getattr(p, name) for p in parts if getattr(p, name) is not None]
            if not have or any(getattr(p, name) is None and len(p) for p in parts):
                optional[name] = None
                continue
            dtype = have[0].dtype
            optional[name] = torch.cat([getattr(p, name) if getattr(p, name) is not None
                                   else torch.zeros((0, *row), dtype=dtype) for p in parts])
        return cls(torch.cat([p.boxes for p in parts]), torch.cat([p.logits for p in parts]),
                   torch.cat([p.labels for p in parts]), **optional)
