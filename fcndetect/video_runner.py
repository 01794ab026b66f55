"""A batch run's videos: one record per processed frame, tracks across frames, and with ``-o DIR`` the video's files.

For a video ``<name>`` (its path inside its source folder, extension kept):

* ``DIR/<name>.annotated.mp4``: every frame, at the source's size and timestamps, with its audio, boxes drawn and
  labelled with their track (with ``--vid-stride``, the frames in between show the last processed frame's
  detections);
* ``DIR/<name>.anonymized.mp4`` with ``--anonymize``: every frame with the regions of its tracks anonymised
  (:mod:`fcndetect.track`: detected there, interpolated through gaps and between stride's processed frames,
  held ``--anonymize-hold`` frames before a track's first and after its last detection), nothing drawn;
* ``DIR/<name>.frames/FFFFFF.heatmap.jpg``, ``FFFFFF.maps/``, ``FFFFFF.crops/`` with ``--heatmap``,
  ``--save-maps``, ``--crops``: per processed frame ``FFFFFF`` (0-based, 6 digits);
* ``DIR/<name>.jsonl``: its frame records, written last: its presence marks the video complete for ``--resume``
  (a video that broke midway, or whose files could not be written, gets none, so ``--resume`` redoes it).

Frames are written a few frames behind detection (:attr:`fcndetect.track.Tracker.lag`), so that a track found
later can still cover them. Videos are written in the output folder's scratch folder and moved to their names at
the end, so an interrupted run leaves no partial video; the same frames give the same bytes, so a redone video
equals an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import numpy as np

from .detections import Detections
from .engines.base import error_reason
from .engines.frames import VideoStream
from .io.anonymize import anonymize
from .io.draw import draw_detections
from .io.outdir import scratch_dir
from .io.progress import Progress
from .io.render import RenderOptions, render_image_outputs
from .io.sinks import atomic_write_bytes, atomic_write_text, dumps_record, result_record
from .io.sources import SourceItem
from .io.video import Frame, VideoInfo, is_video_path
from .io.video_writer import TEMP_SUFFIX, VideoFileWriter
from .track import Tracker, TrackerConfig

if TYPE_CHECKING:
    from .engines.base import Engine

__all__ = ["VideoJob", "frame_record", "video_refusal", "completed_video", "input_records", "FRAME_FORMATS",
           "VIDEO_TEMP_SUFFIX", "tracker_config"]

#: ``--format`` values whose files can tell a video's frames apart (the built-in ones; the registry decides).
FRAME_FORMATS = ("jsonl", "coco", "csv")
#: What a video being written is named with at its end (the runner removes leftovers of a killed run).
VIDEO_TEMP_SUFFIX = TEMP_SUFFIX
#: A processed frame's extra files' image extension (heatmaps).
_FRAME_EXT = ".jpg"

Record = dict[str, Any]

#: The most decoded frames a video holds back so that tracks found later can still cover them.
MAX_LOOKAHEAD = 64


def tracker_config(hold: int, stride: int = 1) -> TrackerConfig:
    """The tracks of a run whose anonymised regions are held ``hold`` frames (``--anonymize-hold``) and that
    detects in one frame out of ``stride``: a track starts at a score of 0.5 or more (every detection, at the
    default's threshold), any detection of the run extends one, a track lives through gaps of up to twice the
    hold, or two strides, and covers the frames after its last detection up to the next processed frame. Frames
    are held back (in memory) for at most :data:`MAX_LOOKAHEAD` frames, whatever the stride: a longer gap is
    covered by the track's prediction instead of interpolated."""
    gap = 2 * max(hold, stride)
    return TrackerConfig(high=0.5, low=0.0, hold=hold, max_gap=gap, hold_after=max(hold, stride - 1),
                         lookahead=max(hold + 1, min(gap, MAX_LOOKAHEAD)))


def frame_record(path: str, index: int, time: float, dets: Detections | None, error: str | None,
                 width: int | None = None, height: int | None = None, tracks: np.ndarray | None = None) -> Record:
    """A frame's JSON object: the image record (:func:`~fcndetect.io.sinks.result_record`) of the frame, with
    ``frame`` (0-based index) and ``time`` (seconds, the frame's timestamp, 3 decimals) after ``image``, and each
    detection's ``track`` (an id from 1, or ``null`` for one that joined no track) after its ``label``."""
    rec = result_record(path, dets, error, width, height)
    if tracks is not None:
        rec["detections"] = [_with_track(d, int(t)) for d, t in zip(rec["detections"], tracks)]  # type: ignore[call-overload]
    return {"image": rec.pop("image"), "frame": int(index), "time": round(float(time), 3) + 0.0, **rec}


def _with_track(det: dict[str, Any], track: int) -> dict[str, Any]:
    out = {k: det[k] for k in ("box", "score", "logit", "label")}
    out["track"] = track if track > 0 else None
    out.update((k, v) for k, v in det.items() if k not in out)
    return out


def input_records(records: Record | list[Record] | None) -> list[Record]:
    """An input's records as a list: an image's one, or a video's frame records (``None``: not done yet)."""
    return [] if records is None else records if isinstance(records, list) else [records]


def video_refusal(items: Sequence[SourceItem], engine: Engine, fmt: str) -> str | None:
    """Why a run cannot take its videos (one line), or ``None``: an engine that reads no video (Ray), and a
    ``--format`` that cannot tell frames apart (FDDB, WIDER FACE) cannot hold a video's records."""
    videos = [it.path for it in items if it.error is None and is_video_path(it.path)]
    if not videos:
        return None
    if not engine.reads_videos:
        return (f"--engine {engine.name} does not read videos ({videos[0]}): run videos with --engine local (the default)")
    from .io.combined import sink_names
    from .io.sinks import SINKS

    frame_formats = [f for f in sink_names() if SINKS[f].frames]
    fmt = next((f for f in fmt.split(",") if f in SINKS and not SINKS[f].frames), "")
    if fmt:
        return (f"--format {fmt} cannot tell a video's frames apart ({videos[0]}): use --format "
                f"{', '.join(frame_formats[:-1])} or {frame_formats[-1]} for videos")
    return None


def completed_video(root: Path, name: str) -> list[Record] | None:
    """The records of a video a previous run completed (``DIR/<name>.jsonl``), or ``None``."""
    try:
        lines = (root / (name + ".jsonl")).read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]
    except (OSError, ValueError):
        return None


