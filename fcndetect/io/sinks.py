"""Output sinks: the :class:`Sink` of each ``--format`` and their registry, JSON Lines records, and atomic
file writes (no partial file is ever left behind).

A format is one :class:`Sink` subclass registered with :func:`register_sink`: its name (the ``--format``
value), the files and folders it writes at the top of an output folder, whether it can hold a video's frames,
and how it streams records (``__init__`` opens, :meth:`Sink.add` writes one record, :meth:`Sink.finish` closes).
The command line's format choices, the names no input's outputs may take, and the run's combined outputs
(:class:`fcndetect.io.combined.CombinedOutputs`) all come from :data:`SINKS`. The built-in formats are
registered by :mod:`fcndetect.io.combined` (import it, or use its :func:`~fcndetect.io.combined.sink_names`).
"""

from __future__ import annotations

import errno
import json
import os
import secrets
from pathlib import Path
from typing import Any, ClassVar, Protocol

from ..detections import Detections

__all__ = ["result_record", "dumps_record", "atomic_write_bytes", "atomic_write_text", "output_name", "Sink",
           "SinkOutput", "SINKS", "register_sink"]


class TextWriter(Protocol):
    def write(self, text: str, /) -> int: ...


class SinkOutput(Protocol):
    """Where a sink writes: its run's output folder (``None``: stdout only)."""

    folder: Path | None

    def file(self, rel: str) -> TextWriter:
        """With a folder: the text file ``rel`` (one of the sink's ``files``), published when the run completes."""

    def stdout(self) -> TextWriter:
        """Without a folder: the text stdout gets when the run completes."""

    def write_file(self, rel: str, text: str) -> None:
        """With a folder: write the whole file ``rel`` (inside one of the sink's ``folders``) now."""


class Sink:
    """One output format, streamed by construction: made when a run starts, given every record in input order
    (:meth:`add`), then :meth:`finish` ed; what it wrote is published only when the run completes.

    Args:
        out: where it writes.
        categories: class name -> category id (1, 2, ...), in the detector's order.
        frames: the run holds a video (the records carry ``frame`` and ``time``).
    """

    #: the ``--format`` value
    name: ClassVar[str] = ""
    #: files it writes at the top of an output folder
    files: ClassVar[tuple[str, ...]] = ()
    #: folders it writes into at the top of an output folder
    folders: ClassVar[tuple[str, ...]] = ()
    #: whether it can tell a video's frames apart
    frames: ClassVar[bool] = True
    #: a short description, for ``--help``
    help: ClassVar[str] = ""

    def __init__(self, out: SinkOutput, categories: dict[str, int], frames: bool) -> None:
        self.out, self.categories, self.has_frames = out, categories, frames

    def add(self, record: dict[str, Any], name: str) -> None:
        """Write one record (the next in input order); ``name`` is its input's output name."""
        raise NotImplementedError

    def finish(self) -> None:
        """Every record is written: close what is open (the run then publishes it)."""


#: Every registered output format, by ``--format`` value, in registration order.
SINKS: dict[str, type[Sink]] = {}


def register_sink(cls: type[Sink]) -> type[Sink]:
    """Register an output format (a class decorator); its name must be new."""
    if not cls.name or cls.name in SINKS:
        raise ValueError(f"a sink needs a new name, got {cls.name!r}")
    SINKS[cls.name] = cls
    return cls


def result_record(
    image: str, detections: Detections | None, error: str | None, width: int | None = None, height: int | None = None
) -> dict[str, object]:
    """The JSON object of one image (DESIGN.md): image, width, height, detections, error."""
    if detections is not None:
        width, height = detections.image_size
    return {
        "image": image,
        "width": width,
        "height": height,
        "detections": detections.to_records() if detections is not None else [],
        "error": error,
    }


#: Characters that JSON may hold raw but that many line readers (Python's ``str.splitlines``, JavaScript)
#: take as line ends: written escaped, so that a record is always one line whatever its file name holds.
_LINE_BREAKERS = {c: f"\\u{c:04x}" for c in (0x1c, 0x1d, 0x1e, 0x85, 0x2028, 0x2029)}


def dumps_record(record: dict[str, object]) -> str:
    """One JSON line (no newline), byte-stable: fixed key order and numbers rounded upstream; every
    character some reader takes as a line end escaped (:data:`_LINE_BREAKERS`)."""
    return json.dumps(record, ensure_ascii=False, separators=(", ", ": ")).translate(_LINE_BREAKERS)


def _create_temporary(folder: Path, name: str) -> tuple[int, str]:
    """A new empty file ``.<name>.<random>.tmp`` in ``folder``, opened for writing: ``(fd, path)``.

    Created with mode ``0o666``, from which the kernel removes the umask: the permissions a plain
    ``open(path, "w")`` gives, without reading the umask (``os.umask`` sets it, which races with other threads).
    """
    for _ in range(100):
        tmp = os.path.join(folder, f".{name}.{secrets.token_hex(6)}.tmp")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no unused temporary file name", os.path.join(folder, f".{name}.*.tmp"))


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, tmp_dir: str | os.PathLike[str] | None = None) -> None:
    """Write ``data`` to ``path`` via a temporary file and a rename: the temporary file is in ``tmp_dir`` (a
    folder on the same file system, created if needed: an output folder's scratch folder) or else beside
    ``path``.

    The file gets the permissions a plain ``open(path, "w")`` would give (``0o666`` minus the umask), not
    the ``0o600`` of :func:`tempfile.mkstemp`."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    folder = target.parent
    if tmp_dir is not None:
        folder = Path(tmp_dir)
        folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_temporary(folder, target.name)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_text(path: str | os.PathLike[str], text: str, tmp_dir: str | os.PathLike[str] | None = None) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), tmp_dir)


def output_name(item_path: str, relative: str, root: str | None) -> str:
    """Relative output name of an input (``/``-separated): its path inside its source folder, or the file
    name for a file named directly (clashes between files named directly are resolved by
    :class:`fcndetect.runner.BatchRunner`)."""
    rel = relative if root is not None else os.path.basename(item_path)
    parts = [p for p in rel.replace(os.sep, "/").split("/") if p not in ("", ".", "..")]
    return "/".join(parts) or os.path.basename(item_path)
