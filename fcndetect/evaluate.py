"""Evaluation of detections against ground-truth boxes: annotation loaders, matching and metrics.

Boxes everywhere are ``float64`` arrays ``[N, 4]`` ``[x1, y1, x2, y2]`` in image pixels with continuous
edges (``[0, 0, W, H]`` is the whole image), and must have ``x2 >= x1`` and ``y2 >= y1``.

The module depends only on the standard library and numpy (matplotlib is imported lazily by
:func:`plot_curves`), so it can be used on its own.

Pipeline::

    gt = load_annotations("wider_face_val_bbx_gt.txt")          # {gt_key: boxes [G, 4]}
    dets = load_detections_jsonl("out.jsonl")                   # {image: (boxes [D, 4], scores [D])}
    report = evaluate(dets, gt, iou_thresholds=(0.5,))
    print(format_table(report))
    json.dumps(report.to_json())
"""

from __future__ import annotations

import json
import math
import os
import re
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from xml.parsers import expat

import numpy as np

__all__ = [
    "FORMATS",
    "AnnotationError",
    "AmbiguousMatchError",
    "ThresholdResult",
    "ImageResult",
    "EvalReport",
    "load_annotations",
    "detect_format",
    "load_detections_jsonl",
    "load_detections_jsonl_with_errors",
    "normalize_key",
    "match_images",
    "box_iou",
    "match_image",
    "evaluate",
    "format_table",
    "plot_curves",
]

#: Annotation format names accepted by :func:`load_annotations`.
FORMATS: tuple[str, ...] = ("imglab", "text", "coco", "fddb", "wider", "voc")

JSON_DECIMALS = 6

_TEXT_LAYOUT = "name x1 y1 x2 y2"
_FDDB_LAYOUT = "major_axis_radius minor_axis_radius angle center_x center_y 1"
_WIDER_LAYOUT = "x y w h blur expression illumination invalid occlusion pose"


# ----------------------------------------------------------------------------------------------------------
# Errors


class AnnotationError(ValueError):
    """Malformed annotation or detection file.

    The message names the file and, where applicable, the 1-based line number, as
    ``"gt.txt:7: expected 'name x1 y1 x2 y2', got 3 fields"``.

    Attributes:
        path: the offending file (as given), or None.
        line: 1-based line number, or None.
        reason: the message without the location prefix.
    """

    def __init__(self, message: str, path: str | os.PathLike[str] | None = None, line: int | None = None):
        self.path = None if path is None else os.fspath(path)
        self.line = line
        self.reason = message
        if self.path is not None:
            location = self.path if line is None else f"{self.path}:{line}"
            message = f"{location}: {message}"
        super().__init__(message)


class AmbiguousMatchError(ValueError):
    """Some detection images match several ground-truth keys equally well (see :func:`match_images`).

    Attributes:
        ambiguous: detection image -> the equally good ground-truth keys it could belong to (or, when several
            detection images compete for one ground-truth key, each of them -> ``[that key]``).
    """

    def __init__(self, ambiguous: Mapping[str, list[str]]):
        self.ambiguous = dict(ambiguous)
        examples = "; ".join(f"{d!r} -> {c!r}" for d, c in list(self.ambiguous.items())[:5])
        more = f" (and {len(self.ambiguous) - 5} more)" if len(self.ambiguous) > 5 else ""
        super().__init__(
            f"{len(self.ambiguous)} detection image(s) match ground-truth images ambiguously: {examples}{more}; "
            "write the detection image paths so that they end with the annotation paths"
        )


# ----------------------------------------------------------------------------------------------------------
# Small helpers


def normalize_key(key: str) -> str:
    """Normalise an image path for matching: ``\\`` -> ``/``, repeated ``/`` collapsed, leading ``./`` removed."""
    key = re.sub(r"/{2,}", "/", key.strip().replace("\\", "/"))
    while key.startswith("./"):
        key = key[2:]
    return key


