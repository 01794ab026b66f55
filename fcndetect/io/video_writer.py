"""Video files out: H.264 MP4s that browsers play, with the source's timestamps and audio packets.

Each video is encoded by libx264 (PyAV's wheels ship it) as yuv420p (``+faststart``: the index at the front, so
playback starts before the download ends); a frame of odd width or height cannot be 4:2:0 in H.264, so such
videos are written 4:4:4 (High 4:4:4 profile: players other than browsers play it). Every frame is written at
the timestamp it had in the source, so a variable frame rate survives; the source's audio stream is copied packet
by packet (not re-encoded), interleaved with the video by time. An audio codec that MP4 cannot hold (PCM, for one)
is left out, and :attr:`VideoFileWriter.note` says so in one line.

A video is written under a temporary name beside its final one and renamed by :meth:`VideoFileWriter.commit`, so
no partial video ever carries the final name. The same frames give the same bytes (x264 is deterministic for a
given thread count, and the muxer writes no creation time), so a redone video equals the uninterrupted one.
"""

from __future__ import annotations

import io
import os
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

__all__ = ["VideoFileWriter", "audio_note", "TEMP_SUFFIX"]

#: What a video being written is named with at its end (``.<name>.<random>.tmp.mp4``).
TEMP_SUFFIX = ".tmp.mp4"
#: libx264's settings: visually lossless for most content, fast enough to keep up with detection; one thread, so
#: that the same frames give the same bytes on any machine (x264's threads depend on the cores), and no macroblock
#: tree (measured: with it, a short clip's bytes changed from run to run).
_X264 = {"crf": "18", "preset": "veryfast", "threads": "1", "x264-params": "mbtree=0"}


def audio_note(source: str) -> tuple[bool, str | None]:
    """Whether ``source``'s audio can be copied into an MP4, and if it has audio that cannot, why (one line)."""
    name = "of an unknown codec"
    try:
        with av.open(source, metadata_errors="ignore") as src:
            if not src.streams.audio:
                return False, None
            stream = src.streams.audio[0]
            name = stream.codec_context.name
            with av.open(io.BytesIO(), mode="w", format="mp4") as probe:
                probe.add_stream_from_template(stream)
                probe.start_encoding()
    except Exception:  # noqa: BLE001 - whatever FFmpeg refuses: the codec cannot go into MP4
        return False, f"its audio ({name}) cannot be copied into MP4: the videos are written without sound"
    return True, None


class _Audio:
    """The source's audio packets, muxed into ``out`` as the video reaches their time."""

    def __init__(self, source: str, out: Any) -> None:
        self._src = av.open(source, metadata_errors="ignore")
        stream = self._src.streams.audio[0]
        self._out_stream = out.add_stream_from_template(stream)
        self._packets = self._src.demux(stream)
        self._next: Any = None
        self._done = False

    def mux_until(self, out: Any, seconds: float | None) -> None:
        """Mux every packet whose time is at most ``seconds`` (``None``: all that are left)."""
        while not self._done:
            if self._next is None:
                try:
                    packet = next(self._packets, None)
                except Exception:  # noqa: BLE001 - a corrupt audio tail: the audio ends there
                    packet = None
                if packet is None:
                    self._done = True
                    break
                if not packet.size:
                    continue
                self._next = packet
            ts = self._next.pts if self._next.pts is not None else self._next.dts
            if seconds is not None and ts is not None and float(ts * self._next.time_base) > seconds:
                break
            packet, self._next = self._next, None
            packet.stream = self._out_stream
            try:
                out.mux(packet)
            except Exception:  # noqa: BLE001 - a damaged audio packet (timestamps out of order): the audio ends
                self._done = True

    def close(self) -> None:
        self._src.close()


def _yuv_frame(rgb: np.ndarray, pix_fmt: str) -> Any:
    """``[H, W, 3]`` uint8 RGB as a ``yuv420p`` (or ``yuv444p``) frame, BT.601 limited range, converted by OpenCV:
    FFmpeg's scaler may take another code path for another buffer alignment, and the same frames must give the
    same bytes."""
    if pix_fmt == "yuv420p":
        i420: np.ndarray = cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420)  # [H * 3 / 2, W]: Y, then U and V
        return av.VideoFrame.from_ndarray(i420, format="yuv420p")
    ycc = cv2.cvtColor(rgb, cv2.COLOR_RGB2YCrCb)  # full range: scaled into the limited range below
    y = (ycc[:, :, 0].astype(np.float32) * (219 / 255) + 16).round()
    cb = ((ycc[:, :, 2].astype(np.float32) - 128) * (224 / 255) + 128).round()
    cr = ((ycc[:, :, 1].astype(np.float32) - 128) * (224 / 255) + 128).round()
    planes: np.ndarray = np.stack([y, cb, cr]).astype(np.uint8)
    return av.VideoFrame.from_ndarray(planes, format="yuv444p")