@dataclass
class _Pending:
    """A decoded frame waiting to be written: its detections (a processed frame's), their track ids, and the
    last processed frame's detections and ids (what the annotated video shows there)."""

    frame: Frame
    dets: Detections | None
    shown: Detections | None
    shown_ids: np.ndarray | None


@dataclass
class VideoJob:
    """Runs one video's :class:`~fcndetect.engines.frames.VideoStream` to its end: its records, handed to
    ``emit`` as they come, and with ``root`` its files.

    Args:
        root: the output folder (``None``: records only).
        render: what each image's files are; ``anonymize`` also means the anonymised video (its regions held
            ``anonymize_hold`` frames), ``heatmap``, ``save_maps`` and ``crops`` per processed frame files.
        emit: called with each record as it is made (stdout), or ``None``.
        progress: show frames done, the container's total and frames per second on ``err``.
        tty: ``err`` is a terminal (a bar; else a plain line every 10 s).
        err: where progress goes, and the one line saying a source's audio could not be copied.
    """

    root: Path | None
    render: RenderOptions
    emit: Callable[[Record], None] | None = None
    progress: bool = False
    tty: bool = False
    err: TextIO | None = None

    def run(self, item: SourceItem, name: str, stream: VideoStream) -> list[Record]:
        """Every record of the video ``item`` (output name ``name``): one per processed frame, then one error
        record where it broke, if it did; with ``root``, its files written (a failure to write them is one
        error record, and its partial files are removed)."""
        info = stream.info
        records: list[Record] = []

        def add(rec: Record) -> None:
            records.append(rec)
            if self.emit is not None:
                self.emit(rec)

        bar = Progress(info.frame_count, self.progress, self.tty, self.err, unit="frames", label=item.path) \
            if self.err is not None else None
        failure: tuple[int, float, str] | None = None  # (frame, time, why) of a failure of this video's own files
        tracker = Tracker(tracker_config(self.render.anonymize_hold, stream.stride))
        shown: tuple[Detections | None, np.ndarray | None] = (None, None)
        pending: deque[_Pending] = deque()
        n_failed = 0
        last: tuple[int, float] = (0, 0.0)  # the last decoded frame's index and time
        outputs: _Outputs | None = None

        def drain(until: int | None) -> tuple[int, float, str] | None:
            """Write the pending frames up to index ``until`` (``None``: all); a failure as ``(frame, time, why)``."""
            while pending and (until is None or pending[0].frame.index <= until):
                waiting = pending.popleft()
                try:
                    outputs.add(waiting, tracker)  # type: ignore[union-attr]
                except Exception as exc:  # noqa: BLE001 - this video's failure: its record says so
                    at = waiting.frame.index
                    return at, waiting.frame.time, error_reason(exc, f"cannot write its outputs at frame {at}")
            return None

        try:
            if self.root is not None:
                try:
                    outputs = _Outputs(self.root, name, self.render, info, item.path)
                except Exception as exc:  # noqa: BLE001 - e.g. a file where the folder should be
                    failure = (0, 0.0, error_reason(exc, "cannot write its outputs"))
                if outputs is not None and outputs.note is not None and self.err is not None:
                    self.err.write(f"warning: {item.path}: {outputs.note}\n")
            for fr in stream if failure is None else ():
                frame, dets = fr.frame, fr.detections
                last = (frame.index, frame.time)
                if frame.processed:
                    ids = None
                    if dets is not None:  # a frame whose detection failed keeps the previous regions
                        ids = tracker.update(frame.index, frame.time, dets.boxes, dets.scores)
                        shown = (dets, ids)
                    add(frame_record(item.path, frame.index, frame.time, dets, fr.error, info.width, info.height,
                                     ids))
                    n_failed += fr.error is not None
                if outputs is not None:
                    pending.append(_Pending(frame, dets if frame.processed else None, *shown))
                    failure = drain(frame.index - tracker.lag)
                    if failure is not None:
                        break
                if bar is not None:
                    bar.update(frame.index + 1, n_failed)
            if outputs is not None and failure is None:
                failure = drain(None)
            broke = failure is None and stream.error is not None
            if broke:  # the frames so far are kept, without the .jsonl that would mark the video complete
                failure = (stream.frames_read, _after(last, stream.frames_read, info.fps), str(stream.error))
            if outputs is not None and (failure is None or broke):
                complete = failure is None and n_failed == 0  # else --resume redoes it, as a failed image
                try:
                    outputs.finish(records if complete else None)
                except Exception as exc:  # noqa: BLE001 - writing its files failed: one error record
                    failure = failure or (last[0], last[1], error_reason(exc, "cannot write its outputs"))
            if failure is not None:
                add(frame_record(item.path, failure[0], failure[1], None, failure[2], info.width, info.height))
        finally:
            stream.close()
            if outputs is not None:
                outputs.discard()  # no-op once finished; after an interrupt no partial video is left
            if bar is not None:
                bar.close()
        return records


