"""Video files in: frames with their index and timestamp, decoded by PyAV (FFmpeg) in a background thread.

Frames are ``[H, W, 3]`` uint8 RGB, like decoded images, and carry their presentation timestamp: ``pts`` in the
stream's time base and ``time`` in seconds, so a variable-frame-rate video keeps its timing. FFmpeg's own log
lines are silenced (PyAV keeps them off; :func:`silence_video_logs` makes sure), so stderr carries fcndetect's
lines only. Writing is :mod:`fcndetect.io.video_writer`.

A decoder can block (a file on a stalled network mount, a FIFO behind a name): :meth:`VideoReader.close` waits
for the decoding thread a short grace period (:data:`CLOSE_GRACE_S`) and then abandons it, a daemon thread that
dies with the process, so an interrupt never waits on it.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import av
import numpy as np

from .images import DEFAULT_MAX_PIXELS, ImageLoadError, check_regular_file

__all__ = ["VIDEO_EXTENSIONS", "is_video_path", "VideoInfo", "Frame", "VideoReader", "open_video", "frame_time",
           "silence_video_logs", "DEFAULT_FPS", "CLOSE_GRACE_S"]

VIDEO_EXTENSIONS = frozenset({".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg"})
#: The frame rate assumed for a stream that gives none (the times of frames without a timestamp use it).
DEFAULT_FPS = 25.0
#: Seconds :meth:`VideoReader.close` waits for a decoding thread before abandoning it.
CLOSE_GRACE_S = 2.0
#: Containers whose frame count is an index of the frames (MKV, WebM and MPEG give an estimate from the
#: duration or bit rate): a stream of these that ends before its count is broken.
_COUNTED_CONTAINERS = frozenset({".mp4", ".m4v", ".mov", ".avi"})
#: ... when it ends more than this many frames (and this fraction) early.
_COUNT_SLACK_FRAMES, _COUNT_SLACK_FRACTION = 1, 0.01


def silence_video_logs() -> None:
    """Keep FFmpeg's log lines (``moov atom not found``, ``ac-tex damaged``...) off stderr. Idempotent; PyAV
    starts with them off, so this only undoes a program's own ``av.logging.set_level``."""
    av.logging.set_level(None)


def is_video_path(path: str) -> bool:
    """Whether ``path``'s extension is a video's (:data:`VIDEO_EXTENSIONS`, any case)."""
    return os.path.splitext(path)[1].lower() in VIDEO_EXTENSIONS


def frame_time(index: int, fps: float) -> float:
    """A frame's time in seconds from its index, ``index / fps``, at 3 decimals (for frames without a
    timestamp)."""
    return round(index / fps, 3) + 0.0


@dataclass(frozen=True)
class VideoInfo:
    """What a video's stream says: frame size, average frame rate (:data:`DEFAULT_FPS` when it gives none),
    frame count (``0`` when unknown; an estimate for some containers), the time base of its timestamps, and
    its audio codec's name (``None``: no audio stream)."""

    width: int
    height: int
    fps: float
    frame_count: int
    time_base: Fraction = Fraction(1, 90000)
    audio: str | None = None


@dataclass(frozen=True)
class Frame:
    """One decoded frame: its 0-based ``index``, ``time`` (seconds, from its timestamp, 3 decimals), ``[H, W, 3]``
    uint8 RGB ``image``, whether the stride selects it for detection (``processed``), and ``pts``, its
    timestamp in the stream's time base (:attr:`VideoInfo.time_base`)."""

    index: int
    time: float
    image: np.ndarray
    processed: bool
    pts: int = 0


