"""A run's combined outputs, written as records arrive: memory stays bounded whatever the number of images.

The built-in output formats, one :class:`~fcndetect.io.sinks.Sink` each (registered in
:data:`fcndetect.io.sinks.SINKS`): ``jsonl`` (``detections.jsonl``, always written with an output folder),
``coco``, ``csv``, ``fddb``, ``wider``. :class:`CombinedOutputs` opens the asked formats' sinks, hands them
each record in input order (:meth:`~CombinedOutputs.add`), and gives them temporary files (in the output
folder's scratch folder) or, without an output folder, a spooled copy of what stdout gets. Only a complete run
publishes them (:meth:`~CombinedOutputs.commit`: renamed into place, or copied to stdout); an interrupted one
leaves no partial file (:meth:`~CombinedOutputs.discard`). The bytes are those of :mod:`fcndetect.io.formats`'
whole-run functions (tests compare them).

COCO's ``detections.json`` list and ``images.json`` images are written one element at a time; the categories
(known only at the end) close ``images.json``. WIDER FACE's per-image files are written as each image comes.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any, TextIO

from . import formats
from .outdir import scratch_dir
from .sinks import (
    SINKS,
    Sink,
    SinkOutput,
    TextWriter,
    _create_temporary,
    atomic_write_text,
    dumps_record,
    register_sink,
)

__all__ = ["sink_names", "run_files", "CombinedOutputs", "combined_names", "split_formats", "JsonlSink", "CocoSink", "CsvSink", "FddbSink",
           "WiderSink"]


def sink_names() -> tuple[str, ...]:
    """The ``--format`` values: every registered format (the built-in ones are registered below)."""
    return tuple(SINKS)


def run_files() -> tuple[str, ...]:
    """Every name a run writes at the top of its output folder for itself: ``run.json`` and each format's
    files and folders (whether asked for or not, so that ``--resume`` with another format cannot collide)."""
    return ("run.json", *dict.fromkeys(n for cls in SINKS.values() for n in (*cls.files, *cls.folders)))


def split_formats(fmt: str | Sequence[str]) -> tuple[str, ...]:
    """``"coco,csv"`` or ``["coco", "csv"]`` -> ``("coco", "csv")`` (a run may ask for several formats)."""
    values = fmt.split(",") if isinstance(fmt, str) else [f for v in fmt for f in v.split(",")]
    return tuple(dict.fromkeys(v.strip() for v in values if v.strip()))


def combined_names(fmt: str | Sequence[str]) -> list[str]:
    """The combined files of a run with ``-o`` and ``--format fmt`` (one format or several), relative to the
    output folder (files in a format's folder, WIDER FACE's per-image files, aside)."""
    return list(dict.fromkeys(n for f in ("jsonl", *split_formats(fmt)) for n in SINKS[f].files))


def named(exc: OSError, path: object) -> OSError:
    """``exc`` again, naming ``path`` as its file (a write to an open file says only ``[Errno 28] No space
    left on device``)."""
    return OSError(exc.errno, exc.strerror or str(exc), str(path))


class _Named:
    """A text file being written for ``target``: every write error names ``target``."""

    def __init__(self, fh: IO[str], target: object) -> None:
        self.fh, self.target = fh, target

    def write(self, text: str) -> int:
        try:
            return self.fh.write(text)
        except OSError as exc:
            raise named(exc, self.target) from None

    def publish(self, tmp: str) -> None:
        """Flush, fsync, close, and rename ``tmp`` (this file) to ``target``."""
        try:
            self.fh.flush()
            os.fsync(self.fh.fileno())
            self.fh.close()
            os.replace(tmp, str(self.target))
        except OSError as exc:
            raise named(exc, self.target) from None

    def close(self) -> None:
        self.fh.close()


class _JsonList:
    """A JSON list in :func:`formats.json_text`'s layout (one compact element a line), appended to ``fh``."""

    def __init__(self, fh: TextWriter, indent: str) -> None:
        self.fh, self.indent, self.n = fh, indent, 0

    def add(self, value: Any) -> None:
        self.fh.write(("[\n" if self.n == 0 else ",\n") + self.indent + "  " + formats._json_compact(value))
        self.n += 1

    def close(self) -> None:
        self.fh.write("[]" if self.n == 0 else "\n" + self.indent + "]")


