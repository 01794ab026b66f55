"""A batch run's videos: one record per processed frame, and with ``-o DIR`` the video's files.

For a video ``<name>`` (its path inside its source folder, extension kept):

* ``DIR/<name>.annotated.mp4``: every frame, at the source's size and frame rate, boxes and labels drawn (with
  ``--vid-stride``, the frames in between show the last processed frame's detections);
* ``DIR/<name>.anonymized.mp4`` with ``--anonymize``: every frame with the regions of the last processed
  frame's detections anonymised, nothing drawn;
* ``DIR/<name>.frames/FFFFFF.heatmap.jpg``, ``FFFFFF.maps/``, ``FFFFFF.crops/`` with ``--heatmap``,
  ``--save-maps``, ``--crops``: per processed frame ``FFFFFF`` (0-based, 6 digits);
* ``DIR/<name>.jsonl``: its frame records, written last: its presence marks the video complete for ``--resume``
  (a video that broke midway, or whose files could not be written, gets none, so ``--resume`` redoes it).

Videos are written under temporary names and renamed at the end, so an interrupted run leaves no partial video;
the same frames give the same bytes, so a redone video equals an uninterrupted one. Audio is not copied.
"""

from __future__ import annotations

import contextlib
import json
import os
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
from .io.video import VideoFileWriter, frame_time, is_video_path

if TYPE_CHECKING:
    from .engines.base import Engine

__all__ = ["VideoJob", "frame_record", "video_refusal", "completed_video", "input_records", "FRAME_FORMATS",
           "VIDEO_TEMP_SUFFIX"]

#: ``--format`` values whose files can tell a video's frames apart (the built-in ones; the registry decides).
FRAME_FORMATS = ("jsonl", "coco", "csv")
#: What a video being written is named with at its end (the runner removes leftovers of a killed run).
VIDEO_TEMP_SUFFIX = ".tmp.mp4"
#: A processed frame's extra files' image extension (heatmaps).
_FRAME_EXT = ".jpg"

Record = dict[str, Any]


