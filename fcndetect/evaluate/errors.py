"""Errors raised by the evaluation package: malformed input files and ambiguous image matches."""

from __future__ import annotations

import os
from collections.abc import Mapping


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
    """Some detection images match several ground-truth keys equally well (see
    :func:`fcndetect.evaluate.matching.match_images`).

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
