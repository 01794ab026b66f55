"""A run's combined outputs, written as records arrive: memory stays bounded whatever the number of images.

:class:`CombinedOutputs` takes each record in input order (:meth:`~CombinedOutputs.add`) and appends it to
temporary files: ``DIR/detections.jsonl`` and the ``--format`` file(s) in the output folder, or, without an
output folder, a spooled copy of what stdout gets for a ``--format`` other than ``jsonl``. Only a complete run
publishes them (:meth:`~CombinedOutputs.commit`: renamed into place, or copied to stdout); an interrupted one
leaves no partial file (:meth:`~CombinedOutputs.discard`). The bytes are those of
:mod:`fcndetect.io.formats`' whole-run functions (tests compare them).

COCO's ``detections.json`` list and ``images.json`` images are written one element at a time; the categories
(known only at the end) close ``images.json``. WIDER FACE's per-image files are written as each image comes.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from collections.abc import Sequence
from typing import IO, Any, TextIO

from . import formats
from .outdir import scratch_dir
from .sinks import atomic_write_text, dumps_record
from .sinks import _create_temporary  # noqa: PLC2701 - the same package's temporary-file naming

__all__ = ["CombinedOutputs", "combined_names"]


def split_formats(fmt: str | Sequence[str]) -> tuple[str, ...]:
    """``"coco,csv"`` or ``["coco", "csv"]`` -> ``("coco", "csv")`` (a run may ask for several formats)."""
    values = fmt.split(",") if isinstance(fmt, str) else [f for v in fmt for f in v.split(",")]
    return tuple(dict.fromkeys(v.strip() for v in values if v.strip()))


def combined_names(fmt: str | Sequence[str]) -> list[str]:
    """The combined files of a run with ``-o`` and ``--format fmt`` (one format or several), relative to the
    output folder (WIDER FACE's per-image files aside)."""
    files = {"coco": ["detections.json", "images.json"], "csv": ["detections.csv"], "fddb": ["detections.fddb.txt"]}
    return ["detections.jsonl"] + [n for f in split_formats(fmt) for n in files.get(f, [])]


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

    def __init__(self, fh: _Named, indent: str) -> None:
        self.fh, self.indent, self.n = fh, indent, 0

    def add(self, value: Any) -> None:
        self.fh.write(("[\n" if self.n == 0 else ",\n") + self.indent + "  " + formats._json_compact(value))
        self.n += 1

    def close(self) -> None:
        self.fh.write("[]" if self.n == 0 else "\n" + self.indent + "]")


class CombinedOutputs:
    """Streams the combined outputs of a run (see the module docstring).

    Args:
        root: the output folder, or ``None`` (then only a ``--format`` other than ``jsonl`` is spooled, for
            stdout).
        fmt: ``jsonl``, ``coco``, ``csv``, ``fddb`` or ``wider``, or several (``"coco,csv"``; with ``root``
            only: stdout takes one format).
        categories: the detector's class names (COCO category ids, in this order).
        stdout: where :meth:`commit` copies the spooled text without ``root``.
        frames: the run holds a video: CSV gets ``frame`` and ``time`` columns.
    """

    def __init__(self, root: Path | None, fmt: str, categories: list[str], stdout: TextIO,
                 frames: bool = False) -> None:
        self.root, self.stdout, self.frames = root, stdout, frames
        self.fmts = split_formats(fmt)
        if root is None and len(self.fmts) > 1:
            raise ValueError(f"stdout takes one format, got {', '.join(self.fmts)}")
        self.fmt = self.fmts[0] if self.fmts else "jsonl"
        self.cat_ids: dict[str, int] = {}
        for name in categories:
            if name in self.cat_ids:
                raise ValueError(f"duplicate category {name!r}")
            self.cat_ids[name] = len(self.cat_ids) + 1
        self.n_images = 0
        self._files: dict[str, tuple[_Named, str]] = {}  # relative name -> (handle, temporary path)
        self._spool: _Named | None = None
        if root is not None:
            scratch = scratch_dir(root)
            scratch.mkdir(parents=True, exist_ok=True)
            for rel in combined_names(fmt):
                fd, tmp = _create_temporary(scratch, rel)
                self._files[rel] = (_Named(os.fdopen(fd, "w", encoding="utf-8", newline=""), root / rel), tmp)
        elif fmt != "jsonl":
            self._spool = _Named(tempfile.TemporaryFile("w+", encoding="utf-8", newline=""),
                                 f"a temporary copy of the {fmt} output")
        results = self._handle("detections.json") if "coco" in self.fmts else None
        self._results = _JsonList(results, "") if results is not None else None
        images = self._handle("images.json")
        self._images = None
        if images is not None:
            images.write('{\n  "images": ')
            self._images = _JsonList(images, "  ")
        if "csv" in self.fmts:
            self._text("detections.csv", _csv_header(self.frames))

    def _handle(self, rel: str) -> _Named | None:
        if rel in self._files:
            return self._files[rel][0]
        if self._spool is not None and rel not in ("detections.jsonl", "images.json"):
            return self._spool  # stdout gets the format's main text
        return None

    def _text(self, rel: str, text: str) -> None:
        fh = self._handle(rel)
        if fh is not None:
            fh.write(text)

    def add(self, record: dict[str, Any], name: str) -> None:
        """Append one record (the next in input order); ``name`` is its output name (FDDB, WIDER FACE)."""
        if "detections.jsonl" in self._files:
            self._files["detections.jsonl"][0].write(dumps_record(record) + "\n")
        if "coco" in self.fmts:
            image, results = formats.coco_entries(record, self.n_images + 1, self.cat_ids)
            if image is not None:
                self.n_images += 1
                if self._images is not None:
                    self._images.add(image)
                if self._results is not None:
                    for r in results:
                        self._results.add(r if self.root is not None else {**r, "file_name": image["file_name"]})
        if "csv" in self.fmts:
            self._text("detections.csv", formats.csv_text([record], self.frames)[len(_csv_header(self.frames)):])
        if "fddb" in self.fmts:
            self._text("detections.fddb.txt", formats.fddb_text([record], names=[name]))
        if "wider" in self.fmts:
            if self.root is not None:
                atomic_write_text(self.root / "wider" / formats.wider_relpath(name), formats.wider_text(record, name),
                                  scratch_dir(self.root))
            elif self._spool is not None:
                self._spool.write(formats.wider_text(record, name))

    def _finish(self) -> None:
        if self._results is not None:
            self._results.close()
            self._results.fh.write("\n")
        if self._images is not None:
            self._images.close()
            cats = [{"id": cid, "name": n} for n, cid in self.cat_ids.items()]
            self._images.fh.write(',\n  "categories": ' + formats._json_block(cats, "  ") + "\n}\n")

    def commit(self) -> None:
        """The run is complete: publish every file (fsync, then rename into place), or copy the spool to stdout."""
        self._finish()
        for _rel, (fh, tmp) in self._files.items():
            fh.publish(tmp)
        self._files = {}
        if self._spool is not None:
            spool = self._spool.fh
            spool.seek(0)
            while chunk := spool.read(1 << 20):
                self.stdout.write(chunk)
            self.stdout.flush()
            spool.close()
            self._spool = None

    def discard(self) -> None:
        """The run is not complete: remove the temporary files (nothing is published)."""
        for _rel, (fh, tmp) in self._files.items():
            with contextlib.suppress(OSError):
                fh.close()
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        self._files = {}
        if self._spool is not None:
            self._spool.close()
            self._spool = None


def _csv_header(frames: bool = False) -> str:
    return formats.csv_text([], frames)
