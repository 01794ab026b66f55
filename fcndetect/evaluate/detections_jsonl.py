"""Detection readers: fcndetect's JSON Lines output (or any detector's in that layout), with each detection's
ranking key: its ``logit`` where the record has one, else its ``score``.

Why the logit: ``score = sigmoid(logit)`` is a probability that saturates (written at 5 decimals, most
confident faces read exactly ``1.0``), so scores alone cannot rank them; the logit is unbounded and keeps the
order. Other detectors' files carry only ``score`` (of any range, e.g. negative Haar cascade scores).

Boxes are ``float64`` ``[D, 4]`` ``[x1, y1, x2, y2]`` in image pixels with continuous edges (``[0, 0, W, H]``
is the whole image).
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import AnnotationError
from .parsing import checked_box, is_real, parse_number, read_lines


@dataclass(frozen=True)
class DetectionsFile:
    """What a detections JSON Lines file holds (see :func:`read_detections_jsonl`).

    Attributes:
        detections: image string as written -> ``(boxes [D, 4] float64 xyxy, ranking keys [D] float64)``.
        errors: each failed image -> its error text.
        ranking: ``"logit"`` or ``"score"``, the field the ranking keys come from; None when the file holds
            no detection.
    """

    detections: dict[str, tuple[np.ndarray, np.ndarray]]
    errors: dict[str, str]
    ranking: str | None


def detections_from_records(
    records: Sequence[object],
    *,
    labels: set[str] | None = None,
    ranking: str | None = None,
) -> tuple[np.ndarray, np.ndarray, str | None]:
    """One image's detection records as arrays, each detection ranked by its ``logit`` if it has one (a
    number; ``null`` counts as absent), else by its ``score``.

    Args:
        records: ``[{"box": [x1, y1, x2, y2], "score": float, "logit": float (optional), "label": str, ...}]``,
            as in a JSON Lines line or ``Detections.to_records()``; other keys are ignored.
        labels: keep only detections whose ``label`` is in this set; None keeps all.
        ranking: the key earlier records ranked by (``"logit"`` or ``"score"``), or None if not yet known.
            Logits and scores are not comparable, so a detection that would rank by the other key is refused.

    Returns:
        ``(boxes [D, 4] float64 xyxy, ranking keys [D] float64, ranking)``: ``ranking`` is the key these
        records rank by, or the ``ranking`` given when no detection is kept.

    Raises:
        AnnotationError: a malformed record, or a mix of records with and without a logit.
    """
    return _parse_records(records, labels, ranking, None, None)


def _parse_records(
    records: Sequence[object], labels: set[str] | None, ranking: str | None, path: Path | None, line: int | None
) -> tuple[np.ndarray, np.ndarray, str | None]:
    """:func:`detections_from_records`, with errors located at ``path:line`` where given."""
    boxes: list[list[float]] = []
    keys: list[float] = []
    for k, det in enumerate(records):
        what = f"detections[{k}]"
        if not isinstance(det, Mapping):
            raise AnnotationError(f"{what}: expected an object", path, line)
        if labels is not None and det.get("label") not in labels:
            continue
        box = det.get("box")
        if not isinstance(box, list) or len(box) != 4 or any(not is_real(v) for v in box):
            raise AnnotationError(f"{what}: 'box' must be [x1, y1, x2, y2], got {box!r}", path, line)
        x1, y1, x2, y2 = (parse_number(v, path, line, f"{what}.box") for v in box)
        boxes.append(checked_box(x1, y1, x2, y2, path, line))
        name, value = _ranking_key(det, what, path, line)
        if ranking is not None and name != ranking:
            raise AnnotationError(
                f"{what}: ranks by its {name!r} but earlier detections rank by {ranking!r}; logits and scores "
                "cannot be ranked together, so either every detection has a 'logit' or none does",
                path,
                line,
            )
        ranking = name
        keys.append(value)
    return np.asarray(boxes, np.float64).reshape(-1, 4), np.asarray(keys, np.float64), ranking


def _ranking_key(det: Mapping[str, object], what: str, path: Path | None, line: int | None) -> tuple[str, float]:
    """``("logit", logit)`` where ``det`` has a non-null ``logit``, else ``("score", score)``."""
    name = "logit" if det.get("logit") is not None else "score"
    value = det.get(name)
    if not is_real(value):
        raise AnnotationError(f"{what}: {name!r} must be a number, got {value!r}", path, line)
    return name, parse_number(value, path, line, f"{what}.{name}")


def read_detections_jsonl(path: str | os.PathLike[str], *, labels: set[str] | None = None) -> DetectionsFile:
    """Read detections from JSON Lines: the detections, the images that failed, and the ranking key.

    Each non-blank line is an object ``{"image": str, "detections": [{"box": [x1, y1, x2, y2], "score": float,
    "logit": float, ...}, ...]}``; other keys are ignored. Objects with a non-null ``error`` field are skipped
    and returned in :attr:`DetectionsFile.errors`. Each detection is ranked by its ``logit`` where it has one
    (fcndetect writes it: unbounded, it never saturates as the probability ``score`` does), else by its
    ``score``, which may have any (finite) range, e.g. negative Haar cascade scores. A file must use one key
    throughout (see :func:`detections_from_records`).

    Args:
        path: the ``.jsonl`` file.
        labels: keep only detections whose ``label`` is in this set; None keeps all.

    Returns:
        :class:`DetectionsFile`. An image listed both with an error and with detections keeps its detections
        and is not in ``errors``.

    Raises:
        AnnotationError: malformed line (message names the file and line), an image listed twice with
            detections, or detections with and without a logit in one file.
    """
    path = Path(path)
    detections: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    errors: dict[str, str] = {}
    ranking: str | None = None
    for lineno, line in enumerate(read_lines(path), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise AnnotationError(f"invalid JSON: {e.msg}", path, lineno) from None
        if not isinstance(obj, dict) or not isinstance(obj.get("image"), str):
            raise AnnotationError("expected an object with an 'image' string", path, lineno)
        image = obj["image"]
        if obj.get("error") is not None:
            if image not in detections:
                errors[image] = str(obj["error"])
            continue
        dets = obj.get("detections")
        if not isinstance(dets, list):
            raise AnnotationError("expected a 'detections' list", path, lineno)
        if image in detections:
            raise AnnotationError(f"image {image!r} is listed twice", path, lineno)
        boxes, keys, ranking = _parse_records(dets, labels, ranking, path, lineno)
        detections[image] = (boxes, keys)
        errors.pop(image, None)
    return DetectionsFile(detections, errors, ranking)


def load_detections_jsonl_with_errors(
    path: str | os.PathLike[str],
    *,
    labels: set[str] | None = None,
) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], dict[str, str]]:
    """Read detections from JSON Lines, also returning the images that failed (:func:`read_detections_jsonl`
    without the ranking key's name).

    Each detection is ranked by its ``logit`` where the record has one, else by its ``score``.

    Returns:
        ``(detections, errors)``: ``detections`` maps the image string as written to ``(boxes [D, 4] float64
        xyxy, ranking keys [D] float64)`` (logits, or scores where the file has no logits); ``errors`` maps each
        failed image to its error text.

    Raises:
        AnnotationError: as :func:`read_detections_jsonl`.
    """
    read = read_detections_jsonl(path, labels=labels)
    return read.detections, read.errors


def load_detections_jsonl(
    path: str | os.PathLike[str],
    *,
    labels: set[str] | None = None,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Like :func:`load_detections_jsonl_with_errors`, returning only the detections: image -> ``(boxes
    [D, 4] float64 xyxy, ranking keys [D] float64)``, each detection's ``logit`` where it has one, else its
    ``score``.

    Images whose line carries a non-null ``error`` are skipped; a :class:`UserWarning` counts and names them.
    Use :func:`load_detections_jsonl_with_errors` to get them as data.
    """
    detections, errors = load_detections_jsonl_with_errors(path, labels=labels)
    if errors:
        names = ", ".join(list(errors)[:3]) + (" ..." if len(errors) > 3 else "")
        warnings.warn(f"{path}: skipped {len(errors)} image(s) that failed: {names}", stacklevel=2)
    return detections
