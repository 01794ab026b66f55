"""Expanding command-line sources (files, folders, globs) into image paths, deterministically."""

from __future__ import annotations

import glob
import os
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass

from .images import IMAGE_EXTENSIONS

__all__ = ["SourceItem", "expand_sources", "LOCAL_INPUTS"]


@dataclass(frozen=True)
class SourceItem:
    """One input: an image path to process, or a source that gave an error (``error`` set).

    Attributes:
        path: a usable path: as given, or the folder joined with the file's path inside it.
        root: the folder it was found in (``None`` for a file named directly).
        relative: the path inside ``root`` (or the file name), for output naming.
        error: why the source yields nothing (missing path, empty folder, ...), else ``None``.
    """

    path: str
    root: str | None = None
    relative: str = ""
    error: str | None = None


def _is_image_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def _walk_folder(folder: str) -> Iterator[SourceItem]:
    """Image files under ``folder``, recursively, sorted; symlinked folders are not followed (no loops)."""
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        dirnames.sort()
        names = sorted(filenames + [d for d in dirnames if _is_image_name(d)])
        for name in names:
            if not _is_image_name(name):
                continue  # annotation XML, text files, ... are skipped silently
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, folder)
            yield SourceItem(path=full, root=folder, relative=rel.replace(os.sep, "/"))


def _is_uri(src: str) -> bool:
    """``scheme://...`` (an object-store URI such as ``s3://bucket/key.jpg``)."""
    head, sep, _rest = src.partition("://")
    return bool(sep) and head.isascii() and head[:1].isalpha() and all(c.isalnum() or c in "+.-" for c in head)


#: What the local engine reads, for the error of a URL argument.
LOCAL_INPUTS = ("inputs are local image files, folders and glob patterns (object-store URIs such as "
                "s3://bucket/key.jpg need --engine ray; download http(s) files first)")


def expand_sources(sources: Iterable[str], uri_schemes: Collection[str] = (),
                   supported: str = LOCAL_INPUTS) -> Iterator[SourceItem]:
    """Expand files, folders and glob patterns into :class:`SourceItem` s, each real file once.

    A file named directly is always processed (whatever its extension); a folder is scanned recursively
    for image extensions; a pattern with ``*``, ``?`` or ``[`` is expanded with :mod:`glob` (``**``
    recursive). The same file reached twice (by resolved path) is yielded once. Sources that match
    nothing yield an item with ``error`` set. A ``scheme://`` source that is not a local path is kept as it
    is, unexpanded and unchecked, when its scheme is one of ``uri_schemes`` (an engine that reads remote
    objects); else it gives an error saying what is ``supported``.
    """
    seen: set[str] = set()

    def once(item: SourceItem) -> Iterator[SourceItem]:
        key = os.path.realpath(item.path)
        if key in seen:
            return
        seen.add(key)
        yield item

    for src in sources:
        if os.path.isdir(src):
            found = False
            for item in _walk_folder(src):
                found = True
                yield from once(item)
            if not found:
                yield SourceItem(path=src, error="folder contains no image files")
        elif os.path.lexists(src):
            yield from once(SourceItem(path=src, relative=os.path.basename(src)))
        elif _is_uri(src):
            scheme = src.partition("://")[0].lower()
            if scheme in uri_schemes:
                yield from once(SourceItem(path=src, relative=src.rstrip("/").rsplit("/", 1)[-1]))
            else:
                yield SourceItem(path=src, error=f"{scheme}:// is not supported: {supported}")
        elif any(c in src for c in "*?["):
            matches = sorted(glob.glob(src, recursive=True))
            if not matches:
                yield SourceItem(path=src, error="pattern matches no files")
            for m in matches:
                if os.path.isdir(m):
                    continue
                yield from once(SourceItem(path=m, relative=os.path.basename(m)))
        else:
            yield SourceItem(path=src, error="no such file or folder")
