"""Combined output files of ``--format``: COCO results, CSV, FDDB and WIDER FACE text.

Pure functions: they turn per-image result records (in run order) into strings or JSON-ready objects and
never touch the file system; the caller writes what they return (e.g. with
:func:`fcndetect.io.sinks.atomic_write_text`).

A record is the per-image dict of DESIGN.md / :func:`fcndetect.io.sinks.result_record`::

    {"image": str, "width": int | None, "height": int | None,
     "detections": [{"box": [x1, y1, x2, y2], "score": float, "logit": float, "label": str}],
     "error": None | str}

Ranking: the ``score`` fields of COCO, FDDB and WIDER FACE are what their evaluators sort by, so they get the
detection's ``logit`` (log-odds, unbounded, a monotone function of the probability that never saturates at
1.0) at 5 decimals; a record without ``logit`` (another detector's) keeps its ``score``. CSV
has both columns.

Box convention (input): ``[x1, y1, x2, y2]`` floats in the original image's pixels with continuous edges, so
``[0, 0, W, H]`` is the whole image. Every format here that wants ``[x, y, w, h]`` (COCO, FDDB, WIDER) takes
``x, y = x1, y1`` and ``w, h = x2 - x1, y2 - y1`` on the same continuous axis: no ``+1`` pixel-count
convention is applied. Coordinates are rounded first and width/height computed from the rounded corners,
so ``x + w`` reproduces the rounded ``x2``. Boxes are written as they are in the record (not clipped): a
box partly outside the image keeps its negative or beyond-the-edge coordinates.

Numbers are written at fixed precision (boxes 2 decimals, scores 5, logits 5), never as ``-0.00`` and never through the
locale, so identical records give identical bytes. Non-finite numbers raise :class:`ValueError`.
"""

from __future__ import annotations

import csv
import io
import json
import math
import posixpath
from collections.abc import Mapping, Sequence
from typing import Any

from ..detections import BOX_DECIMALS, LOGIT_DECIMALS, SCORE_DECIMALS

__all__ = [
    "Record",
    "CSV_HEADER",
    "fixed",
    "rounded",
    "ranking_score",
    "xywh",
    "coco_entries",
    "json_text",
    "coco_results",
    "coco_images_json",
    "csv_text",
    "fddb_text",
    "wider_text",
    "wider_relpath",
]

Record = Mapping[str, Any]
"""One image's result record (see the module docstring)."""

#: the five landmarks' columns (MTCNN's order: left eye, right eye, nose, left and right mouth corner)
LANDMARK_COLUMNS: tuple[str, ...] = tuple(f"{p}_{a}" for p in ("left_eye", "right_eye", "nose", "mouth_left",
                                                                  "mouth_right") for a in ("x", "y"))
CSV_HEADER: tuple[str, ...] = ("image", "width", "height", "label", "score", "logit", "x1", "y1", "x2", "y2",
                               *LANDMARK_COLUMNS)


# ----------------------------------------------------------------------------------------------- numbers


def _finite(value: float) -> float:
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"cannot write a non-finite number: {value!r}")
    return v


def fixed(value: float, decimals: int) -> str:
    """``value`` as fixed-point text with ``decimals`` digits (``"%.{decimals}f"``), without a sign on zero:
    ``fixed(-0.001, 2) == "0.00"``. Locale-independent (Python's ``%``-formatting ignores the locale)."""
    text = f"{_finite(value):.{decimals}f}"
    if text.startswith("-") and float(text) == 0.0:
        text = text[1:]
    return text


def rounded(value: float, decimals: int) -> float:
    """``value`` rounded to ``decimals`` places as a float for JSON, with ``-0.0`` turned into ``0.0``."""
    return round(_finite(value), decimals) + 0.0  # -0.0 + 0.0 == +0.0


def xywh(box: Sequence[float], decimals: int = BOX_DECIMALS) -> tuple[float, float, float, float]:
    """``[x1, y1, x2, y2]`` (continuous pixel edges) to ``(x, y, w, h)`` with ``x = x1``, ``w = x2 - x1``;
    corners are rounded to ``decimals`` first and the sizes computed from the rounded corners, then rounded
    again (to drop float noise such as ``32.439999999999998``)."""
    if len(box) != 4:
        raise ValueError(f"a box has 4 numbers [x1, y1, x2, y2], got {list(box)!r}")
    x1, y1, x2, y2 = (rounded(v, decimals) for v in box)
    return x1, y1, rounded(x2 - x1, decimals), rounded(y2 - y1, decimals)


