"""Expanding command-line sources (files, folders, globs) into image and video paths, deterministically."""

from __future__ import annotations

import glob
import os
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass

from .images import IMAGE_EXTENSIONS
from .video import VIDEO_EXTENSIONS

__all__ = ["SourceItem", "expand_sources", "LOCAL_INPUTS"]


@dataclass(frozen=True)
class SourceItem:
    """One input: an image or video path to process, or a source that gave an error (``error`` set).

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


_INPUT_EXTENSIONS = IMAGE_EXTENSIONS | VIDEO_EXTENSIONS


def _is_input_name(name: str, videos: bool) -> bool:
    """Whether a folder's entry ``name`` is an input: an image's extension, or with ``videos`` a video's."""
    return os.path.splitext(name)[1].lower() in (_INPUT_EXTENSIONS if videos else IMAGE_EXTENSIONS)


def _walk_folder(folder: str, videos: bool = False) -> Iterator[SourceItem]:
    """Image files (and with ``videos`` video files) under ``folder``, recursively, sorted; symlinked folders
    are not followed (no loops)."""
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        dirnames.sort()
        names = sorted(filenames + [d for d in dirnames if _is_input_name(d, videos)])
        for name in names:
            if not _is_input_name(name, videos):
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
                   supported: str = LOCAL_INPUTS, videos: bool = False) -> Iterator[SourceItem]:
    """Expand files, folders and glob patterns into :class:`SourceItem` s, each real file once.

    A file named directly is always processed (whatever its extension); a folder is scanned recursively
    for image extensions (and with ``videos``, video extensions: :data:`~fcndetect.io.video.VIDEO_EXTENSIONS`); a pattern with ``*``, ``?`` or ``[`` is expanded with :mod:`glob` (``**``
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
            for item in _walk_folder(src, videos):
                found = True
                yield from once(item)
            if not found:
                what = "image or video files" if videos else "image files"
                yield SourceItem(path=src, error=f"folder contains no {what}")
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
