"""An output folder's own names: the run's files, which no input's outputs may take, the scratch folder that
holds every temporary file, the advisory lock that keeps a second run out, and the shortening of over-long
names.

* The run's files (:data:`RUN_FILES`): ``run.json``, ``detections.jsonl`` and the ``--format`` files. Every
  per-input output is named ``<name>.<suffix>``, so an input whose name would put one of its outputs on a run
  file (``run``, ``detections``, ``images``, ...) is given a suffix (``run~2``) by :func:`output_names`.
* ``DIR/.fcndetect.tmp/``: every file being written (renamed into place when complete). Removing it is all a
  run ever deletes of what it did not finish; nothing is guessed from a file's name.
* ``DIR/.fcndetect.lock``: held (``fcntl.flock``) from before the model loads to the end of the run, with the
  owner's PID inside; a lock left by a process that died is reported and taken over.
* A name part longer than :data:`MAX_NAME_BYTES` bytes (UTF-8, its extension counted twice) is shortened to its start, ``~``, 12 hex digits
  of its SHA-256 and its extension: the same name always gives the same short name.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Self

__all__ = [
    "LOCK_NAME",
    "MAX_NAME_BYTES",
    "OWN_ENTRIES",
    "RUN_FILES",
    "SCRATCH_NAME",
    "FolderInUse",
    "OutputLock",
    "clear_scratch",
    "output_names",
    "scratch_dir",
    "short_part",
]

#: The files (and WIDER FACE's folder) a run writes at the top of its output folder for itself, with the
#: built-in formats (:func:`fcndetect.io.sinks.run_files` adds those of every registered format).
RUN_FILES = ("run.json", "detections.jsonl", "detections.json", "images.json", "detections.csv",
             "detections.fddb.txt", "wider")
LOCK_NAME = ".fcndetect.lock"
SCRATCH_NAME = ".fcndetect.tmp"
#: The longest name part (bytes of UTF-8) kept as it is: file systems allow 255, and an output adds its suffix
#: (``.anonymized.<ext>``, ``.json``) and a temporary file its marks.
MAX_NAME_BYTES = 160
#: An extension longer than this (bytes) is not kept apart when a name is shortened.
_MAX_EXT_BYTES = 16


def short_part(part: str, limit: int = MAX_NAME_BYTES) -> str:
    """``part`` (one file or folder name), or, where its UTF-8 bytes and its extension's (an output repeats
    the extension: ``x.png.annotated.png``) are more than ``limit``, its start, ``~``, the first 12 hex digits
    of its SHA-256, and its extension (an extension over 16 bytes is not kept apart, and the start's dots
    become ``_``): the same name always gives the same short name, of at most ``limit`` bytes with its
    extension counted twice."""
    def size(text: str) -> int:
        return len(text.encode("utf-8", "surrogateescape"))

    stem, ext = os.path.splitext(part)
    if size(part) + size(ext) <= limit:
        return part
    if size(ext) > _MAX_EXT_BYTES:
        stem, ext = part.replace(".", "_"), ""
    tag = "~" + hashlib.sha256(part.encode("utf-8", "surrogateescape")).hexdigest()[:12]
    room = limit - size(tag) - 2 * size(ext)
    head = stem.encode("utf-8", "surrogateescape")[:room].decode("utf-8", "ignore")
    return head + tag + ext


def _collides(first: str, nested: bool, reserved: tuple[str, ...]) -> bool:
    """Whether outputs named ``first...`` could land on one of the run's own names: a folder of that name,
    or a file ``first.<suffix>`` for a top-level input."""
    low = first.lower()
    return low in reserved if nested else any(r.startswith(low + ".") for r in reserved)


def output_names(names: Iterable[str], run_files: Iterable[str] = RUN_FILES) -> list[str]:
    """Each input's output name, made safe and unique: every part shortened (:func:`short_part`), a ``~k``
    suffix (``k`` = 2, 3, ...) before the extension of a name whose outputs would land on one of
    ``run_files`` (the run's own files and folders, and then the lock and scratch folder; none: no output
    folder) or on another input's outputs (compared without case, for case-insensitive file systems)."""
    run_files = tuple(run_files)
    reserved = tuple(n.lower() for n in (*run_files, LOCK_NAME, SCRATCH_NAME)) if run_files else ()
    used: set[str] = set()
    out: list[str] = []
    for name in names:
        parts = [short_part(p) for p in name.split("/")]
        first, nested = parts[0], len(parts) > 1
        candidate, k = "/".join(parts), 1
        while candidate.lower() in used or _collides(candidate.split("/")[0], nested, reserved):
            k += 1
            stem, ext = os.path.splitext(first)
            candidate = "/".join([f"{stem}~{k}{ext}", *parts[1:]])
        used.add(candidate.lower())
        out.append(candidate)
    return out


