"""Ground-truth annotation readers: dlib imglab XML, ``name x1 y1 x2 y2`` text, COCO, FDDB, WIDER FACE, Pascal VOC.

:func:`load_annotations` returns image key -> ``[N, 4]`` float64 boxes ``[x1, y1, x2, y2]`` in image pixels
with continuous edges (``[0, 0, W, H]`` is the whole image); :func:`detect_format` guesses the format.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from .errors import AnnotationError
from .parsing import (
    add_box,
    all_numbers,
    checked_box,
    content_lines,
    is_int,
    parse_number,
    parse_xml,
    read_lines,
    strip_comment,
    to_arrays,
    xml_number,
)

#: Annotation format names accepted by :func:`load_annotations`.
FORMATS: tuple[str, ...] = ("imglab", "text", "coco", "fddb", "wider", "voc")

_TEXT_LAYOUT = "name x1 y1 x2 y2"
_FDDB_LAYOUT = "major_axis_radius minor_axis_radius angle center_x center_y 1"
_WIDER_LAYOUT = "x y w h blur expression illumination invalid occlusion pose"


def _load_imglab(path: Path) -> dict[str, np.ndarray]:
    """dlib imglab XML: ``<dataset><images><image file='a.jpg'><box top left width height/>``.

    ``[left, top, left + width, top + height]``: imglab's rectangle covers pixels ``left .. left + width - 1``
    inclusive, i.e. continuous edges ``left .. left + width``. Boxes with ``ignore='1'`` are dropped (they
    mark faces the annotator chose not to count; without "ignore region" support they would otherwise
    count as misses). ``<part>`` landmarks are ignored.
    """
    root = parse_xml(path)
    if root.tag != "dataset":
        raise AnnotationError(f"expected an imglab <dataset> root element, got <{root.tag}>", path, root.line)
    out: dict[str, list[list[float]]] = {}
    for images in root.findall("images"):
        for image in images.findall("image"):
            if "file" not in image.attrib:
                raise AnnotationError("<image> has no 'file' attribute", path, image.line)
            add_box(out, image.attrib["file"])
            for box in image.findall("box"):
                if box.attrib.get("ignore", "0").strip().lower() in ("1", "true"):
                    continue
                top, left, width, height = (
                    xml_number(box, k, path, attribute=True) for k in ("top", "left", "width", "height")
                )
                add_box(out, image.attrib["file"], checked_box(left, top, left + width, top + height, path, box.line))
    return to_arrays(out)


def _load_voc_file(path: Path, out: dict[str, list[list[float]]], classes: set[str] | None) -> None:
    """Add one VOC XML file's ``<filename>`` and its objects' boxes (see :func:`_load_voc`) to ``out``."""
    root = parse_xml(path)
    if root.tag != "annotation":
        raise AnnotationError(f"expected a VOC <annotation> root element, got <{root.tag}>", path, root.line)
    filename = root.find("filename")
    if filename is None or not filename.text:
        raise AnnotationError("<annotation> has no <filename>", path, root.line)
    add_box(out, filename.text)
    for obj in root.findall("object"):
        name = obj.find("name")
        if classes is not None and (name is None or name.text not in classes):
            continue
        bndbox = obj.find("bndbox")
        if bndbox is None:
            raise AnnotationError("<object> has no <bndbox>", path, obj.line)
        xmin, ymin, xmax, ymax = (
            xml_number(bndbox, k, path, attribute=False) for k in ("xmin", "ymin", "xmax", "ymax")
        )
        add_box(out, filename.text, checked_box(xmin - 1, ymin - 1, xmax, ymax, path, bndbox.line))


def _load_voc(path: Path, classes: set[str] | None) -> dict[str, np.ndarray]:
    """Pascal VOC: one XML file, or a folder of them (``*.xml`` directly inside it, by sorted name).

    The key is ``<filename>``. VOC pixel coordinates are 1-based and inclusive, so ``<bndbox>`` becomes
    ``[xmin - 1, ymin - 1, xmax, ymax]`` in continuous edges. ``difficult`` / ``truncated`` objects are kept;
    ``classes`` (object ``<name>`` s) filters objects, None keeps all.
    """
    out: dict[str, list[list[float]]] = {}
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() == ".xml" and p.is_file())
        if not files:
            raise AnnotationError("folder holds no VOC .xml files", path)
    else:
        files = [path]
    for file in files:
        _load_voc_file(file, out, classes)
    return to_arrays(out)


def _load_coco(path: Path) -> dict[str, np.ndarray]:
    """COCO instances JSON: ``images[].file_name`` and ``annotations[].bbox`` ``[x, y, w, h]`` -> xyxy.

    All categories are kept. ``iscrowd`` is ignored: crowd annotations count as ordinary boxes (there is no
    "ignore region" notion here). Images without annotations are kept with no boxes. Structural errors
    name the offending ``images[i]`` / ``annotations[j]`` entry (JSON syntax errors carry the line number).
    """
    try:
        obj = json.loads("\n".join(read_lines(path)))
    except json.JSONDecodeError as e:
        raise AnnotationError(f"invalid JSON: {e.msg}", path, e.lineno) from None
    if not isinstance(obj, dict) or not isinstance(obj.get("images"), list) or not isinstance(
        obj.get("annotations"), list
    ):
        raise AnnotationError("expected a COCO object with 'images' and 'annotations' lists", path)
    out: dict[str, list[list[float]]] = {}
    names: dict[object, str] = {}
    for i, image in enumerate(obj["images"]):
        if not isinstance(image, dict) or "id" not in image or not isinstance(image.get("file_name"), str):
            raise AnnotationError(f"images[{i}]: expected an object with 'id' and 'file_name'", path)
        names[image["id"]] = image["file_name"]
        add_box(out, image["file_name"])
    for j, ann in enumerate(obj["annotations"]):
        if not isinstance(ann, dict) or ann.get("image_id") not in names:
            raise AnnotationError(f"annotations[{j}]: missing or unknown 'image_id'", path)
        bbox = ann.get("bbox")
        if not isinstance(bbox, list) or len(bbox) != 4 or any(isinstance(v, (bool, str)) for v in bbox):
            raise AnnotationError(f"annotations[{j}]: 'bbox' must be [x, y, w, h], got {bbox!r}", path)
        x, y, w, h = (parse_number(v, path, None, f"annotations[{j}].bbox") for v in bbox)
        if w < 0 or h < 0:
            raise AnnotationError(f"annotations[{j}]: negative bbox width or height", path)
        add_box(out, names[ann["image_id"]], [x, y, x + w, y + h])
    return to_arrays(out)


def _load_text(path: Path, lines: Sequence[str]) -> dict[str, np.ndarray]:
    """One box per line, ``name x1 y1 x2 y2`` (whitespace separated; names cannot contain spaces).

    ``#`` starts a comment (at the start of a line or after whitespace); blank lines are skipped. An image
    appears once per face, so images without faces cannot be listed.
    """
    out: dict[str, list[list[float]]] = {}
    for lineno, line in enumerate(lines, 1):
        fields = strip_comment(line).split()
        if not fields:
            continue
        if len(fields) != 5:
            raise AnnotationError(f"expected '{_TEXT_LAYOUT}', got {len(fields)} fields", path, lineno)
        x1, y1, x2, y2 = (parse_number(f, path, lineno, n) for f, n in zip(fields[1:], ("x1", "y1", "x2", "y2")))
        add_box(out, fields[0], checked_box(x1, y1, x2, y2, path, lineno))
    return to_arrays(out)


def _records(
    path: Path, lines: Sequence[str], kind: str
) -> Iterator[tuple[int, str, int, list[tuple[int, list[str]]]]]:
    """Yield ``(name line, name, count, [(line, fields)] * count)`` of an FDDB / WIDER style listing.

    For WIDER a count of 0 is followed by one placeholder line of zeros, which is consumed.
    """
    rows = content_lines(lines)
    pos = 0
    while pos < len(rows):
        name_line, name_fields = rows[pos]
        if len(name_fields) != 1:
            raise AnnotationError(f"expected an image name, got {len(name_fields)} fields", path, name_line)
        if pos + 1 >= len(rows):
            raise AnnotationError(f"unexpected end of file: no face count after {name_fields[0]!r}", path, name_line)
        count_line, count_fields = rows[pos + 1]
        if len(count_fields) != 1 or not is_int(count_fields[0]):
            raise AnnotationError(f"expected a face count, got {' '.join(count_fields)!r}", path, count_line)
        count = int(count_fields[0])
        pos += 2
        if pos + count > len(rows):
            got = len(rows) - pos
            raise AnnotationError(
                f"unexpected end of file: {name_fields[0]!r} announces {count} faces, {got} lines follow",
                path,
                rows[-1][0],
            )
        body = rows[pos : pos + count]
        pos += count
        if kind == "wider" and count == 0 and pos < len(rows):
            fields = rows[pos][1]
            if len(fields) > 1 and all_numbers(fields) and all(float(f) == 0 for f in fields):
                pos += 1
        yield name_line, name_fields[0], count, body


def _load_fddb(path: Path, lines: Sequence[str]) -> dict[str, np.ndarray]:
    """FDDB ``ellipseList``: image name, face count, then ``count`` lines of
    ``major_axis_radius minor_axis_radius angle center_x center_y 1`` (the trailing field is optional).

    Each ellipse becomes the axis-aligned bounding box of the rotated ellipse (``angle`` in radians, of the
    major axis from the x axis): half-widths ``sqrt(a² cos²θ + b² sin²θ)`` along x and
    ``sqrt(a² sin²θ + b² cos²θ)`` along y around the centre. That box is larger than the face boxes most
    detectors are trained on, so IoU-based scores are lower than FDDB's own ellipse-overlap protocol.
    FDDB names carry no extension; keys keep them as written (:func:`match_images` matches by stem).
    """
    out: dict[str, list[list[float]]] = {}
    for _, name, _, body in _records(path, lines, "fddb"):
        add_box(out, name)
        for lineno, fields in body:
            if len(fields) not in (5, 6):
                raise AnnotationError(f"expected '{_FDDB_LAYOUT}', got {len(fields)} fields", path, lineno)
            a, b, theta, cx, cy = (parse_number(f, path, lineno, "ellipse") for f in fields[:5])
            if a < 0 or b < 0:
                raise AnnotationError("ellipse radii must not be negative", path, lineno)
            c, s = math.cos(theta), math.sin(theta)
            hx = math.sqrt(a * a * c * c + b * b * s * s)
            hy = math.sqrt(a * a * s * s + b * b * c * c)
            add_box(out, name, [cx - hx, cy - hy, cx + hx, cy + hy])
    return to_arrays(out)


def _load_wider(path: Path, lines: Sequence[str]) -> dict[str, np.ndarray]:
    """WIDER FACE ``wider_face_*_bbx_gt.txt``: image path, face count, then ``count`` lines of
    ``x y w h blur expression illumination invalid occlusion pose`` -> ``[x, y, x + w, y + h]``.

    A count of 0 is followed by one placeholder line of zeros, which is skipped. Boxes flagged
    ``invalid=1`` (and zero-sized ones) are kept, as in the official ``wider_face_*_bbx_gt.txt`` listing;
    the official evaluation instead uses the per-difficulty ``.mat`` files.
    """
    out: dict[str, list[list[float]]] = {}
    for _, name, _, body in _records(path, lines, "wider"):
        add_box(out, name)
        for lineno, fields in body:
            if len(fields) != 10:
                raise AnnotationError(f"expected '{_WIDER_LAYOUT}', got {len(fields)} fields", path, lineno)
            x, y, w, h = (parse_number(f, path, lineno, n) for f, n in zip(fields[:4], "xywh"))
            for f in fields[4:]:
                parse_number(f, path, lineno, "attribute")
            if w < 0 or h < 0:
                raise AnnotationError("negative box width or height", path, lineno)
            add_box(out, name, [x, y, x + w, y + h])
    return to_arrays(out)


def _sniff_text(path: Path, lines: Sequence[str]) -> str:
    """``fddb`` / ``wider`` for a listing with a count on its 2nd content line (by its box lines' field
    count), else ``text``."""
    rows = [(i, strip_comment(line).split()) for i, line in enumerate(lines, 1)]
    rows = [(i, f) for i, f in rows if f]
    if len(rows) >= 2 and len(rows[1][1]) == 1 and is_int(rows[1][1][0]):
        for _, fields in rows[:2000]:
            if len(fields) > 1 and all_numbers(fields):
                if len(fields) == 10:
                    return "wider"
                if len(fields) in (5, 6):
                    return "fddb"
                break
        raise AnnotationError(
            "looks like an FDDB / WIDER listing (a count on line 2) but no ellipse (6 numbers) or WIDER box "
            f"(10 numbers) line was found; pass the format explicitly (one of {', '.join(FORMATS)})",
            path,
        )
    return "text"


def detect_format(path: str | os.PathLike[str]) -> str:
    """Guess the annotation format of ``path`` (one of :data:`FORMATS`) from its content.

    A directory is ``voc``; an XML file is ``imglab`` (root ``<dataset>``) or ``voc`` (root ``<annotation>``);
    JSON with an ``annotations`` list is ``coco``; a text file whose 2nd non-empty line is an integer is
    ``fddb`` if its box lines have 5-6 numbers, ``wider`` if 10; any other text file is ``text``.

    Raises:
        AnnotationError: the content fits none of the formats.
    """
    path = Path(path)
    if path.is_dir():
        return "voc"
    lines = read_lines(path)
    head = "\n".join(lines[:50]).lstrip()
    if head.startswith("<"):
        root = parse_xml(path)
        if root.tag == "dataset":
            return "imglab"
        if root.tag == "annotation":
            return "voc"
        raise AnnotationError(f"unknown XML annotation root <{root.tag}> (expected <dataset> or <annotation>)", path)
    if head.startswith("{") or path.suffix.lower() == ".json":
        try:
            obj = json.loads("\n".join(lines))
        except json.JSONDecodeError as e:
            raise AnnotationError(f"invalid JSON: {e.msg}", path, e.lineno) from None
        if isinstance(obj, dict) and "annotations" in obj:
            return "coco"
        raise AnnotationError("JSON file is not COCO (no 'annotations' key)", path)
    return _sniff_text(path, lines)


def load_annotations(
    path: str | os.PathLike[str],
    format: str | None = None,
    *,
    voc_classes: set[str] | None = None,
) -> dict[str, np.ndarray]:
    """Load ground-truth boxes.

    Formats (see :data:`FORMATS`; None auto-detects with :func:`detect_format`):

    * ``imglab``: dlib imglab XML; ``[left, top, left + width, top + height]``; ``ignore='1'`` boxes dropped.
    * ``text``: ``name x1 y1 x2 y2`` per face, ``#`` comments (CMU+MIT style listings).
    * ``coco``: COCO instances JSON, ``bbox`` xywh -> xyxy; ``iscrowd`` ignored (crowd boxes kept).
    * ``fddb``: FDDB ellipse lists; each ellipse -> bounding box of the rotated ellipse; keys have no extension.
    * ``wider``: WIDER FACE ``bbx_gt.txt``; ``invalid=1`` boxes kept.
    * ``voc``: Pascal VOC XML file or folder of them; 1-based inclusive -> ``[xmin-1, ymin-1, xmax, ymax]``.

    Boxes are used as given, even where they extend past the image. LF, CRLF and CR line endings work.

    Args:
        path: annotation file (or, for ``voc``, a folder of XML files).
        format: one of :data:`FORMATS`, or None to auto-detect.
        voc_classes: for ``voc``, the object names to keep; None keeps all.

    Returns:
        image key -> ``[N, 4]`` float64 xyxy boxes, in file order. The key is the image path as written in the
        annotation, normalised by :func:`normalize_key` (``/`` separators, no leading ``./``); ``N`` may be 0
        for images listed without faces. Repeated keys accumulate their boxes.

    Raises:
        AnnotationError: malformed content (message names the file and line), or unknown ``format``.
        FileNotFoundError: ``path`` does not exist.
        ValueError: ``voc_classes`` given for another format.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"annotation file not found: {path}")
    if format is None:
        format = detect_format(path)
    if format not in FORMATS:
        raise AnnotationError(f"unknown annotation format {format!r}; valid formats: {', '.join(FORMATS)}", path)
    if voc_classes is not None and format != "voc":
        raise ValueError(f"voc_classes applies to the 'voc' format only, not {format!r}")
    if format == "voc":
        return _load_voc(path, None if voc_classes is None else set(voc_classes))
    if path.is_dir():
        raise AnnotationError(f"is a folder; only the 'voc' format reads folders, not {format!r}", path)
    if format == "imglab":
        return _load_imglab(path)
    if format == "coco":
        return _load_coco(path)
    lines = read_lines(path)
    if format == "fddb":
        return _load_fddb(path, lines)
    if format == "wider":
        return _load_wider(path, lines)
    return _load_text(path, lines)

