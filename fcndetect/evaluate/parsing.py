"""Low-level parsing shared by the annotation and detection readers: text lines, numbers, boxes, XML with
line numbers.

Boxes are ``[x1, y1, x2, y2]`` floats in image pixels with continuous edges (``[0, 0, W, H]`` is the whole
image). Every error is an :class:`~fcndetect.evaluate.errors.AnnotationError` naming the file and line.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from xml.parsers import expat

import numpy as np

from .errors import AnnotationError
from .matching import normalize_key


def read_lines(path: Path) -> list[str]:
    """Lines of a text file (UTF-8 with optional BOM, else Latin-1), any of LF / CRLF / CR endings."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


def parse_number(token: object, path: Path | None, line: int | None, what: str) -> float:
    """``token`` (a string or a JSON number) as a finite float; ``what`` names the field in the error."""
    try:
        value = float(token)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise AnnotationError(f"{what}: expected a number, got {token!r}", path, line) from None
    if not math.isfinite(value):
        raise AnnotationError(f"{what}: expected a finite number, got {token!r}", path, line)
    return value


def checked_box(x1: float, y1: float, x2: float, y2: float, path: Path | None, line: int | None) -> list[float]:
    """``[x1, y1, x2, y2]``, refused when ``x2 < x1`` or ``y2 < y1``."""
    if x2 < x1 or y2 < y1:
        raise AnnotationError(f"box [{x1:g}, {y1:g}, {x2:g}, {y2:g}] has a negative width or height", path, line)
    return [x1, y1, x2, y2]


def add_box(out: dict[str, list[list[float]]], key: str, box: list[float] | None = None) -> None:
    """Register image ``key`` (normalised with :func:`normalize_key`) in ``out``, appending ``box`` if given."""
    boxes = out.setdefault(normalize_key(key), [])
    if box is not None:
        boxes.append(box)


def to_arrays(out: Mapping[str, list[list[float]]]) -> dict[str, np.ndarray]:
    """Each key's box list as a ``[N, 4]`` float64 array (``[0, 4]`` for an empty list)."""
    return {k: np.asarray(v, dtype=np.float64).reshape(-1, 4) for k, v in out.items()}


def is_int(token: str) -> bool:
    """Whether ``token`` is a non-negative decimal integer (optional ``+``)."""
    return re.fullmatch(r"[+]?\d+", token) is not None


def all_numbers(fields: Sequence[str]) -> bool:
    """Whether every field parses as a float."""
    try:
        for f in fields:
            float(f)
    except ValueError:
        return False
    return True


def is_real(v: object) -> bool:
    """Whether a decoded JSON value is a number (``bool`` is not)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def content_lines(lines: Sequence[str]) -> list[tuple[int, list[str]]]:
    """``(1-based line number, whitespace-split fields)`` of the non-blank lines."""
    return [(i, line.split()) for i, line in enumerate(lines, 1) if line.strip()]


def strip_comment(line: str) -> str:
    """Cut a ``#`` comment starting the line or preceded by whitespace."""
    return re.split(r"(?:^|(?<=\s))#", line, maxsplit=1)[0]


# ----------------------------------------------------------------------------------------------------------
# XML with line numbers (xml.etree does not keep them)


@dataclass
class XmlNode:
    """An XML element with the line it starts on."""

    tag: str
    attrib: dict[str, str]
    line: int
    children: list[XmlNode] = field(default_factory=list)
    parts: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        """The element's own character data, stripped."""
        return "".join(self.parts).strip()

    def find(self, tag: str) -> XmlNode | None:
        """The first child named ``tag``, or None."""
        return next((c for c in self.children if c.tag == tag), None)

    def findall(self, tag: str) -> list[XmlNode]:
        """Every child named ``tag``, in document order."""
        return [c for c in self.children if c.tag == tag]


def parse_xml(path: Path) -> XmlNode:
    """Parse an XML file into ``XmlNode`` s that remember their start line; errors carry expat's line."""
    parser = expat.ParserCreate()
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    stack: list[XmlNode] = []
    roots: list[XmlNode] = []

    def start(tag: str, attrib: dict[str, str]) -> None:
        node = XmlNode(tag, attrib, parser.CurrentLineNumber)
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


def xml_number(node: XmlNode, name: str, path: Path, *, attribute: bool) -> float:
    """The number in ``node``'s attribute ``name`` (``attribute=True``) or child element ``<name>``."""
    if attribute:
        if name not in node.attrib:
            raise AnnotationError(f"<{node.tag}> has no '{name}' attribute", path, node.line)
        return parse_number(node.attrib[name], path, node.line, f"<{node.tag}> {name}")
    child = node.find(name)
    if child is None:
        raise AnnotationError(f"<{node.tag}> has no <{name}>", path, node.line)
    return parse_number(child.text, path, child.line, f"<{name}>")