def _read_lines(path: Path) -> list[str]:
    """Lines of a text file (UTF-8 with optional BOM, else Latin-1), any of LF / CRLF / CR endings."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


def _number(token: str, path: Path, line: int | None, what: str) -> float:
    try:
        value = float(token)
    except (TypeError, ValueError):
        raise AnnotationError(f"{what}: expected a number, got {token!r}", path, line) from None
    if not math.isfinite(value):
        raise AnnotationError(f"{what}: expected a finite number, got {token!r}", path, line)
    return value


def _checked_box(x1: float, y1: float, x2: float, y2: float, path: Path, line: int | None) -> list[float]:
    if x2 < x1 or y2 < y1:
        raise AnnotationError(f"box [{x1:g}, {y1:g}, {x2:g}, {y2:g}] has a negative width or height", path, line)
    return [x1, y1, x2, y2]


def _add(out: dict[str, list[list[float]]], key: str, box: list[float] | None = None) -> None:
    boxes = out.setdefault(normalize_key(key), [])
    if box is not None:
        boxes.append(box)


def _to_arrays(out: Mapping[str, list[list[float]]]) -> dict[str, np.ndarray]:
    return {k: np.asarray(v, dtype=np.float64).reshape(-1, 4) for k, v in out.items()}


def _is_int(token: str) -> bool:
    return re.fullmatch(r"[+]?\d+", token) is not None


def _all_numbers(fields: Sequence[str]) -> bool:
    try:
        for f in fields:
            float(f)
    except ValueError:
        return False
    return True


# ----------------------------------------------------------------------------------------------------------
# XML with line numbers (xml.etree does not keep them)


@dataclass
class _Node:
    tag: str
    attrib: dict[str, str]
    line: int
    children: list[_Node] = field(default_factory=list)
    parts: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(self.parts).strip()

    def find(self, tag: str) -> _Node | None:
        return next((c for c in self.children if c.tag == tag), None)

    def findall(self, tag: str) -> list[_Node]:
        return [c for c in self.children if c.tag == tag]


def _parse_xml(path: Path) -> _Node:
    """Parse an XML file into ``_Node`` s that remember their start line; errors carry expat's line."""
    parser = expat.ParserCreate()
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    stack: list[_Node] = []
    roots: list[_Node] = []

    def start(tag: str, attrib: dict[str, str]) -> None:
        node = _Node(tag, attrib, parser.CurrentLineNumber)
        (stack[-1].children if stack else roots).append(node)
        stack.append(node)

    def end(tag: str) -> None:
        stack.pop()

    def chars(data: str) -> None:
        if stack:
            stack[-1].parts.append(data)

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = chars
    try:
        parser.Parse(path.read_bytes(), True)
    except expat.ExpatError as e:
        raise AnnotationError(f"invalid XML: {expat.ErrorString(e.code)}", path, e.lineno) from None
    return roots[0]


def _xml_number(node: _Node, name: str, path: Path, *, attribute: bool) -> float:
    if attribute:
        if name not in node.attrib:
            raise AnnotationError(f"<{node.tag}> has no '{name}' attribute", path, node.line)
        return _number(node.attrib[name], path, node.line, f"<{node.tag}> {name}")
    child = node.find(name)
    if child is None:
        raise AnnotationError(f"<{node.tag}> has no <{name}>", path, node.line)
    return _number(child.text, path, child.line, f"<{name}>")


# ----------------------------------------------------------------------------------------------------------
# Annotation formats


def _load_imglab(path: Path) -> dict[str, np.ndarray]:
    """dlib imglab XML: ``<dataset><images><image file='a.jpg'><box top left width height/>``.

    ``[left, top, left + width, top + height]``: imglab's rectangle covers pixels ``left .. left + width - 1``
    inclusive, i.e. continuous edges ``left .. left + width``. Boxes with ``ignore='1'`` are dropped (they
    mark faces the annotator chose not to count; without "ignore region" support they would otherwise
    count as misses). ``<part>`` landmarks are ignored.
    """
    root = _parse_xml(path)
    if root.tag != "dataset":
        raise AnnotationError(f"expected an imglab <dataset> root element, got <{root.tag}>", path, root.line)
    out: dict[str, list[list[float]]] = {}
    for images in root.findall("images"):
        for image in images.findall("image"):
            if "file" not in image.attrib:
                raise AnnotationError("<image> has no 'file' attribute", path, image.line)
            _add(out, image.attrib["file"])
            for box in image.findall("box"):
                if box.attrib.get("ignore", "0").strip().lower() in ("1", "true"):
                    continue
                top, left, width, height = (
                    _xml_number(box, k, path, attribute=True) for k in ("top", "left", "width", "height")
                )
                _add(out, image.attrib["file"], _checked_box(left, top, left + width, top + height, path, box.line))
    return _to_arrays(out)


def _load_voc_file(path: Path, out: dict[str, list[list[float]]], classes: set[str] | None) -> None:
    root = _parse_xml(path)
    if root.tag != "annotation":
        raise AnnotationError(f"expected a VOC <annotation> root element, got <{root.tag}>", path, root.line)
    filename = root.find("filename")
    if filename is None or not filename.text:
        raise AnnotationError("<annotation> has no <filename>", path, root.line)
    _add(out, filename.text)
    for obj in root.findall("object"):
        name = obj.find("name")
        if classes is not None and (name is None or name.text not in classes):
            continue
        bndbox = obj.find("bndbox")
        if bndbox is None:
            raise AnnotationError("<object> has no <bndbox>", path, obj.line)
        xmin, ymin, xmax, ymax = (
            _xml_number(bndbox, k, path, attribute=False) for k in ("xmin", "ymin", "xmax", "ymax")
        )
        _add(out, filename.text, _checked_box(xmin - 1, ymin - 1, xmax, ymax, path, bndbox.line))


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
    return _to_arrays(out)


