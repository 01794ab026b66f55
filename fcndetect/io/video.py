"""Video files in and out: frames with their index and time, decoded in a background thread; MP4 writing.

Reading and writing go through OpenCV's FFmpeg backend (bundled with ``opencv-python-headless``). OpenCV's and
FFmpeg's own log lines are silenced (:func:`silence_video_logs`), so stderr carries fcndetect's lines only.
Frames are ``[H, W, 3]`` uint8 RGB, like decoded images. Audio is neither read nor written.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .images import DEFAULT_MAX_PIXELS, ImageLoadError, check_regular_file

__all__ = ["VIDEO_EXTENSIONS", "is_video_path", "VideoInfo", "Frame", "VideoReader", "open_video", "frame_time",
           "VideoFileWriter", "silence_video_logs", "DEFAULT_FPS"]

VIDEO_EXTENSIONS = frozenset({".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg"})
#: The frame rate assumed for a container that gives none (times and written videos use it).
DEFAULT_FPS = 25.0
#: Containers whose frame count is an index of the frames (MKV, WebM and MPEG give an estimate from the
#: duration or bit rate): a stream of these that ends before its count is broken.
_COUNTED_CONTAINERS = frozenset({".mp4", ".m4v", ".mov", ".avi"})
#: ... when it ends more than this many frames (and this fraction) early.
_COUNT_SLACK_FRAMES, _COUNT_SLACK_FRACTION = 1, 0.01

_silenced = False


def silence_video_logs() -> None:
    """Silence OpenCV's and FFmpeg's log lines (``moov atom not found``, ``ac-tex damaged``...), which they write
    straight to the process's stderr. Idempotent. OpenCV reads FFmpeg's level once, when its FFmpeg backend is
    first used in the process, so this must run before that: the command line does (:func:`open_video` and the
    local engine call it first); a program that used OpenCV's video I/O before keeps FFmpeg's level as it was."""
    global _silenced
    if _silenced:
        return
    os.environ["OPENCV_FFMPEG_LOGLEVEL"] = "-8"  # AV_LOG_QUIET
    os.environ.setdefault("OPENCV_LOG_LEVEL", "SILENT")
    try:
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    except AttributeError:  # an OpenCV build without the logging module: the environment variable does it
        pass
    _silenced = True


def is_video_path(path: str) -> bool:
    """Whether ``path``'s extension is a video's (:data:`VIDEO_EXTENSIONS`, any case)."""
    return os.path.splitext(path)[1].lower() in VIDEO_EXTENSIONS


def frame_time(index: int, fps: float) -> float:
    """A frame's time in seconds, ``index / fps``, at 3 decimals (as records carry it)."""
    return round(index / fps, 3) + 0.0


@dataclass(frozen=True)
class VideoInfo:
    """What a video's container says: frame size, frame rate (:data:`DEFAULT_FPS` when it gives none) and
    frame count (``0`` when unknown; an estimate for some containers)."""

    width: int
    height: int
    fps: float
    frame_count: int


@dataclass(frozen=True)
class Frame:
    """One decoded frame: its 0-based ``index``, ``time`` (seconds, ``index / fps``), ``[H, W, 3]`` uint8 RGB
    ``image``, and whether the stride selects it for detection (``processed``)."""

    index: int
    time: float
    image: np.ndarray
    processed: bool