@register_sink
class JsonlSink(Sink):
    """``detections.jsonl``: every record, one JSON line each (without an output folder, stdout gets the
    lines from the runner as they come)."""

    name, files, help = "jsonl", ("detections.jsonl",), "JSON Lines, one record per line"

    def __init__(self, out: SinkOutput, categories: dict[str, int], frames: bool) -> None:
        super().__init__(out, categories, frames)
        self.fh = out.file("detections.jsonl") if out.folder is not None else None

    def add(self, record: dict[str, Any], name: str) -> None:
        if self.fh is not None:
            self.fh.write(dumps_record(record) + "\n")


@register_sink
class CocoSink(Sink):
    """COCO results (``detections.json``) and their images and categories (``images.json``); without an
    output folder, stdout gets the results, each naming its image."""

    name, files, help = "coco", ("detections.json", "images.json"), "COCO results and images"

    def __init__(self, out: SinkOutput, categories: dict[str, int], frames: bool) -> None:
        super().__init__(out, categories, frames)
        self.n_images = 0
        self.results = _JsonList(out.file("detections.json") if out.folder is not None else out.stdout(), "")
        self.images = None
        if out.folder is not None:
            fh = out.file("images.json")
            fh.write('{\n  "images": ')
            self.images = _JsonList(fh, "  ")

    def add(self, record: dict[str, Any], name: str) -> None:
        image, results = formats.coco_entries(record, self.n_images + 1, self.categories)
        if image is None:
            return
        self.n_images += 1
        if self.images is not None:
            self.images.add(image)
        for r in results:
            self.results.add(r if self.images is not None else {**r, "file_name": image["file_name"]})

    def finish(self) -> None:
        self.results.close()
        self.results.fh.write("\n")
        if self.images is not None:
            self.images.close()
            cats = [{"id": cid, "name": n} for n, cid in self.categories.items()]
            self.images.fh.write(',\n  "categories": ' + formats._json_block(cats, "  ") + "\n}\n")


class _TextSink(Sink):
    """A format that is one text file, appended record by record (``text``: a record's text)."""

    def __init__(self, out: SinkOutput, categories: dict[str, int], frames: bool) -> None:
        super().__init__(out, categories, frames)
        self.fh = out.file(self.files[0]) if out.folder is not None else out.stdout()


@register_sink
class CsvSink(_TextSink):
    """``detections.csv``: one row per detection, and one per image without any (``frame`` and ``time``
    columns when the run holds a video)."""

    name, files, help = "csv", ("detections.csv",), "one row per detection"

    def __init__(self, out: SinkOutput, categories: dict[str, int], frames: bool) -> None:
        super().__init__(out, categories, frames)
        self.header = formats.csv_text([], frames)
        self.fh.write(self.header)

    def add(self, record: dict[str, Any], name: str) -> None:
        self.fh.write(formats.csv_text([record], self.has_frames)[len(self.header):])


@register_sink
class FddbSink(_TextSink):
    """``detections.fddb.txt``: FDDB's detection listing (ellipses' images by output name)."""

    name, files, frames, help = "fddb", ("detections.fddb.txt",), False, "FDDB detection listing"

    def add(self, record: dict[str, Any], name: str) -> None:
        self.fh.write(formats.fddb_text([record], names=[name]))


@register_sink
class WiderSink(Sink):
    """WIDER FACE: one text file per image under ``wider/`` (written as each image comes); without an output
    folder, stdout gets them one after the other."""

    name, folders, frames, help = "wider", ("wider",), False, "WIDER FACE files, one per image"

    def __init__(self, out: SinkOutput, categories: dict[str, int], frames: bool) -> None:
        super().__init__(out, categories, frames)
        self.fh = out.stdout() if out.folder is None else None

    def add(self, record: dict[str, Any], name: str) -> None:
        text = formats.wider_text(record, name)
        if self.fh is not None:
            self.fh.write(text)
        else:
            self.out.write_file(f"wider/{formats.wider_relpath(name)}", text)


