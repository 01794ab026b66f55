"""The local engine: images decoded in background threads, same-size images batched, results in input order.
A video is opened (its first frame decoded) in the same threads and given back as a
:class:`~fcndetect.engines.frames.VideoStream`: its frames decoded in a thread of their own and batched.

An engine only moves images and records; it never changes a number (DESIGN.md).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from ..io.images import load_image
from ..io.sources import LOCAL_INPUTS, SourceItem
from ..io.video import VideoReader, is_video_path, open_video, silence_video_logs
from .base import (DetectBatch, DetectorWork, EngineOptions, ItemResult, detect_each, error_reason, item_ext,
                   render_one)
from .frames import VideoStream

__all__ = ["ItemResult", "iter_detections", "LocalEngine"]


@dataclass
class _Loaded:
    item: SourceItem
    image: np.ndarray | None
    error: str | None
    video: VideoReader | None = None


def _load(item: SourceItem, max_pixels: int | None) -> _Loaded:
    """One input decoded (a video: opened, its first frame decoded), or the one-line reason it could not be
    (any exception: one input's failure)."""
    if item.error is not None:
        return _Loaded(item, None, item.error)
    try:
        if is_video_path(item.path):
            return _Loaded(item, None, None, open_video(item.path, max_pixels=max_pixels))
        return _Loaded(item, load_image(item.path, max_pixels=max_pixels), None)
    except Exception as exc:  # noqa: BLE001 - ImageLoadError, and whatever else decoding raises
        return _Loaded(item, None, error_reason(exc))


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


def iter_detections(
    detect_batch: DetectBatch,
    items: list[SourceItem],
    options: EngineOptions | None = None,
) -> Iterator[ItemResult]:
    """Detect in every item lazily, in input order: decoding in ``options.workers`` background threads,
    same-size images batched up to ``options.batch_size``.

    Every failure of one input (decoding, detection, rendering with ``options.render``) gives its
    :class:`ItemResult` with ``error`` set; the other inputs are unaffected. A video gives one result whose
    ``video`` yields its frames (``options.vid_stride``, ``options.batch_size``); the caller consumes it before
    asking for the next result.
    """
    opts = options or EngineOptions()
    batch: list[_Loaded] = []
    if any(is_video_path(it.path) for it in items):
        silence_video_logs()  # here, in the caller's thread, before a decoding thread opens a video

    def flush() -> Iterator[ItemResult]:
        loaded = [b for b in batch if b.image is not None]
        images = [b.image for b in loaded if b.image is not None]  # all of them: `loaded` has images only
        dets = iter(detect_each(detect_batch, images, opts.return_maps))
        for b in batch:
            if b.image is None:
                yield ItemResult(b.item, None, None, b.error)
                continue
            d = next(dets)
            if isinstance(d, str):
                yield ItemResult(b.item, b.image, None, d)
            elif opts.render is None:
                yield ItemResult(b.item, b.image, d, None)
            else:
                files = render_one(opts.render, b.image, d, item_ext(b.item))
                if isinstance(files, str):
                    yield ItemResult(b.item, b.image, None, files)
                else:
                    yield ItemResult(b.item, b.image, d, None, files)
        batch.clear()

    for loaded in _prefetch(items, opts.workers, opts.max_pixels):
        if loaded.video is not None:
            yield from flush()
            yield ItemResult(loaded.item, None, None, None, video=VideoStream(
                loaded.video, detect_batch, opts.batch_size, opts.vid_stride, opts.return_maps))
            continue
        batch.append(loaded)
        if len(batch) >= max(1, opts.batch_size):
            yield from flush()
    yield from flush()



class LocalEngine:
    """The local engine (:class:`~fcndetect.engines.base.Engine`): this process detects, with
    :func:`iter_detections`."""

    name = "local"
    detects_in_driver = True
    renders_where_it_detects = False
    reads_videos = True

    def check_available(self) -> None:
        """Always available."""

    def check_config(self, config: object) -> None:
        """Runs any configuration."""

    def uri_support(self) -> tuple[tuple[str, ...], str]:
        """Local files only."""
        return (), LOCAL_INPUTS

    def results(self, work: DetectorWork, items: list[SourceItem], options: EngineOptions) -> Iterator[ItemResult]:
        """:func:`iter_detections` with the driver's detector."""
        return iter_detections(work.detect_batch, items, options)
