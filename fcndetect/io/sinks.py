"""Output sinks: JSON Lines records and atomic file writes (no partial file is ever left behind)."""

from __future__ import annotations

import errno
import json
import os
import secrets
from pathlib import Path

from ..detections import Detections

__all__ = ["result_record", "dumps_record", "atomic_write_bytes", "atomic_write_text", "output_name"]


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
