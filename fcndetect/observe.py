"""Watching a detection without changing it: an :class:`Observer` sees each step of the pipeline as it ends
and each cascade stage's surviving windows. The core reports to the observer of the current context
(:func:`observer`); nothing observes by default. Benchmarks install one with :func:`observing`::

    with observing(StepTimer()) as timer:
        detector.detect_array(image)
    timer.steps  # [("pyramid plan", 1.2e-05), ("resize L0 640x480", 0.0004), ...]

An observer only receives; it never changes a number (it must not modify the tensors it is shown).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    import torch

__all__ = ["Observer", "StepTimer", "KeptWindows", "observer", "observing"]


class Observer:
    """Receives the pipeline's events; this base class ignores them (subclass what you need)."""

    def step(self, name: str) -> None:
        """The step ``name`` has just ended (``"pyramid plan"``, ``"network L0 (face-pnet)"``, ...)."""

    def kept(self, stage: str, boxes: torch.Tensor) -> None:
        """Cascade stage ``stage`` kept ``boxes`` (``[N, 4]`` xyxy image pixels; read, never modify)."""


class StepTimer(Observer):
    """Each step's seconds since the previous step ended (the first: since the timer was made), and each
    cascade stage's count of windows kept.

    Attributes:
        steps: ``(step, seconds)`` in pipeline order.
        candidates: ``(stage, windows kept)`` in cascade order (empty for a single stage).
    """

    def __init__(self) -> None:
        self.steps: list[tuple[str, float]] = []
        self.candidates: list[tuple[str, int]] = []
        self._t = time.perf_counter()

    def step(self, name: str) -> None:
        now = time.perf_counter()
        self.steps.append((name, now - self._t))
        self._t = now

    def kept(self, stage: str, boxes: torch.Tensor) -> None:
        self.candidates.append((stage, int(boxes.shape[0])))

    @property
    def total(self) -> float:
        """The sum of the steps' seconds."""
        return sum(t for _, t in self.steps)


class KeptWindows(Observer):
    """Each cascade stage's surviving windows: ``windows`` is ``[(stage, boxes [N, 4])]`` (copies)."""

    def __init__(self) -> None:
        self.windows: list[tuple[str, torch.Tensor]] = []

    def kept(self, stage: str, boxes: torch.Tensor) -> None:
        self.windows.append((stage, boxes.clone()))


_NOBODY = Observer()
_CURRENT: ContextVar[Observer] = ContextVar("fcndetect_observer", default=_NOBODY)
ObserverT = TypeVar("ObserverT", bound=Observer)


def observer() -> Observer:
    """The observer of the current context (one that ignores everything when none was installed)."""
    return _CURRENT.get()


@contextmanager
def observing(obs: ObserverT) -> Iterator[ObserverT]:
    """Install ``obs`` as the current context's observer for the ``with`` block (nested blocks restore the
    outer one)."""
    token = _CURRENT.set(obs)
    try:
        yield obs
    finally:
        _CURRENT.reset(token)