class VideoReader:
    """A video opened by :func:`open_video`, its first frame already decoded. :meth:`frames` yields every frame
    (decoded in a background thread, a few frames ahead); after it ends, :attr:`error` says why the stream broke
    midway (``None`` when it ended where its container said: MP4, MOV and AVI count their frames; MKV, WebM and
    MPEG only estimate the count, so a stream of these that ends early is taken as complete). Use as a context
    manager, or call :meth:`close`."""

    def __init__(self, path: str, container: Any, decoded: Iterator[Any], first: Any, info: VideoInfo) -> None:
        self.path, self.info = path, info
        self._container: Any = container
        self._decoded: Iterator[Any] | None = decoded
        self._first: Any = first
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: str | None = None
        self.frames_read = 0
        #: whether :meth:`close` gave up waiting for a blocked decoding thread
        self.abandoned = False

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def frames(self, stride: int = 1, ahead: int = 8) -> Iterator[Frame]:
        """Every frame in order; frames ``0, stride, 2 * stride, ...`` are marked ``processed``.

        Args:
            stride: detect in one frame out of ``stride`` (>= 1).
            ahead: frames decoded ahead of the consumer, at most.
        """
        if stride < 1:
            raise ValueError(f"stride must be >= 1, got {stride}")
        if self._decoded is None or self._first is None:
            raise RuntimeError(f"{self.path}: frames() can be called once, before close()")
        q: queue.Queue[tuple[np.ndarray, int | None] | None] = queue.Queue(maxsize=max(1, ahead))
        thread = threading.Thread(target=self._decode, args=(q,), name="fcndetect-video", daemon=True)
        thread.start()
        self._thread = thread  # only once started: close() after a Ctrl-C in between never joins an unstarted one
        index, last_pts = 0, None
        tb, fps = self.info.time_base, self.info.fps
        try:
            while True:
                item = q.get()
                if item is None:
                    break
                image, pts = item
                if pts is None or (last_pts is not None and pts <= last_pts):  # none, or out of order: from the rate
                    pts = (last_pts + max(1, round(1 / (fps * tb)))) if last_pts is not None else 0
                last_pts = pts
                yield Frame(index, round(float(pts * tb), 3) + 0.0, image, index % stride == 0, int(pts))
                index += 1
        finally:
            self.close()
        self.frames_read = index
        expected = self.info.frame_count if os.path.splitext(self.path)[1].lower() in _COUNTED_CONTAINERS else 0
        slack = max(_COUNT_SLACK_FRAMES, int(expected * _COUNT_SLACK_FRACTION))
        if self.error is None and expected > 0 and index < expected - slack:
            self.error = (f"video broke at frame {index}: {index} of the {expected} frames its container announces "
                          "could be decoded (truncated or corrupt)")

    def _decode(self, q: queue.Queue[tuple[np.ndarray, int | None] | None]) -> None:
        """The background thread: the first frame, then each frame the decoder gives, then ``None``."""
        decoded, first = self._decoded, self._first
        self._first = None

        def put(item: tuple[np.ndarray, int | None] | None) -> bool:
            while not self._stop.is_set():
                try:
                    q.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        n = 1
        try:
            if not put((_rgb(first), first.pts)):
                return
            while decoded is not None and not self._stop.is_set():
                frame = next(decoded, None)
                if frame is None:
                    break
                if (frame.width, frame.height) != (self.info.width, self.info.height):
                    self.error = (f"video broke at frame {n}: its frame size changed from "
                                  f"{self.info.width}x{self.info.height} to {frame.width}x{frame.height}")
                    break
                n += 1
                if not put((_rgb(frame), frame.pts)):
                    return
        except Exception as exc:  # noqa: BLE001 - a decoder failure ends the stream; the consumer reports it
            self.error = f"video broke while decoding: {type(exc).__name__}: {' '.join(str(exc).split())}"
        put(None)

    def close(self, grace: float = CLOSE_GRACE_S) -> None:
        """Stop the decoding thread and close the file (idempotent). A thread still decoding after ``grace``
        seconds (a blocked read) is abandoned: it is a daemon, the process can exit without it, and the file is
        left to it (closing it under the decoder would crash)."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread.ident is not None and thread is not threading.current_thread():
            thread.join(grace)
            if thread.is_alive():
                self.abandoned = True
                self._container = self._decoded = None
                return
        container, self._container = self._container, None
        self._decoded = self._first = None
        if container is not None:
            container.close()


def _rgb(frame: Any) -> np.ndarray:
    """A decoded frame as ``[H, W, 3]`` uint8 RGB."""
    return np.ascontiguousarray(frame.to_ndarray(format="rgb24"))


def _fps(stream: Any) -> float:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        try:
            value = float(rate) if rate else 0.0
        except (TypeError, ZeroDivisionError):
            value = 0.0
        if 0.0 < value < 1000.0:
            return value
    return DEFAULT_FPS


def open_video(path: str | os.PathLike[str], max_pixels: int | None = DEFAULT_MAX_PIXELS) -> VideoReader:
    """Open a video file and decode its first frame.

    Raises:
        ImageLoadError: with a one-line reason: missing, not a regular file (a FIFO is never opened), empty,
            cannot be opened as a video (not a video, truncated container), no video stream, no decodable first
            frame, frames larger than ``max_pixels``.
    """
    p = str(path)
    check_regular_file(p)
    silence_video_logs()
    try:
        container = av.open(p, mode="r", metadata_errors="ignore")
    except Exception as exc:  # noqa: BLE001 - any FFmpeg failure to open it is this input's one-line error
        raise ImageLoadError(p, "cannot be opened as a video (not a video file, or truncated or corrupt)") from exc
    try:
        if not container.streams.video:
            raise ImageLoadError(p, "cannot be opened as a video (it has no video stream)")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # frame and slice threads: decoding keeps up with detection
        width, height = int(stream.codec_context.width), int(stream.codec_context.height)
        if max_pixels is not None and width * height > max_pixels:
            raise ImageLoadError(p, f"{width}x{height} = {width * height:,} pixels per frame exceeds --max-pixels "
                                    f"{max_pixels:,}")
        decoded = container.decode(stream)
        try:
            first = next(decoded, None)
        except Exception:  # noqa: BLE001 - a corrupt first packet: the reason below
            first = None
        if first is None:
            raise ImageLoadError(p, "no frame can be decoded (an empty, truncated or corrupt video)")
        audio = container.streams.audio[0].codec_context.name if container.streams.audio else None
        info = VideoInfo(width=first.width, height=first.height, fps=_fps(stream),
                         frame_count=max(0, int(stream.frames or 0)),
                         time_base=stream.time_base or Fraction(1, 90000), audio=audio)
    except BaseException:
        container.close()
        raise
    return VideoReader(p, container, decoded, first, info)