def _load_coco(path: Path) -> dict[str, np.ndarray]:
    """COCO instances JSON: ``images[].file_name`` and ``annotations[].bbox`` ``[x, y, w, h]`` -> xyxy.

    All categories are kept. ``iscrowd`` is ignored: crowd annotations count as ordinary boxes (there is no
    "ignore region" notion here). Images without annotations are kept with no boxes. Structural errors
    name the offending ``images[i]`` / ``annotations[j]`` entry (JSON syntax errors carry the line number).
    """
    try:
        obj = json.loads("\n".join(_read_lines(path)))
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
        _add(out, image["file_name"])
    for j, ann in enumerate(obj["annotations"]):
        if not isinstance(ann, dict) or ann.get("image_id") not in names:
            raise AnnotationError(f"annotations[{j}]: missing or unknown 'image_id'", path)
        bbox = ann.get("bbox")
        if not isinstance(bbox, list) or len(bbox) != 4 or any(isinstance(v, (bool, str)) for v in bbox):
            raise AnnotationError(f"annotations[{j}]: 'bbox' must be [x, y, w, h], got {bbox!r}", path)
        x, y, w, h = (_number(v, path, None, f"annotations[{j}].bbox") for v in bbox)
        if w < 0 or h < 0:
            raise AnnotationError(f"annotations[{j}]: negative bbox width or height", path)
        _add(out, names[ann["image_id"]], [x, y, x + w, y + h])
    return _to_arrays(out)


def _content_lines(lines: Sequence[str]) -> list[tuple[int, list[str]]]:
    """``(1-based line number, whitespace-split fields)`` of the non-blank lines."""
    return [(i, line.split()) for i, line in enumerate(lines, 1) if line.strip()]


def _strip_comment(line: str) -> str:
    """Cut a ``#`` comment starting the line or preceded by whitespace."""
    return re.split(r"(?:^|(?<=\s))#", line, maxsplit=1)[0]


def _load_text(path: Path, lines: Sequence[str]) -> dict[str, np.ndarray]:
    """One box per line, ``name x1 y1 x2 y2`` (whitespace separated; names cannot contain spaces).

    ``#`` starts a comment (at the start of a line or after whitespace); blank lines are skipped. An image
    appears once per face, so images without faces cannot be listed.
    """
    out: dict[str, list[list[float]]] = {}
    for lineno, line in enumerate(lines, 1):
        fields = _strip_comment(line).split()
        if not fields:
            continue
        if len(fields) != 5:
            raise AnnotationError(f"expected '{_TEXT_LAYOUT}', got {len(fields)} fields", path, lineno)
        x1, y1, x2, y2 = (_number(f, path, lineno, n) for f, n in zip(fields[1:], ("x1", "y1", "x2", "y2")))
        _add(out, fields[0], _checked_box(x1, y1, x2, y2, path, lineno))
    return _to_arrays(out)


def _records(
    path: Path, lines: Sequence[str], kind: str
) -> Iterator[tuple[int, str, int, list[tuple[int, list[str]]]]]:
    """Yield ``(name line, name, count, [(line, fields)] * count)`` of an FDDB / WIDER style listing.

    For WIDER a count of 0 is followed by one placeholder line of zeros, which is consumed.
    """
    rows = _content_lines(lines)
    pos = 0
    while pos < len(rows):
        name_line, name_fields = rows[pos]
        if len(name_fields) != 1:
            raise AnnotationError(f"expected an image name, got {len(name_fields)} fields", path, name_line)
        if pos + 1 >= len(rows):
            raise AnnotationError(f"unexpected end of file: no face count after {name_fields[0]!r}", path, name_line)
        count_line, count_fields = rows[pos + 1]
        if len(count_fields) != 1 or not _is_int(count_fields[0]):
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
            if len(fields) > 1 and _all_numbers(fields) and all(float(f) == 0 for f in fields):
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
        _add(out, name)
        for lineno, fields in body:
            if len(fields) not in (5, 6):
                raise AnnotationError(f"expected '{_FDDB_LAYOUT}', got {len(fields)} fields", path, lineno)
            a, b, theta, cx, cy = (_number(f, path, lineno, "ellipse") for f in fields[:5])
            if a < 0 or b < 0:
                raise AnnotationError("ellipse radii must not be negative", path, lineno)
            c, s = math.cos(theta), math.sin(theta)
            hx = math.sqrt(a * a * c * c + b * b * s * s)
            hy = math.sqrt(a * a * s * s + b * b * c * c)
            _add(out, name, [cx - hx, cy - hy, cx + hx, cy + hy])
    return _to_arrays(out)


