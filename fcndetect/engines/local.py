"""The local engine: images decoded in background threads, same-size images batched, results in input order.

An engine only moves images and records; it never changes a number (DESIGN.md).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..detections import Detections
from ..io.images import DEFAULT_MAX_PIXELS, ImageLoadError, load_image
from ..io.sources import SourceItem

if TYPE_CHECKING:
    from ..detector import Detector

__all__ = ["ItemResult", "iter_detections"]


@dataclass
class _Loaded:
    item: SourceItem
    image: np.ndarray | None
    error: str | None


def _load(item: SourceItem, max_pixels: int | None) -> _Loaded:
    if item.error is not None:
        return _Loaded(item, None, item.error)
    try:
        return _Loaded(item, load_image(item.path, max_pixels=max_pixels), None)
    except ImageLoadError as exc:
        return _Loaded(item, None, exc.reason)


def _prefetch(items: list[SourceItem], workers: int, max_pixels: int | None) -> Iterator[_Loaded]:
    """Decode in ``workers`` background threads, in input order, a bounded number of images ahead."""
    if workers <= 0:
        for item in items:
            yield _load(item, max_pixels)
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fcndetect-load") as pool:
        pending: deque[Future[_Loaded]] = deque()
        it = iter(items)
        try:
            for item in it:
                pending.append(pool.submit(_load, item, max_pixels))
                if len(pending) >= 2 * workers + 1:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for f in pending:
                f.cancel()


@dataclass
class ItemResult:
    """The outcome for one input: its source item, the decoded image and detections, or an error.

    ``files``: the image's output files (``fcndetect.runner.render_image_outputs``) when the engine rendered
    them itself, as the Ray engine does where it detects; ``image`` may then be ``None``.
    """

    item: SourceItem
    image: np.ndarray | None
    detections: Detections | None
    error: str | None
    files: list[tuple[str, bytes]] | None = None


def iter_detections(
    detector: "Detector",
    items: list[SourceItem],
    *,
    workers: int = 1,
    batch_size: int = 1,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    return_maps: bool = False,
) -> Iterator[ItemResult]:
    """Detect in every item lazily, in input order: decoding in background workers, same-size images
    batched up to ``batch_size``; unreadable inputs give an :class:`ItemResult` with ``error`` set."""
    batch: list[_Loaded] = []

    def flush() -> Iterator[ItemResult]:
        images = [b.image for b in batch if b.image is not None]
        dets = iter(detector.detect_batch(images, return_maps=return_maps) if images else [])
        for b in batch:
            if b.image is None:
                yield ItemResult(b.item, None, None, b.error)
            else:
                yield ItemResult(b.item, b.image, next(dets), None)
        batch.clear()

    for loaded in _prefetch(items, workers, max_pixels):
        batch.append(loaded)
        if len(batch) >= max(1, batch_size):
            yield from flush()
    yield from flush()


