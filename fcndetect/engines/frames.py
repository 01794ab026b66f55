"""A video's frames with their detections, in order: the frames the stride selects batched for detection.

The frames are decoded in the reader's background thread (:class:`fcndetect.io.video.VideoReader`), so decoding
overlaps detection. Every frame is yielded (the annotated and anonymised videos need them all); those the stride
skips carry no detections. An engine only moves images and records; it never changes a number (DESIGN.md):
a frame's detections are those of ``detect_batch`` on that frame alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from ..detections import Detections
from ..io.video import Frame, VideoInfo, VideoReader
from .base import DetectBatch, detect_each

__all__ = ["FrameResult", "VideoStream"]

#: Frames held while a batch fills, per frame of ``batch_size``: bounds memory under a large stride.
_PENDING_PER_BATCH_FRAME = 4


@dataclass
class FrameResult:
    """One frame: the decoded frame, and for a processed frame its detections or why detection failed.

    ``detections`` and ``error`` are both ``None`` for a frame the stride skips (``frame.processed`` false)."""

    frame: Frame
    detections: Detections | None
    error: str | None


class VideoStream:
    """The frames of an opened video with their detections, lazily and in order (iterate once).

    Args:
        reader: the opened video (closed when the iteration ends or :meth:`close` is called).
        detect_batch: the detector's ``detect_batch``.
        batch_size: processed frames per ``detect_batch`` call.
        stride: detect in frames ``0, stride, 2 * stride, ...``.
        return_maps: ask ``detect_batch`` for score maps.

    After the iteration, :attr:`error` says why the video broke midway (``None`` if it did not) and
    :attr:`frames_read` how many frames were decoded.
    """

    def __init__(self, reader: VideoReader, detect_batch: DetectBatch, batch_size: int = 1, stride: int = 1,
                 return_maps: bool = False) -> None:
        self.reader, self.detect_batch = reader, detect_batch
        self.batch_size, self.stride, self.return_maps = max(1, batch_size), max(1, stride), return_maps

    @property
    def path(self) -> str:
        return self.reader.path

    @property
    def info(self) -> VideoInfo:
        return self.reader.info

    @property
    def error(self) -> str | None:
        return self.reader.error

    @property
    def frames_read(self) -> int:
        return self.reader.frames_read

    def __iter__(self) -> Iterator[FrameResult]:
        pending: list[Frame] = []

        def flush() -> Iterator[FrameResult]:
            chosen = [f for f in pending if f.processed]
            dets = iter(detect_each(self.detect_batch, [f.image for f in chosen], self.return_maps))
            for f in pending:
                if not f.processed:
                    yield FrameResult(f, None, None)
                    continue
                d = next(dets)
                yield FrameResult(f, None, d) if isinstance(d, str) else FrameResult(f, d, None)
            pending.clear()

        try:
            n_chosen = 0
            for frame in self.reader.frames(self.stride, ahead=2 * self.batch_size + 2):
                pending.append(frame)
                n_chosen += frame.processed
                if n_chosen >= self.batch_size or len(pending) >= _PENDING_PER_BATCH_FRAME * self.batch_size:
                    yield from flush()
                    n_chosen = 0
            yield from flush()
        finally:
            self.reader.close()

    def close(self) -> None:
        """Stop decoding and release the video (idempotent)."""
        self.reader.close()