class VideoReader:
    """A video opened by :func:`open_video`, its first frame already decoded. :meth:`frames` yields every frame
    (decoded in a background thread, a few frames ahead); after it ends, :attr:`error` says why the stream broke
    midway (``None`` when it ended where its container said: MP4, MOV and AVI count their frames; MKV, WebM and
    MPEG only estimate the count, so a stream of these that ends early is taken as complete). Use as a context manager, or call :meth:`close`."""

    def __init__(self, path: str, capture: cv2.VideoCapture, first: np.ndarray, info: VideoInfo) -> None:
        self.path, self.info = path, info
        self._capture: cv2.VideoCapture | None = capture
        self._first: np.ndarray | None = first
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: str | None = None
        self.frames_read = 0

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
        if self._capture is None or self._first is None:
            raise RuntimeError(f"{self.path}: frames() can be called once, before close()")
        fps = self.info.fps
        q: queue.Queue[np.ndarray | None] = queue.Queue(maxsize=max(1, ahead))
        thread = threading.Thread(target=self._decode, args=(q,), name="fcndetect-video", daemon=True)
        thread.start()
        self._thread = thread  # only once started: close() after a Ctrl-C in between never joins an unstarted one
        index = 0
        try:
            while True:
                image = q.get()
                if image is None:
                    break
                yield Frame(index, frame_time(index, fps), image, index % stride == 0)
                index += 1
        finally:
            self.close()
        self.frames_read = index
        expected = self.info.frame_count if os.path.splitext(self.path)[1].lower() in _COUNTED_CONTAINERS else 0
        slack = max(_COUNT_SLACK_FRAMES, int(expected * _COUNT_SLACK_FRACTION))
        if self.error is None and expected > 0 and index < expected - slack:
            self.error = (f"video broke at frame {index}: {index} of the {expected} frames its container announces "
                          "could be decoded (truncated or corrupt)")

    def _decode(self, q: queue.Queue[np.ndarray | None]) -> None:
        """The background thread: the first frame, then each frame the capture decodes, then ``None``."""
        capture, first = self._capture, self._first
        self._first = None

        def put(item: np.ndarray | None) -> bool:
            while not self._stop.is_set():
                try:
                    q.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        decoded = 1
        try:
            if not put(first):
                return
            while capture is not None and not self._stop.is_set():
                ok, bgr = capture.read()
                if not ok or bgr is None:
                    break
                if bgr.shape[:2] != (self.info.height, self.info.width):
                    self.error = (f"video broke at frame {decoded}: its frame size changed from "
                                  f"{self.info.width}x{self.info.height} to {bgr.shape[1]}x{bgr.shape[0]}")
                    break
                decoded += 1
                if not put(_rgb(bgr)):
                    return
        except Exception as exc:  # noqa: BLE001 - a decoder failure ends the stream; the consumer reports it
            self.error = f"video broke while decoding: {type(exc).__name__}: {' '.join(str(exc).split())}"
        put(None)

    def close(self) -> None:
        """Stop the decoding thread and release the capture (idempotent)."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread.ident is not None and thread is not threading.current_thread():
            thread.join()
        capture, self._capture = self._capture, None
        if capture is not None:
            capture.release()


def _rgb(bgr: np.ndarray) -> np.ndarray:
    if bgr.ndim == 2:
        return np.ascontiguousarray(np.repeat(bgr[:, :, None], 3, axis=2))
    return np.ascontiguousarray(cv2.cvtColor(bgr[:, :, :3], cv2.COLOR_BGR2RGB))


def open_video(path: str | os.PathLike[str], max_pixels: int | None = DEFAULT_MAX_PIXELS) -> VideoReader:
    """Open a video file and decode its first frame.

    Raises:
        ImageLoadError: with a one-line reason: missing, not a regular file (a FIFO is never opened), empty,
            cannot be opened as a video (not a video, truncated container), no decodable first frame, frames
            larger than ``max_pixels``.
    """
    p = str(path)
    check_regular_file(p)
    silence_video_logs()
    capture = cv2.VideoCapture(p, cv2.CAP_FFMPEG)
    try:
        if not capture.isOpened():
            raise ImageLoadError(p, "cannot be opened as a video (not a video file, or truncated or corrupt)")
        width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        if max_pixels is not None and width * height > max_pixels:
            raise ImageLoadError(p, f"{width}x{height} = {width * height:,} pixels per frame exceeds --max-pixels "
                                    f"{max_pixels:,}")
        ok, bgr = capture.read()
        if not ok or bgr is None:
            raise ImageLoadError(p, "no frame can be decoded (an empty, truncated or corrupt video)")
        fps = float(capture.get(cv2.CAP_PROP_FPS))
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    except BaseException:
        capture.release()
        raise
    first = _rgb(bgr)
    info = VideoInfo(width=first.shape[1], height=first.shape[0],
                     fps=fps if 0.0 < fps < 1000.0 else DEFAULT_FPS, frame_count=max(0, count))
    return VideoReader(p, capture, first, info)


class VideoFileWriter:
    """An MP4 (``mp4v``) written frame by frame under a temporary name beside ``path`` and renamed to ``path``
    by :meth:`commit`, so no partial video ever carries the final name; :meth:`discard` deletes it.

    The temporary name is ``.<name>.<random>.tmp.mp4`` (the extension tells FFmpeg the container). The same
    frames give the same bytes (the encoder and muxer write no time stamp), so a redone video equals the
    uninterrupted one.
    """

    def __init__(self, path: Path, fps: float, size: tuple[int, int]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.path.parent / f".{self.path.name}.{os.urandom(6).hex()}.tmp.mp4"
        silence_video_logs()
        self._writer: cv2.VideoWriter | None = cv2.VideoWriter(str(self.tmp), cv2.VideoWriter_fourcc(*"mp4v"),
                                                                float(fps), (int(size[0]), int(size[1])))
        self.size = (int(size[0]), int(size[1]))
        self.frames = 0
        if not self._writer.isOpened():
            self.discard()
            raise OSError(0, "the MP4 encoder cannot write it", str(path))

    def write(self, image: np.ndarray) -> None:
        """Append one ``[H, W, 3]`` uint8 RGB frame of the writer's size."""
        if self._writer is None:
            raise RuntimeError(f"{self.path}: the writer is closed")
        if (image.shape[1], image.shape[0]) != self.size:
            raise ValueError(f"frame of {image.shape[1]}x{image.shape[0]} for a {self.size[0]}x{self.size[1]} video")
        self._writer.write(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        self.frames += 1

    def commit(self) -> None:
        """Finish the file and give it its final name."""
        writer, self._writer = self._writer, None
        if writer is None:
            raise RuntimeError(f"{self.path}: the writer is closed")
        writer.release()
        try:
            with open(self.tmp, "rb+") as fh:
                os.fsync(fh.fileno())
            os.replace(self.tmp, self.path)
        except BaseException:
            self.discard()
            raise

    def discard(self) -> None:
        """Stop writing and delete the temporary file (idempotent)."""
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.release()
        try:
            os.unlink(self.tmp)
        except FileNotFoundError:
            pass