class VideoFileWriter:
    """An H.264 MP4 written frame by frame under a temporary name beside ``path``, renamed to ``path`` by
    :meth:`commit`; :meth:`discard` deletes it.

    Args:
        path: the final name.
        fps: the nominal frame rate (the encoder's rate control; timestamps come from each frame).
        size: ``(width, height)`` of every frame.
        time_base: the timestamps' unit (the source stream's); default ``1 / fps``.
        audio_from: a video whose first audio stream is copied into this one (``None``: no audio).
    """

    def __init__(self, path: Path, fps: float, size: tuple[int, int], time_base: Fraction | None = None,
                 audio_from: str | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.path.parent / f".{self.path.name}.{os.urandom(6).hex()}{TEMP_SUFFIX}"
        self.size = (int(size[0]), int(size[1]))
        rate = Fraction(fps).limit_denominator(1001) if fps > 0 else Fraction(25)
        self.time_base = time_base or Fraction(1, 1) / rate
        self.frames = 0
        self._last_pts: int | None = None
        #: why the source's audio is not in the video (one line), or ``None``
        copy, self.note = audio_note(audio_from) if audio_from is not None else (False, None)
        self._out: Any = None
        self._audio: _Audio | None = None
        try:
            self._out = av.open(str(self.tmp), mode="w", format="mp4", container_options={"movflags": "+faststart"})
            stream = self._out.add_stream("libx264", rate=rate, options=dict(_X264))
            stream.width, stream.height = self.size
            stream.pix_fmt = "yuv420p" if self.size[0] % 2 == 0 and self.size[1] % 2 == 0 else "yuv444p"
            stream.time_base = stream.codec_context.time_base = self.time_base
            self._stream = stream
            if audio_from is not None and copy:
                self._audio = _Audio(audio_from, self._out)
            self._out.start_encoding()  # the file exists from here on
        except BaseException:
            self.discard()
            raise

    def write(self, image: np.ndarray, pts: int | None = None) -> None:
        """Append one ``[H, W, 3]`` uint8 RGB frame of the writer's size at timestamp ``pts`` (in
        :attr:`time_base`; default: the next frame at the nominal rate). A timestamp not after the previous one
        becomes the previous one plus 1 (an encoder needs them increasing)."""
        if self._out is None:
            raise RuntimeError(f"{self.path}: the writer is closed")
        if (image.shape[1], image.shape[0]) != self.size:
            raise ValueError(f"frame of {image.shape[1]}x{image.shape[0]} for a {self.size[0]}x{self.size[1]} video")
        if pts is None:
            pts = round(self.frames / (float(self._stream.codec_context.framerate or 25) * self.time_base))
        if self._last_pts is not None and pts <= self._last_pts:
            pts = self._last_pts + 1
        self._last_pts = pts
        frame = _yuv_frame(np.ascontiguousarray(image, dtype=np.uint8), self._stream.pix_fmt)
        frame.pts, frame.time_base = int(pts), self.time_base
        if self._audio is not None:
            self._audio.mux_until(self._out, float(pts * self.time_base))
        for packet in self._stream.encode(frame):
            self._out.mux(packet)
        self.frames += 1

    def commit(self) -> None:
        """Finish the file (the encoder flushed, the rest of the audio muxed) and give it its final name."""
        if self._out is None:
            raise RuntimeError(f"{self.path}: the writer is closed")
        try:
            for packet in self._stream.encode(None):
                self._out.mux(packet)
            if self._audio is not None:
                self._audio.mux_until(self._out, None)
                self._audio.close()
                self._audio = None
            out, self._out = self._out, None
            out.close()
            with open(self.tmp, "rb+") as fh:
                os.fsync(fh.fileno())
            os.replace(self.tmp, self.path)
        except BaseException:
            self.discard()
            raise

    def discard(self) -> None:
        """Stop writing and delete the temporary file (idempotent)."""
        audio, self._audio = self._audio, None
        if audio is not None:
            audio.close()
        out, self._out = self._out, None
        if out is not None:
            try:
                out.close()
            except Exception:  # noqa: BLE001 - closing a half-written file may fail: it is deleted anyway
                pass
        try:
            os.unlink(self.tmp)
        except FileNotFoundError:
            pass