def _load_wider(path: Path, lines: Sequence[str]) -> dict[str, np.ndarray]:
    """WIDER FACE ``wider_face_*_bbx_gt.txt``: image path, face count, then ``count`` lines of
    ``x y w h blur expression illumination invalid occlusion pose`` -> ``[x, y, x + w, y + h]``.

    A count of 0 is followed by one placeholder line of zeros, which is skipped. Boxes flagged
    ``invalid=1`` (and zero-sized ones) are kept, as in the official ``wider_face_*_bbx_gt.txt`` listing;
    the official evaluation instead uses the per-difficulty ``.mat`` files.
    """
    out: dict[str, list[list[float]]] = {}
    for _, name, _, body in _records(path, lines, "wider"):
        _add(out, name)
        for lineno, fields in body:
            if len(fields) != 10:
                raise AnnotationError(f"expected '{_WIDER_LAYOUT}', got {len(fields)} fields", path, lineno)
            x, y, w, h = (_number(f, path, lineno, n) for f, n in zip(fields[:4], "xywh"))
            for f in fields[4:]:
                _number(f, path, lineno, "attribute")
            if w < 0 or h < 0:
                raise AnnotationError("negative box width or height", path, lineno)
            _add(out, name, [x, y, x + w, y + h])
    return _to_arrays(out)


def _sniff_text(path: Path, lines: Sequence[str]) -> str:
    rows = [(i, _strip_comment(line).split()) for i, line in enumerate(lines, 1)]
    rows = [(i, f) for i, f in rows if f]
    if len(rows) >= 2 and len(rows[1][1]) == 1 and _is_int(rows[1][1][0]):
        for _, fields in rows[:2000]:
            if len(fields) > 1 and _all_numbers(fields):
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
    lines = _read_lines(path)
    head = "\n".join(lines[:50]).lstrip()
    if head.startswith("<"):
        root = _parse_xml(path)
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
    lines = _read_lines(path)
    if format == "fddb":
        return _load_fddb(path, lines)
    if format == "wider":
        return _load_wider(path, lines)
    return _load_text(path, lines)


# ----------------------------------------------------------------------------------------------------------
# Detections


def load_detections_jsonl_with_errors(
    path: str | os.PathLike[str],
    *,
    labels: set[str] | None = None,
) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], dict[str, str]]:
    """Read detections from JSON Lines, also returning the images that failed.

    Each non-blank line is an object ``{"image": str, "detections": [{"box": [x1, y1, x2, y2], "score": float,
    ...}, ...]}``; other keys are ignored. Objects with a non-null ``error`` field are skipped and returned in
    the error dict. Scores may have any (finite) range, e.g. negative Haar cascade scores.

    Args:
        path: the ``.jsonl`` file.
        labels: keep only detections whose ``label`` is in this set; None keeps all.

    Returns:
        ``(detections, errors)``: ``detections`` maps the image string as written to ``(boxes [D, 4] float64 xyxy,
        scores [D] float64)``; ``errors`` maps each failed image to its error text. An image listed both with an
        error and with detections keeps its detections and is not in ``errors``.

    Raises:
        AnnotationError: malformed line (message names the file and line), or an image listed twice with
            detections.
    """
    path = Path(path)
    detections: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    errors: dict[str, str] = {}
    for lineno, line in enumerate(_read_lines(path), 1):
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
        boxes: list[list[float]] = []
        scores: list[float] = []
        for k, det in enumerate(dets):
            what = f"detections[{k}]"
            if not isinstance(det, dict):
                raise AnnotationError(f"{what}: expected an object", path, lineno)
            if labels is not None and det.get("label") not in labels:
                continue
            box, score = det.get("box"), det.get("score")
            if not isinstance(box, list) or len(box) != 4 or any(not _is_real(v) for v in box):
                raise AnnotationError(f"{what}: 'box' must be [x1, y1, x2, y2], got {box!r}", path, lineno)
            if not _is_real(score):
                raise AnnotationError(f"{what}: 'score' must be a number, got {score!r}", path, lineno)
            x1, y1, x2, y2 = (_number(v, path, lineno, f"{what}.box") for v in box)
            boxes.append(_checked_box(x1, y1, x2, y2, path, lineno))
            scores.append(_number(score, path, lineno, f"{what}.score"))
        detections[image] = (np.asarray(boxes, np.float64).reshape(-1, 4), np.asarray(scores, np.float64))
        errors.pop(image, None)
    return detections, errors


