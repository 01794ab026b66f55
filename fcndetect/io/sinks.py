"""Output sinks: JSON Lines records and atomic file writes (no partial file is ever left behind)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from ..detections import Detections

__all__ = ["result_record", "dumps_record", "atomic_write_bytes", "atomic_write_text", "output_name", "OutputDir"]


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


def dumps_record(record: dict[str, object]) -> str:
    """One JSON line (no newline), byte-stable: fixed key order and numbers rounded upstream."""
    return json.dumps(record, ensure_ascii=False, separators=(", ", ": "))


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same folder and a rename."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
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


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def output_name(item_path: str, relative: str, root: str | None) -> str:
    """Relative output name of an input (``/``-separated): its path inside its source folder, or the file
    name for a file named directly (see :meth:`OutputDir.unique` for clashes)."""
    rel = relative if root is not None else os.path.basename(item_path)
    parts = [p for p in rel.replace(os.sep, "/").split("/") if p not in ("", ".", "..")]
    return "/".join(parts) or os.path.basename(item_path)


class OutputDir:
    """Per-image files under ``-o DIR``: ``<name>.json``, ``<name>.annotated<ext>``, ``<name>.heatmap<ext>``
    (``<name>`` keeps the image's extension, so ``a/x.jpg`` and ``a/x.png`` never collide), plus
    ``detections.jsonl`` with every image's record, written atomically when the run ends."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.records: list[str] = []
        self._used: set[str] = set()

    def unique(self, name: str) -> str:
        """``name``, or ``name`` with ``~2``, ``~3``... before its extension when an earlier input of this
        run already wrote it (two files named directly with the same name): deterministic for a given
        order of inputs."""
        candidate, k = name, 1
        while candidate.lower() in self._used:
            k += 1
            stem, ext = os.path.splitext(name)
            candidate = f"{stem}~{k}{ext}"
        self._used.add(candidate.lower())
        return candidate

    def paths(self, name: str) -> dict[str, Path]:
        ext = os.path.splitext(name)[1] or ".png"
        base = self.root / name
        return {
            "json": base.with_name(base.name + ".json"),
            "annotated": base.with_name(base.name + ".annotated" + ext),
            "heatmap": base.with_name(base.name + ".heatmap" + ext),
        }

    def write_image(self, name: str, record: dict[str, object], annotated: bytes | None, heatmap: bytes | None) -> None:
        p = self.paths(name)
        if annotated is not None:
            atomic_write_bytes(p["annotated"], annotated)
        if heatmap is not None:
            atomic_write_bytes(p["heatmap"], heatmap)
        atomic_write_text(p["json"], dumps_record(record) + "\n")  # last: its presence marks completion

    def add_record(self, line: str) -> None:
        self.records.append(line)

    def close(self) -> None:
        atomic_write_text(self.root / "detections.jsonl", "".join(r + "\n" for r in self.records))