def _after(last: tuple[int, float], index: int, fps: float) -> float:
    """The time of frame ``index`` from the last decoded frame's ``(index, time)`` and the frame rate."""
    return last[1] + max(0, index - last[0]) / fps


class _Outputs:
    """A video's files under ``root``: the annotated (and anonymised) video being written, per-frame files."""

    def __init__(self, root: Path, name: str, render: RenderOptions, info: VideoInfo, source: str) -> None:
        self.root, self.name, self.render = root, name, render
        self.per_frame = replace(render, anonymize=None) if render.heatmap or render.save_maps or render.crops \
            else None
        self.written: list[Path] = []  # removed by discard() unless finish() succeeded
        self.finished = False
        self.source, self.info = source, info
        self.annotated: VideoFileWriter | None = self._writer(".annotated.mp4")
        #: why the source's audio is not in the videos, or ``None``
        self.note = self.annotated.note
        self.anonymized: VideoFileWriter | None = None
        if render.anonymize is not None:
            try:
                self.anonymized = self._writer(".anonymized.mp4")
            except BaseException:
                self.discard()
                raise

    def _writer(self, suffix: str) -> VideoFileWriter:
        """A video written in the output folder's scratch folder, renamed to ``<name><suffix>`` by :meth:`finish`:
        the source's size, timestamps' time base and audio."""
        scratch = scratch_dir(self.root)
        scratch.mkdir(parents=True, exist_ok=True)
        info = self.info
        return VideoFileWriter(scratch / f"{os.urandom(6).hex()}{suffix}", info.fps, (info.width, info.height),
                               info.time_base, self.source)

    def _publish(self, writer: VideoFileWriter, suffix: str) -> None:
        writer.commit()
        target = self.root / (self.name + suffix)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(writer.path, target)
        self.written.append(target)

    def add(self, item: _Pending, tracker: Tracker) -> None:
        """Write one frame: annotated with the last processed frame's detections and their tracks, anonymised
        where its tracks cover it and where it has detections; a processed frame's per-frame files."""
        if self.annotated is None:
            raise RuntimeError(f"{self.name}: the outputs are closed")
        frame, dets, shown = item.frame, item.dets, item.shown
        image = frame.image
        try:
            self.annotated.write(draw_detections(image, shown, tracks=item.shown_ids)
                                 if shown is not None and len(shown) else image, frame.pts)
        except OSError as exc:  # named after the video it becomes, not its temporary file
            raise OSError(exc.errno, exc.strerror, str(self.root / (self.name + ".annotated.mp4"))) from None
        if self.anonymized is not None:
            covered, _ids = tracker.regions(frame.index, frame.time)
            boxes = covered if dets is None or not len(dets) else np.concatenate([covered, dets.boxes])
            try:
                self.anonymized.write(anonymize(image, boxes, self.render.anonymize or "blur",
                                                self.render.anonymize_margin), frame.pts)
            except OSError as exc:
                raise OSError(exc.errno, exc.strerror, str(self.root / (self.name + ".anonymized.mp4"))) from None
        if dets is not None and self.per_frame is not None:
            for suffix, data in render_image_outputs(image, dets, _FRAME_EXT, self.per_frame)[1:]:  # [0]: annotated
                path = self.root / f"{self.name}.frames" / f"{frame.index:06d}{suffix}"
                atomic_write_bytes(path, data, scratch_dir(self.root))
                self.written.append(path)

    def finish(self, records: list[Record] | None) -> None:
        """Give the videos their names, then write the records (``None``: the video is incomplete, no
        ``.jsonl``). On failure, the files already written are removed and the error raised."""
        try:
            if self.annotated is not None:
                self._publish(self.annotated, ".annotated.mp4")
                self.annotated = None
            if self.anonymized is not None:
                self._publish(self.anonymized, ".anonymized.mp4")
                self.anonymized = None
            if records is not None:
                atomic_write_text(self.root / (self.name + ".jsonl"), "".join(dumps_record(r) + "\n" for r in records),
                                  scratch_dir(self.root))
        except BaseException:
            self.discard()
            raise
        self.finished = True

    def discard(self) -> None:
        """Delete the videos being written and the files written so far (idempotent; nothing once
        :meth:`finish` succeeded)."""
        for writer in (self.annotated, self.anonymized):
            if writer is not None:
                writer.discard()
        self.annotated = self.anonymized = None
        if not self.finished:
            for path in self.written:
                with contextlib.suppress(OSError):
                    os.unlink(path)
            self.written.clear()
