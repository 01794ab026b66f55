"""A detector's stages as the core runs them: each stage's model with what the detector decided for it, so
that the pyramid loop and the cascade are handed what they need and never the detector."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .geometry import Geometry
    from .models import LoadedModel

__all__ = ["Stage", "Cascade"]


@dataclass(frozen=True)
class Stage:
    """One stage of a detector.

    Attributes:
        model: its networks (the dense net and its geometry, the classifier), normalisation and class groups.
        threshold: the probability a window must exceed to pass it (a cascade's last stage: on the fused
            logit; the detector's ``threshold``).
        regress: whether its box-regression head refines the windows it passes (a head it has).
    """

    model: LoadedModel
    threshold: float
    regress: bool

    @property
    def name(self) -> str:
        return self.model.spec.name

    @property
    def geometry(self) -> Geometry:
        """Where each cell of its dense network looks."""
        return self.model.dense.geometry


@dataclass(frozen=True)
class Cascade:
    """A cascade as :func:`fcndetect.cascade.cascade_candidates` runs it.

    Attributes:
        stages: cheapest first; the first runs densely over the pyramid, the later ones on crops.
        nms_iou: NMS-max IoU between stages (and across the first stage's levels).
        fusion: ``"last"``: a detection's logit is the last stage's; ``"sum"``: every stage's, summed.
        flip: the last stage also scores each crop mirrored and averages the two logits.
    """

    stages: tuple[Stage, ...]
    nms_iou: float
    fusion: str
    flip: bool