def _is_real(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def load_detections_jsonl(
    path: str | os.PathLike[str],
    *,
    labels: set[str] | None = None,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Like :func:`load_detections_jsonl_with_errors`, returning only the detections.

    Images whose line carries a non-null ``error`` are skipped; a :class:`UserWarning` counts and names them.
    Use :func:`load_detections_jsonl_with_errors` to get them as data.
    """
    detections, errors = load_detections_jsonl_with_errors(path, labels=labels)
    if errors:
        names = ", ".join(list(errors)[:3]) + (" ..." if len(errors) > 3 else "")
        warnings.warn(f"{path}: skipped {len(errors)} image(s) that failed: {names}", stacklevel=2)
    return detections


# ----------------------------------------------------------------------------------------------------------
# Image matching


def _suffix_len(a: Sequence[str], b: Sequence[str]) -> int:
    n = 0
    while n < len(a) and n < len(b) and a[-1 - n] == b[-1 - n]:
        n += 1
    return n


def match_images(
    det_keys: Iterable[str],
    gt_keys: Iterable[str],
    *,
    ambiguous: str = "error",
) -> dict[str, str | None]:
    """Map each detection image path to its ground-truth key.

    Rules, after :func:`normalize_key` on both sides, first that applies:

    1. exact relative-path match;
    2. same file name: the ground-truth key sharing the longest common path suffix (most trailing folders);
    3. same file-name stem (name without extension, e.g. FDDB keys ``2002/08/11/big/img_591``), again by the
       longest common path suffix;
    4. None: the image has no annotated faces, so all its detections are false positives.

    A tie at the longest suffix is ambiguous. So is a ground-truth key reached by several detection images:
    the strictly best one (exact > name > stem, then longer suffix) keeps it, the others map to None; equally
    good ones are ambiguous. Matching is case-sensitive.

    Args:
        det_keys: detection image paths (absolute or relative).
        gt_keys: ground-truth keys (as returned by :func:`load_annotations`).
        ambiguous: ``"error"`` raises :class:`AmbiguousMatchError`; ``"none"`` maps ambiguous images to None.

    Returns:
        detection image path (as given) -> ground-truth key (as given) or None.
    """
    if ambiguous not in ("error", "none"):
        raise ValueError(f"ambiguous must be 'error' or 'none', got {ambiguous!r}")
    gt_by_norm: dict[str, str] = {}
    for key in gt_keys:
        gt_by_norm.setdefault(normalize_key(key), key)
    by_name: dict[str, list[tuple[str, list[str]]]] = {}
    by_stem: dict[str, list[tuple[str, list[str]]]] = {}
    for norm in gt_by_norm:
        parts = norm.split("/")
        by_name.setdefault(parts[-1], []).append((norm, parts[:-1]))
        by_stem.setdefault(os.path.splitext(parts[-1])[0], []).append((norm, parts[:-1]))

    result: dict[str, str | None] = {}
    quality: dict[str, tuple[int, int]] = {}
    unsure: dict[str, list[str]] = {}
    for det in det_keys:
        norm = normalize_key(det)
        if norm in gt_by_norm:
            result[det], quality[det] = gt_by_norm[norm], (3, 0)
            continue
        parts = norm.split("/")
        rank, candidates = 2, by_name.get(parts[-1])
        if not candidates:
            rank, candidates = 1, by_stem.get(os.path.splitext(parts[-1])[0])
        if not candidates:
            result[det] = None
            continue
        lengths = [_suffix_len(parts[:-1], folders) for _, folders in candidates]
        best = max(lengths)
        winners = [gt_by_norm[c] for (c, _), n in zip(candidates, lengths) if n == best]
        if len(winners) > 1:
            result[det], unsure[det] = None, winners
        else:
            result[det], quality[det] = winners[0], (rank, best)

    claimants: dict[str, list[str]] = {}
    for det, gt in result.items():
        if gt is not None:
            claimants.setdefault(gt, []).append(det)
    for gt, dets in claimants.items():
        if len(dets) < 2:
            continue
        top = max(quality[d] for d in dets)
        best_dets = [d for d in dets if quality[d] == top]
        for d in dets:
            if d not in best_dets or len(best_dets) > 1:
                result[d] = None
            if len(best_dets) > 1 and d in best_dets:
                unsure[d] = [gt]
    if unsure and ambiguous == "error":
        raise AmbiguousMatchError(unsure)
    return result


# ----------------------------------------------------------------------------------------------------------
# Metrics


def _as_boxes(boxes: object, name: str) -> np.ndarray:
    arr = np.asarray(boxes, dtype=np.float64)
    if arr.size == 0:
        return arr.reshape(0, 4)
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ValueError(f"{name}: expected boxes of shape [N, 4], got {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name}: boxes must be finite")
    if (arr[:, 2] < arr[:, 0]).any() or (arr[:, 3] < arr[:, 1]).any():
        raise ValueError(f"{name}: boxes must have x2 >= x1 and y2 >= y1")
    return arr


def _as_scores(scores: object, n: int, name: str) -> np.ndarray:
    arr = np.asarray(scores, dtype=np.float64).reshape(-1) if np.size(scores) else np.zeros(0)
    if arr.shape != (n,):
        raise ValueError(f"{name}: expected {n} scores (one per box), got shape {np.shape(scores)}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name}: scores must be finite")
    return arr


def box_iou(boxes1: np.ndarray, boxes2: np.ndarray) -> np.ndarray:
    """Intersection over union of every pair of boxes.

    Args:
        boxes1: ``[N, 4]`` xyxy.
        boxes2: ``[M, 4]`` xyxy.

    Returns:
        ``[N, M]`` float64 IoU in [0, 1]; 0 where the union is empty (two zero-area boxes).
    """
    a = _as_boxes(boxes1, "boxes1")
    b = _as_boxes(boxes2, "boxes2")
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = np.clip(rb - lt, 0, None)
    inter = wh[..., 0] * wh[..., 1]
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def match_image(
    det_boxes: np.ndarray,
    det_scores: np.ndarray,
    gt_boxes: np.ndarray,
    iou_threshold: float,
) -> np.ndarray:
    """Greedy matching of one image's detections to its ground truth.

    Detections are taken by descending score (ties keep input order); each is matched to the *still unmatched*
    ground-truth box of highest IoU, if that IoU is ``>= iou_threshold`` (ties: lowest index). Unlike the
    original PASCAL devkit, a detection whose best box is already taken can still match its next best box.

    Args:
        det_boxes: ``[D, 4]`` xyxy.
        det_scores: ``[D]`` any range.
        gt_boxes: ``[G, 4]`` xyxy.
        iou_threshold: minimum IoU of a true positive.

    Returns:
        ``[D]`` bool true-positive flags, in the input detection order.
    """
    det_boxes = _as_boxes(det_boxes, "det_boxes")
    det_scores = _as_scores(det_scores, len(det_boxes), "det_scores")
    gt_boxes = _as_boxes(gt_boxes, "gt_boxes")
    tp = np.zeros(len(det_boxes), dtype=bool)
    if len(det_boxes) == 0 or len(gt_boxes) == 0:
        return tp
    iou = box_iou(det_boxes, gt_boxes)
    taken = np.zeros(len(gt_boxes), dtype=bool)
    for i in np.argsort(-det_scores, kind="stable"):
        row = np.where(taken, -1.0, iou[i])
        j = int(np.argmax(row))
        if row[j] >= iou_threshold:
            taken[j] = True
            tp[i] = True
    return tp


@dataclass
class ThresholdResult:
    """Metrics at one IoU threshold, and the curves behind them.

    Attributes:
        iou: IoU threshold.
        ap: all-point interpolated average precision (NaN without ground truth).
        recall_at_fp: number of false positives N -> highest recall with at most N false positives.
        recall_at_precision: precision p -> highest recall at a rank whose precision is >= p (0.0 if none).
        max_recall: recall with all detections.
        n_gt, n_det, n_tp, n_fp: ground-truth boxes, detections, true and false positives.
        scores: ``[n_det]`` detection scores by rank (descending, stable).
        recall, precision: ``[n_det]`` recall / precision after each rank.
        cum_fp: ``[n_det]`` int64 cumulative false positives after each rank.
    """

    iou: float
    ap: float
    recall_at_fp: dict[int, float]
    recall_at_precision: dict[float, float]
    max_recall: float
    n_gt: int
    n_det: int
    n_tp: int
    n_fp: int
    scores: np.ndarray = field(repr=False)
    recall: np.ndarray = field(repr=False)
    precision: np.ndarray = field(repr=False)
    cum_fp: np.ndarray = field(repr=False)


@dataclass
class ImageResult:
    """Counts of one image.

    Attributes:
        image: detection image path, or None for a ground-truth image without detections.
        gt_key: matched ground-truth key, or None (no annotated faces).
        n_gt, n_det: ground-truth boxes and detections of the image.
        tp, fp: IoU threshold -> true / false positives.
    """

    image: str | None
    gt_key: str | None
    n_gt: int
    n_det: int
    tp: dict[float, int]
    fp: dict[float, int]


def _key(x: float) -> str:
    return format(float(x), "g")


def _round(x: float) -> float | None:
    return None if math.isnan(x) else round(float(x), JSON_DECIMALS)


@dataclass
class EvalReport:
    """Result of :func:`evaluate`: one :class:`ThresholdResult` per IoU threshold and one :class:`ImageResult`
    per image (detection images first, in input order, then ground-truth images without detections)."""

    results: list[ThresholdResult]
    images: list[ImageResult]

    def to_json(self) -> dict[str, list[dict[str, object]]]:
        """JSON-ready dict; floats rounded to 6 decimals, NaN as null; mapping keys formatted with ``%g``."""
        return {
            "results": [
                {
                    "iou": _round(r.iou),
                    "ap": _round(r.ap),
                    "recall_at_fp": {str(n): _round(v) for n, v in r.recall_at_fp.items()},
                    "recall_at_precision": {_key(p): _round(v) for p, v in r.recall_at_precision.items()},
                    "max_recall": _round(r.max_recall),
                    "n_gt": r.n_gt,
                    "n_det": r.n_det,
                    "n_tp": r.n_tp,
                    "n_fp": r.n_fp,
                }
                for r in self.results
            ],
            "images": [
                {
                    "image": im.image,
                    "gt_key": im.gt_key,
                    "n_gt": im.n_gt,
                    "n_det": im.n_det,
                    "tp": {_key(t): n for t, n in im.tp.items()},
                    "fp": {_key(t): n for t, n in im.fp.items()},
                }
                for im in self.images
            ],
        }


def _average_precision(recall: np.ndarray, precision: np.ndarray) -> float:
    """All-point interpolated AP (VOC2010+): precision made non-increasing from the right, summed over recall
    steps."""
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[0.0], precision, [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    steps = np.nonzero(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[steps + 1] - mrec[steps]) * mpre[steps + 1]))


def evaluate(
    detections: Mapping[str, tuple[np.ndarray, np.ndarray]],
    ground_truth: Mapping[str, np.ndarray],
    iou_thresholds: Sequence[float] = (0.5,),
    fp_points: Sequence[int] = (10, 31, 50, 65, 95, 167),
    precisions: Sequence[float] = (0.5, 0.8, 0.9, 0.95),
    image_keys: Mapping[str, str | None] | None = None,
) -> EvalReport:
    """Score detections against ground truth.

    Every detection image is evaluated (one without ground truth counts all its detections as false
    positives); ground-truth images without detections count all their boxes as missed. Per image,
    detections are matched with :func:`match_image`; then all detections are ranked globally by score
    (descending, stable: ties keep the order of ``detections``' images and of boxes within an image) into
    cumulative TP / FP counts, recall ``= TP / n_gt`` and precision ``= TP / (TP + FP)`` after each rank.

    * ``ap``: all-point interpolated AP (VOC2010+).
    * ``recall_at_fp[N]``: highest recall reached with at most N false positives (FDDB / ROC style).
    * ``recall_at_precision[p]``: highest recall at a rank whose (raw) precision is >= p; 0.0 if none.
    * ``max_recall``: recall with all detections.

    With no ground-truth box at all, recall-based values and AP are NaN.

    Args:
        detections: image path -> ``(boxes [D, 4] xyxy, scores [D] of any range)``.
        ground_truth: key -> ``[G, 4]`` xyxy (as from :func:`load_annotations`).
        iou_thresholds: IoU thresholds in (0, 1], one result each.
        fp_points: false-positive counts >= 0 for ``recall_at_fp``.
        precisions: precisions in [0, 1] for ``recall_at_precision``.
        image_keys: detection image -> ground-truth key or None; None computes it with :func:`match_images`
            (which raises :class:`AmbiguousMatchError` on ambiguous names).

    Returns:
        :class:`EvalReport`.

    Raises:
        ValueError: bad arrays or parameters, unknown keys in ``image_keys``, or two detection images mapped to
            the same ground-truth key.
    """
    thresholds = [float(t) for t in iou_thresholds]
    if not thresholds or any(not 0 < t <= 1 for t in thresholds) or len(set(thresholds)) != len(thresholds):
        raise ValueError(f"iou_thresholds must be distinct values in (0, 1], got {list(iou_thresholds)}")
    fps = [int(n) for n in fp_points]
    if any(n < 0 or n != f for n, f in zip(fps, fp_points)):
        raise ValueError(f"fp_points must be non-negative integers, got {list(fp_points)}")
    precs = [float(p) for p in precisions]
    if any(not 0 <= p <= 1 for p in precs):
        raise ValueError(f"precisions must be in [0, 1], got {list(precisions)}")

    if image_keys is None:
        mapping = match_images(detections.keys(), ground_truth.keys())
    else:
        mapping = {}
        for det in detections:
            gt = image_keys.get(det)
            if gt is not None and gt not in ground_truth:
                raise ValueError(f"image_keys maps {det!r} to {gt!r}, which is not a ground-truth key")
            mapping[det] = gt
    used: dict[str, str] = {}
    for det, gt in mapping.items():
        if gt is not None:
            if gt in used:
                raise ValueError(f"detection images {used[gt]!r} and {det!r} both map to ground-truth key {gt!r}")
            used[gt] = det

    gts = {k: _as_boxes(v, f"ground_truth[{k!r}]") for k, v in ground_truth.items()}
    n_gt = sum(len(v) for v in gts.values())
    empty = np.zeros((0, 4))
    items = []
    for det, (boxes, scores) in detections.items():
        boxes = _as_boxes(boxes, f"detections[{det!r}] boxes")
        scores = _as_scores(scores, len(boxes), f"detections[{det!r}] scores")
        items.append((det, mapping[det], boxes, scores))
    all_scores = np.concatenate([s for *_, s in items]) if items else np.zeros(0)
    order = np.argsort(-all_scores, kind="stable")

    images = [ImageResult(det, gt, 0 if gt is None else len(gts[gt]), len(b), {}, {}) for det, gt, b, _ in items]
    images += [ImageResult(None, k, len(v), 0, {t: 0 for t in thresholds}, {t: 0 for t in thresholds})
               for k, v in gts.items() if k not in used]
    results = []
    for t in thresholds:
        flags = []
        for im, (_, gt, boxes, scores) in zip(images, items):
            tp = match_image(boxes, scores, empty if gt is None else gts[gt], t)
            im.tp[t], im.fp[t] = int(tp.sum()), int(len(tp) - tp.sum())
            flags.append(tp)
        tp = np.concatenate(flags)[order] if flags else np.zeros(0, bool)
        cum_tp = np.cumsum(tp)
        cum_fp = np.cumsum(~tp)
        precision = cum_tp / np.arange(1, len(tp) + 1)
        if n_gt:
            recall = cum_tp / n_gt
            ap = _average_precision(recall, precision)
            rec_fp = {n: float(recall[k - 1]) if (k := int(np.searchsorted(cum_fp, n, "right"))) else 0.0 for n in fps}
            rec_p = {p: float(recall[precision >= p].max(initial=0.0)) for p in precs}
            max_recall = float(recall[-1]) if len(recall) else 0.0
        else:
            recall = np.full(len(tp), np.nan)
            ap = max_recall = math.nan
            rec_fp = {n: math.nan for n in fps}
            rec_p = {p: math.nan for p in precs}
        n_tp = int(tp.sum())
        results.append(ThresholdResult(
            iou=t, ap=ap, recall_at_fp=rec_fp, recall_at_precision=rec_p, max_recall=max_recall,
            n_gt=n_gt, n_det=len(tp), n_tp=n_tp, n_fp=len(tp) - n_tp,
            scores=all_scores[order], recall=recall, precision=precision, cum_fp=cum_fp.astype(np.int64),
        ))  # fmt: skip
    return EvalReport(results=results, images=images)


# ----------------------------------------------------------------------------------------------------------
# Presentation


def format_table(report: EvalReport) -> str:
    """Fixed-width table, one row per IoU threshold: AP, max recall, recall at each FP count, n_gt, n_det, n_fp."""
    fp_cols = list(report.results[0].recall_at_fp) if report.results else []
    header = ["IoU", "AP", "MaxRecall", *(f"R@{n}FP" for n in fp_cols), "n_gt", "n_det", "n_fp"]

    def num(x: float) -> str:
        return "-" if math.isnan(x) else f"{x:.4f}"

    rows = [
        [f"{r.iou:g}", num(r.ap), num(r.max_recall), *(num(r.recall_at_fp[n]) for n in fp_cols),
         str(r.n_gt), str(r.n_det), str(r.n_fp)]
        for r in report.results
    ]  # fmt: skip
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in [header, *rows]]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:]])


def plot_curves(report: EvalReport, path: str | os.PathLike[str], *, fp_scale: str = "log") -> None:
    """Save precision-recall (left) and detection rate vs number of false positives (right) curves.

    One line per IoU threshold. ``fp_scale`` is ``"log"`` (symmetric log, so 0 FP stays visible) or
    ``"linear"``. The file type follows ``path``'s extension (``.png``, ``.pdf``, ``.svg``...).

    Raises:
        RuntimeError: matplotlib is not installed.
    """
    if fp_scale not in ("log", "linear"):
        raise ValueError(f"fp_scale must be 'log' or 'linear', got {fp_scale!r}")
    try:
        from matplotlib.figure import Figure
    except ImportError as e:
        raise RuntimeError("matplotlib is needed for --plot: pip install 'fcndetect[plot]'") from e
    fig = Figure(figsize=(11, 4.5), layout="constrained")
    ax_pr, ax_fp = fig.subplots(1, 2)
    for r in report.results:
        label = f"IoU {r.iou:g}, AP {r.ap:.3f}" if not math.isnan(r.ap) else f"IoU {r.iou:g}"
        ax_pr.plot(np.r_[0.0, r.recall], np.r_[1.0, r.precision], drawstyle="steps-post", label=label)
        ax_fp.plot(r.cum_fp, r.recall, drawstyle="steps-post", label=label)
    ax_pr.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02), title="Precision-recall")
    ax_fp.set(xlabel="false positives", ylabel="detection rate (recall)", ylim=(0, 1.02),
              title="Detection rate vs false positives")  # fmt: skip
    if fp_scale == "log":
        ax_fp.set_xscale("symlog", linthresh=1)
    ax_fp.set_xlim(left=0)  # false positives are never negative
    for ax in (ax_pr, ax_fp):
        ax.grid(True, alpha=0.3)
        ax.legend(loc="lower left" if ax is ax_pr else "lower right")
    fig.savefig(os.fspath(path))