#: Names in an output folder that are a run's machinery, not results: the lock and the scratch folder.
OWN_ENTRIES = frozenset({LOCK_NAME, SCRATCH_NAME})


def scratch_dir(root: Path) -> Path:
    """The folder of ``root``'s temporary files (created when first used)."""
    return Path(root) / SCRATCH_NAME


def clear_scratch(root: Path) -> None:
    """Delete ``root``'s scratch folder and everything in it: files a run started and did not finish."""
    with contextlib.suppress(FileNotFoundError):
        shutil.rmtree(scratch_dir(root))


class FolderInUse(Exception):
    """Another live process holds the output folder's lock (the message names the folder and its PID)."""


#: The output folders (real paths) whose lock this process holds.
_HELD: set[str] = set()


class OutputLock:
    """The advisory lock of an output folder (a context manager): ``DIR/.fcndetect.lock`` created if needed,
    locked with ``fcntl.flock`` (released by the kernel when the process dies), the owner's PID written in
    it, the file removed on release (and the folder, when the lock created it and it is still empty). Where
    the file system has no ``flock``, the PID in the file decides: a live process holds it. ``stale`` is the
    PID a lock file held when it was taken over (its process ended without removing it), else ``None``.

    Raises :class:`FolderInUse` when a live process holds it, ``OSError`` when the folder cannot be created."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.path = self.root / LOCK_NAME
        self.stale: str | None = None
        self._fd: int | None = None
        self._created = False

    @staticmethod
    def held(root: Path) -> bool:
        """Whether this process holds ``root``'s lock."""
        return os.path.realpath(root) in _HELD

    def _in_use(self, owner: str) -> FolderInUse:
        return FolderInUse(f"{self.root}: output folder in use by process {owner or '(unknown)'} "
                           f"(lock file {self.path}); wait for it to finish")

    def acquire(self) -> Self:
        try:
            import fcntl
        except ImportError:  # no flock (Windows): the PID in the file, checked for a live process
            fcntl = None  # type: ignore[assignment]
        if self.root.exists() and not self.root.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, "exists and is not a folder", str(self.root))
        self._created = not self.root.exists()
        self.root.mkdir(parents=True, exist_ok=True)
        for _ in range(100):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                if fcntl is None:
                    raise OSError(errno.ENOSYS, "no flock")
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                owner = _read(fd)
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    os.close(fd)
                    raise self._in_use(owner) from None
                if exc.errno not in (errno.ENOSYS, errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL):
                    os.close(fd)
                    raise
                if owner and _alive(owner):  # a file system without flock: the owner's PID decides
                    os.close(fd)
                    raise self._in_use(owner) from None
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except (FileNotFoundError, NotImplementedError):
                same = False
            if not same:  # its owner removed it between our open and our lock: take the new one
                os.close(fd)
                continue
            self.stale = _read(fd) or None
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, f"{os.getpid()}\n".encode())
            self._fd = fd
            _HELD.add(os.path.realpath(self.root))
            return self
        raise FolderInUse(f"{self.root}: output folder lock {self.path} keeps changing hands")

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        _HELD.discard(os.path.realpath(self.root))
        with contextlib.suppress(OSError):
            os.unlink(self.path)  # before unlocking: a waiting process then sees a new file
        os.close(fd)
        if self._created:  # made for the lock and left empty (a run refused, a model that did not load)
            with contextlib.suppress(OSError):
                self.root.rmdir()

    def __enter__(self) -> Self:
        return self.acquire()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()


def _read(fd: int) -> str:
    """The PID written in a lock file (stripped text; ``""`` when empty or unreadable)."""
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        return os.read(fd, 64).decode("ascii", "replace").strip()
    except OSError:
        return ""


def _alive(owner: str) -> bool:
    """Whether the process ``owner`` (a PID as text) is running (a file system without ``flock``)."""
    try:
        pid = int(owner)
    except ValueError:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    except OSError:
        return False
    return True