def frame_record(path: str, index: int, fps: float, dets: Detections | None, error: str | None,
                 width: int | None = None, height: int | None = None) -> Record:
    """A frame's JSON object: the image record (:func:`~fcndetect.io.sinks.result_record`) of the frame, with
    ``frame`` (0-based index) and ``time`` (seconds, ``frame / fps``, 3 decimals) after ``image``."""
    rec = result_record(path, dets, error, width, height)
    return {"image": rec.pop("image"), "frame": int(index), "time": frame_time(index, fps), **rec}


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
class VideoJob:
    """Runs one video's :class:`~fcndetect.engines.frames.VideoStream` to its end: its records, handed to
    ``emit`` as they come, and with ``root`` its files.

    Args:
        root: the output folder (``None``: records only).
        render: what each image's files are; ``anonymize`` also means the anonymised video, ``heatmap``,
            ``save_maps`` and ``crops`` per processed frame files.
        emit: called with each record as it is made (stdout), or ``None``.
        progress: show frames done, the container's total and frames per second on ``err``.
        tty: ``err`` is a terminal (a bar; else a plain line every 10 s).
        err: where progress goes.
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
        failure: tuple[int, str] | None = None  # (frame, why) of a failure of this video's own files
        last: Detections | None = None
        n_failed = 0
        outputs: _Outputs | None = None
        try:
            if self.root is not None:
                try:
                    outputs = _Outputs(self.root, name, self.render, info.fps, (info.width, info.height))
                except Exception as exc:  # noqa: BLE001 - e.g. a file where the folder should be
                    failure = (0, error_reason(exc, "cannot write its outputs"))
            for fr in stream if failure is None else ():
                index = fr.frame.index
                if fr.frame.processed:
                    if fr.detections is not None:  # a frame whose detection failed keeps the previous regions
                        last = fr.detections
                    add(frame_record(item.path, index, info.fps, fr.detections, fr.error, info.width, info.height))
                    n_failed += fr.error is not None
                if outputs is not None:
                    try:
                        outputs.add(index, fr.frame.image, last, fr.frame.processed and fr.detections is not None)
                    except Exception as exc:  # noqa: BLE001 - this video's failure: its record says so
                        failure = (index, error_reason(exc, f"cannot write its outputs at frame {index}"))
                        break
                if bar is not None:
                    bar.update(index + 1, n_failed)
            broke = failure is None and stream.error is not None
            if broke:  # the frames so far are kept, without the .jsonl that would mark the video complete
                failure = (stream.frames_read, str(stream.error))
            if outputs is not None and (failure is None or broke):
                complete = failure is None and n_failed == 0  # else --resume redoes it, as a failed image
                try:
                    outputs.finish(records if complete else None)
                except Exception as exc:  # noqa: BLE001 - writing its files failed: one error record
                    failure = failure or (stream.frames_read, error_reason(exc, "cannot write its outputs"))
            if failure is not None:
                add(frame_record(item.path, failure[0], info.fps, None, failure[1], info.width, info.height))
        finally:
            stream.close()
            if outputs is not None:
                outputs.discard()  # no-op once finished; after an interrupt no partial video is left
            if bar is not None:
                bar.close()
        return records


class _Outputs:
    """A video's files under ``root``: the annotated (and anonymised) video being written, per-frame files."""

    def __init__(self, root: Path, name: str, render: RenderOptions, fps: float, size: tuple[int, int]) -> None:
        self.root, self.name, self.render = root, name, render
        self.per_frame = replace(render, anonymize=None) if render.heatmap or render.save_maps or render.crops \
            else None
        self.written: list[Path] = []  # removed by discard() unless finish() succeeded
        self.finished = False
        self.annotated: VideoFileWriter | None = self._writer(".annotated.mp4", fps, size)
        self.anonymized: VideoFileWriter | None = None
        if render.anonymize is not None:
            try:
                self.anonymized = self._writer(".anonymized.mp4", fps, size)
            except BaseException:
                self.discard()
                raise

    def _writer(self, suffix: str, fps: float, size: tuple[int, int]) -> VideoFileWriter:
        """A video written in the output folder's scratch folder, renamed to ``<name><suffix>`` by :meth:`finish`."""
        scratch = scratch_dir(self.root)
        scratch.mkdir(parents=True, exist_ok=True)
        return VideoFileWriter(scratch / f"{os.urandom(6).hex()}{suffix}", fps, size)

    def _publish(self, writer: VideoFileWriter, suffix: str) -> None:
        writer.commit()
        target = self.root / (self.name + suffix)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(writer.path, target)
        self.written.append(target)

    def add(self, index: int, image: np.ndarray, dets: Detections | None, processed: bool) -> None:
        """Frame ``index`` (``[H, W, 3]`` uint8 RGB) with the last processed frame's detections ``dets``."""
        if self.annotated is None:
            raise RuntimeError(f"{self.name}: the outputs are closed")
        try:
            self.annotated.write(draw_detections(image, dets) if dets is not None and len(dets) else image)
        except OSError as exc:  # named after the video it becomes, not its temporary file
            raise OSError(exc.errno, exc.strerror, str(self.root / (self.name + ".annotated.mp4"))) from None
        if self.anonymized is not None:
            boxes = dets.boxes if dets is not None else np.zeros((0, 4))
            try:
                self.anonymized.write(anonymize(image, boxes, self.render.anonymize or "blur",
                                                self.render.anonymize_margin))
            except OSError as exc:
                raise OSError(exc.errno, exc.strerror, str(self.root / (self.name + ".anonymized.mp4"))) from None
        if processed and dets is not None and self.per_frame is not None:
            for suffix, data in render_image_outputs(image, dets, _FRAME_EXT, self.per_frame)[1:]:  # [0]: annotated
                path = self.root / f"{self.name}.frames" / f"{index:06d}{suffix}"
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