def json_text(value: Any) -> str:
    """Byte-stable JSON text for the COCO files, ending in a newline: a top-level list has one compact
    element per line; a top-level object has one key per line, its list values again one element per line.

    ASCII-only (``ensure_ascii``): pycocotools opens JSON files with the platform's default encoding, so
    escaping non-ASCII file names keeps the files loadable under any locale. NaN/Infinity are refused."""
    return _json_block(value, "") + "\n"


def _json_compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=True, allow_nan=False, separators=(", ", ": "))


def _json_block(value: Any, indent: str) -> str:
    inner = indent + "  "
    if isinstance(value, list) and value:
        return "[\n" + ",\n".join(inner + _json_compact(v) for v in value) + "\n" + indent + "]"
    if isinstance(value, dict) and value:
        items = (inner + _json_compact(str(k)) + ": " + _json_block(v, inner) for k, v in value.items())
        return "{\n" + ",\n".join(items) + "\n" + indent + "}"
    return _json_compact(value)


# ----------------------------------------------------------------------------------------------- helpers


def _ok(record: Record) -> bool:
    return record.get("error") is None


def _detections(record: Record) -> list[Mapping[str, Any]]:
    return list(record.get("detections") or [])


def _line_safe(name: str, what: str) -> str:
    if "\n" in name or "\r" in name:
        raise ValueError(f"{what} {name!r} contains a line break and cannot be written in a line-based format")
    return name


def _box_fields(box: Sequence[float]) -> list[str]:
    """``x y w h`` of a ``[x1, y1, x2, y2]`` box as fixed-precision strings."""
    return [fixed(v, BOX_DECIMALS) for v in xywh(box)]


def _landmark_fields(det: Mapping[str, Any]) -> list[str]:
    """The 10 landmark columns of a detection (empty where it has none)."""
    points = det.get("landmarks")
    if not points:
        return [""] * len(LANDMARK_COLUMNS)
    return [fixed(v, BOX_DECIMALS) for point in points for v in point]


def ranking_score(det: Mapping[str, Any]) -> tuple[float, int]:
    """The value an evaluator should sort a detection by, and its decimals: its ``logit`` when it has one
    (never saturates), else its ``score``."""
    logit = det.get("logit")
    if logit is not None:
        return float(logit), LOGIT_DECIMALS
    return float(det["score"]), SCORE_DECIMALS


def _face_lines(record: Record) -> list[str]:
    """``<left_x top_y width height detection_score>`` lines shared by FDDB and WIDER FACE; the score is
    :func:`ranking_score`."""
    return [" ".join([*_box_fields(d["box"]), fixed(*ranking_score(d))]) for d in _detections(record)]


# ----------------------------------------------------------------------------------------------- COCO