class CombinedOutputs:
    """Streams the combined outputs of a run (see the module docstring); the :class:`SinkOutput` of its sinks.

    Args:
        root: the output folder, or ``None`` (then one ``--format`` other than ``jsonl``, spooled for stdout).
        fmt: one registered format or several (``"coco,csv"``; several only with ``root``).
        categories: the detector's class names (COCO category ids, in this order).
        stdout: where :meth:`commit` copies the spooled text without ``root``.
        frames: the run holds a video: CSV gets ``frame`` and ``time`` columns.
    """

    def __init__(self, root: Path | None, fmt: str | Sequence[str], categories: list[str], stdout: TextIO,
                 frames: bool = False) -> None:
        self.root, self.folder, self.stdout_stream = root, root, stdout
        self.fmts = split_formats(fmt) or ("jsonl",)
        unknown = [f for f in self.fmts if f not in SINKS]
        if unknown:
            raise ValueError(f"unknown format {unknown[0]!r}; formats: {', '.join(SINKS)}")
        if root is None and len(self.fmts) > 1:
            raise ValueError(f"stdout takes one format, got {', '.join(self.fmts)}")
        self.fmt = self.fmts[0]
        cat_ids: dict[str, int] = {}
        for name in categories:
            if name in cat_ids:
                raise ValueError(f"duplicate category {name!r}")
            cat_ids[name] = len(cat_ids) + 1
        self._files: dict[str, tuple[_Named, str]] = {}  # relative name -> (handle, temporary path)
        self._spool: _Named | None = None
        chosen = dict.fromkeys(("jsonl", *self.fmts) if root is not None else self.fmts)
        self.sinks: list[Sink] = []
        try:
            self.sinks = [SINKS[f](self, cat_ids, frames) for f in chosen]
        except BaseException:
            self.discard()
            raise

    # -- SinkOutput ------------------------------------------------------------------------------------
    def file(self, rel: str) -> TextWriter:
        if self.root is None:
            raise RuntimeError(f"{rel}: no output folder")
        if rel not in self._files:
            scratch = scratch_dir(self.root)
            scratch.mkdir(parents=True, exist_ok=True)
            fd, tmp = _create_temporary(scratch, rel)
            self._files[rel] = (_Named(os.fdopen(fd, "w", encoding="utf-8", newline=""), self.root / rel), tmp)
        return self._files[rel][0]

    def stdout(self) -> TextWriter:
        if self._spool is None:
            self._spool = _Named(tempfile.TemporaryFile("w+", encoding="utf-8", newline=""),  # noqa: SIM115
                                 f"a temporary copy of the {self.fmt} output")
        return self._spool

    def write_file(self, rel: str, text: str) -> None:
        if self.root is None:
            raise RuntimeError(f"{rel}: no output folder")
        atomic_write_text(self.root / rel, text, scratch_dir(self.root))

    # -- the run ---------------------------------------------------------------------------------------
    def add(self, record: dict[str, Any], name: str) -> None:
        """Append one record (the next in input order); ``name`` is its output name (FDDB, WIDER FACE)."""
        for sink in self.sinks:
            sink.add(record, name)

    def commit(self) -> None:
        """The run is complete: publish every file (fsync, then rename into place), or copy the spool to stdout."""
        for sink in self.sinks:
            sink.finish()
        for fh, tmp in self._files.values():
            fh.publish(tmp)
        self._files = {}
        if self._spool is not None:
            spool = self._spool.fh
            spool.seek(0)
            while chunk := spool.read(1 << 20):
                self.stdout_stream.write(chunk)
            self.stdout_stream.flush()
            spool.close()
            self._spool = None

    def discard(self) -> None:
        """The run is not complete: remove the temporary files (nothing is published)."""
        for fh, tmp in self._files.values():
            with contextlib.suppress(OSError):
                fh.close()
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        self._files = {}
        if self._spool is not None:
            self._spool.close()
            self._spool = None