def coco_results(
    records: Sequence[Record], categories: Sequence[str]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """COCO *results* (``DIR/detections.json``), images and categories of a run.

    Args:
        records: per-image records in run order; boxes ``[x1, y1, x2, y2]`` in image pixels, continuous edges.
        categories: label names; category ids are 1-based in this order. Labels met in the detections but
            not listed are appended after them in first-seen order (record order, then detection order), so
            every detection has a category. Duplicate names raise :class:`ValueError`.

    Returns:
        ``(results, images, categories)``:

        - ``results``: ``[{"image_id", "category_id", "bbox": [x, y, w, h], "score"}]`` (the format of
          ``COCO.loadRes``; a video's detection adds its ``track_id``), in record then detection order; ``bbox`` is ``[x1, y1, x2 - x1, y2 - y1]``
          rounded to 2 decimals (corners rounded first); ``score`` is :func:`ranking_score` (the logit at 5
          decimals, else the score at 5); boxes are not clipped.
        - ``images``: ``[{"id", "file_name", "width", "height"}]``; ``file_name`` is the record's ``image``; a
          video's frame record gives one image entry per frame, with its ``frame`` index (and ``time``).
        - ``categories``: ``[{"id", "name"}]``.

    Image ids are 1, 2, 3... over the records *without* an error, in record order (contiguous: a failed
    image leaves no gap); records with an error appear in neither list (their error stays in
    ``detections.jsonl``). A record without an error must have a width and height (else ValueError).
    """
    cat_ids: dict[str, int] = {}
    for name in categories:
        if name in cat_ids:
            raise ValueError(f"duplicate category {name!r}")
        cat_ids[name] = len(cat_ids) + 1

    results: list[dict[str, Any]] = []
    images: list[dict[str, Any]] = []
    for record in records:
        image, entries = coco_entries(record, len(images) + 1, cat_ids)
        if image is not None:
            images.append(image)
            results.extend(entries)
    cats = [{"id": cid, "name": name} for name, cid in cat_ids.items()]
    return results, images, cats


def coco_entries(record: Record, image_id: int, cat_ids: dict[str, int]) -> tuple[dict[str, Any] | None,
                                                                             list[dict[str, Any]]]:
    """One record's COCO image (``None`` for a record with an error) and results, as :func:`coco_results`
    gives them when the record is its ``image_id``-th image without error; labels not in ``cat_ids`` (name ->
    id) are added to it, so records streamed one by one get the ids of the whole run."""
    if not _ok(record):
        return None, []
    width, height = record.get("width"), record.get("height")
    if width is None or height is None:
        raise ValueError(f"record {record.get('image')!r} has no error but no image size")
    image = {"id": image_id, "file_name": str(record["image"]), "width": int(width), "height": int(height)}
    if record.get("frame") is not None:  # a video's frame
        image.update(frame=int(record["frame"]), time=record.get("time"))
    results: list[dict[str, Any]] = []
    for det in _detections(record):
        label = str(det["label"])
        if label not in cat_ids:
            cat_ids[label] = len(cat_ids) + 1
        result = {
            "image_id": image_id,
            "category_id": cat_ids[label],
            "bbox": list(xywh(det["box"])),
            "score": rounded(*ranking_score(det)),
        }
        if det.get("track") is not None:  # a video's detection: its track (as COCO's video datasets name it)
            result["track_id"] = int(det["track"])
        if det.get("landmarks"):  # COCO keypoints: x, y, visibility 2 ("labelled and visible")
            result["keypoints"] = [v for x, y in det["landmarks"] for v in (rounded(x, BOX_DECIMALS),
                                                                             rounded(y, BOX_DECIMALS), 2)]
        results.append(result)
    return image, results


def coco_images_json(images: Sequence[Mapping[str, Any]], categories: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The object of ``DIR/images.json``: ``{"images": [...], "categories": [...]}`` (from
    :func:`coco_results`).

    It is a minimal COCO ground-truth skeleton: ``pycocotools.coco.COCO("images.json").loadRes(
    "detections.json")`` works as is, and adding an ``"annotations"`` list (``{"id", "image_id",
    "category_id", "bbox": [x, y, w, h], "area", "iscrowd"}``) makes it a ground-truth file for ``COCOeval``
    whose image and category ids match the results."""
    return {"images": [dict(i) for i in images], "categories": [dict(c) for c in categories]}


# ----------------------------------------------------------------------------------------------- CSV


def csv_text(records: Sequence[Record], frames: bool | None = None) -> str:
    """CSV of a run: header ``image,width,height,label,score,logit,x1,y1,x2,y2`` and the 10 landmark columns
    (``left_eye_x, left_eye_y, ..., mouth_right_y``, empty for detections without landmarks), then one row
    per detection.

    Boxes are ``x1,y1,x2,y2`` (continuous pixel edges, not clipped) at ``%.2f``, scores at ``%.5f``, logits
    (the ranking key) at ``%.5f`` (empty for a record without one).
    An image without detections gets one row with empty label, score and box fields, so it is not lost.
    When some record is a video's frame (it has ``frame``), or ``frames`` is true (a streamed run that holds a
    video), ``frame`` and ``time`` columns follow ``image`` (empty for the images' rows), and a last column
    ``track`` holds each detection's track id (empty where it has none).
    An image whose record has an error gets no row (the error is in ``detections.jsonl``). Written by the
    :mod:`csv` module (RFC 4180 quoting: a name with a comma or quote is quoted) with ``\\n`` line endings;
    a missing width/height is an empty field.
    """
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    if frames is None:
        frames = any(r.get("frame") is not None for r in records)
    header = (CSV_HEADER[0], "frame", "time", *CSV_HEADER[1:], "track") if frames else CSV_HEADER
    writer.writerow(header)
    for record in records:
        if not _ok(record):
            continue
        width, height = record.get("width"), record.get("height")
        size = ["" if v is None else str(int(v)) for v in (width, height)]
        when = []
        if frames:
            frame, time = record.get("frame"), record.get("time")
            when = ["" if frame is None else str(int(frame)), "" if time is None else fixed(time, 3)]
        head = [str(record["image"]), *when, *size]
        dets = _detections(record)
        if not dets:
            writer.writerow(head + [""] * (len(header) - len(head)))
            continue
        for det in dets:
            box = det["box"]
            if len(box) != 4:
                raise ValueError(f"a box has 4 numbers [x1, y1, x2, y2], got {list(box)!r}")
            writer.writerow(
                head
                + [str(det["label"]), fixed(det["score"], SCORE_DECIMALS)]
                + ["" if det.get("logit") is None else fixed(det["logit"], LOGIT_DECIMALS)]
                + [fixed(v, BOX_DECIMALS) for v in box]
                + _landmark_fields(det)
                + ([] if not frames else ["" if det.get("track") is None else str(int(det["track"]))])
            )
    return buf.getvalue()


# ----------------------------------------------------------------------------------------------- FDDB


def _strip_ext(name: str) -> str:
    stem, _ext = posixpath.splitext(name)
    return stem


def fddb_text(
    records: Sequence[Record],
    *,
    strip_extension: bool = True,
    names: Sequence[str] | None = None,
    include_errors: bool = True,
) -> str:
    """Detections in FDDB's output layout for rectangles (FDDB README, "3. Detection output" / "4a.
    Rectangular regions")::

        <image name i>
        <number of faces in this image =im>
        <left_x top_y width height detection_score>     (one line per face)

    ``left_x top_y`` is ``x1 y1``, ``width height`` is ``x2 - x1, y2 - y1`` (continuous pixel edges, not
    clipped), at ``%.2f``; the score is :func:`ranking_score` (the logit at ``%.5f``, else the score at
    ``%.5f``); single spaces, ``\\n`` line endings. Every detection is
    written whatever its label. An image without detections is written with a count of 0.

    Args:
        records: per-image records in run order (FDDB's evaluator wants the order of its fold list).
        strip_extension: drop the file extension from the name (FDDB names ``2002/07/19/big/img_130`` stand
            for ``originalPics/2002/07/19/big/img_130.jpg``).
        names: names to write instead of each record's ``image`` (one per record), e.g. paths relative to
            ``originalPics/``: FDDB's ``evaluate`` compares each name line verbatim with its list.
        include_errors: write an image whose record has an error as ``name`` / ``0`` (default), since the
            evaluator reads images in lock-step with its list and aborts ("Incompatible annotation and
            detection files") on a missing one, so a failed image counts as missed faces; ``False`` leaves
            such images out.

    Names are written verbatim (FDDB's list reader splits on whitespace, so a name with a space cannot match
    an FDDB list); a name with a line break raises :class:`ValueError`.
    """
    if names is not None and len(names) != len(records):
        raise ValueError(f"{len(names)} names for {len(records)} records")
    lines: list[str] = []
    for k, record in enumerate(records):
        if not _ok(record) and not include_errors:
            continue
        name = str(names[k] if names is not None else record["image"])
        if strip_extension:
            name = _strip_ext(name)
        faces = _face_lines(record) if _ok(record) else []
        lines += [_line_safe(name, "image name"), str(len(faces)), *faces]
    return "".join(line + "\n" for line in lines)


# ----------------------------------------------------------------------------------------------- WIDER FACE


def wider_relpath(name: str) -> str:
    """Path of an image's WIDER FACE result file inside ``DIR/wider/``: the image's ``/``-separated relative
    name with its extension replaced by ``.txt`` (``0--Parade/0_Parade_marchingband_1_5.jpg`` ->
    ``0--Parade/0_Parade_marchingband_1_5.txt``; a name without extension just gets ``.txt``)."""
    return _strip_ext(name.replace("\\", "/")) + ".txt"


def wider_text(record: Record, name: str) -> str:
    """One image's WIDER FACE result file (the layout of the WIDER FACE "Submission" instructions)::

        <image name>                 file name without folder and extension, e.g. 0_Parade_marchingband_1_5
        <number of faces>
        <left top width height score>   (one line per face)

    ``left top`` is ``x1 y1``, ``width height`` is ``x2 - x1, y2 - y1`` (continuous pixel edges, not clipped)
    at ``%.2f``; the score is :func:`ranking_score` (the logit at ``%.5f``, else the score at ``%.5f``);
    single spaces (the Python evaluator splits on ``' '``), ``\\n`` line
    endings. Every detection is written whatever its label. The official MATLAB ``read_pred`` ignores line 1
    and the widely used Python port keys on its base name minus ``.jpg``; the bare stem suits both.

    Args:
        record: the image's record. One with an error is written with 0 faces (both evaluators need a file
            for every image to read it as "no detections"); whether to write it is the caller's choice.
        name: the image's relative name (``/``-separated, e.g. :func:`fcndetect.io.sinks.output_name`),
            the same one given to :func:`wider_relpath`.
    """
    stem = posixpath.basename(_strip_ext(name.replace("\\", "/")))
    faces = _face_lines(record) if _ok(record) else []
    lines = [_line_safe(stem, "image name"), str(len(faces)), *faces]
    return "".join(line + "\n" for line in lines)
