"""A batch run's lines on stderr: progress (a one-line bar on a terminal, else a plain line now and then),
and :func:`printable`, which keeps any text (file names included) on one line."""

from __future__ import annotations

import time
import unicodedata
from typing import TextIO

__all__ = ["Progress", "printable"]


def printable(text: object) -> str:
    """``text`` on one line: every control character (newline, carriage return, escape, ...) and every line or
    paragraph separator written as its Python escape (``\\n``, ``\\x1b``, ``\\u2028``); other characters,
    non-ASCII ones included, kept as they are."""
    out = []
    for c in str(text):
        if unicodedata.category(c) in ("Cc", "Zl", "Zp"):
            out.append(repr(c)[1:-1] if c not in "'\"" else c)
        else:
            out.append(c)
    return "".join(out)


class Progress:
    """Progress on stderr: a one-line bar on a terminal, else a plain line every ``every`` seconds.

    ``unit``: what is counted (``images``; ``frames`` for a video, whose rate reads ``fps``); ``label``: what
    the line is about (a video's path), or ``""``. A ``total`` of 0 (a video whose container gives no frame
    count) shows the count alone."""

    def __init__(self, total: int, enabled: bool, tty: bool, stream: TextIO, every: float = 10.0,
                 unit: str = "images", label: str = "") -> None:
        self.total, self.enabled, self.tty, self.stream, self.every = total, enabled, tty, stream, every
        self.unit, self.label = unit, label
        self.start = self.last = time.perf_counter()

    def update(self, done: int, errors: int) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        rate = done / max(now - self.start, 1e-9)
        rate_unit = "fps" if self.unit == "frames" else "img/s"
        head = f"{printable(self.label)}: " if self.label else ""
        of = f"/{self.total}" if self.total > 0 else ""
        if self.tty:
            width = 30
            filled = int(width * min(done, self.total) / self.total) if self.total > 0 else 0
            self.stream.write(f"\r{head}[{'#' * filled}{'.' * (width - filled)}] {done}{of} "
                              f"{rate:5.1f} {rate_unit}  {errors} error(s)")
            self.stream.flush()
        elif now - self.last >= self.every or done == self.total:
            self.stream.write(f"progress: {head}{done}{of} {self.unit}, {rate:.1f} {rate_unit}, {errors} error(s)\n")
            self.stream.flush()
            self.last = now

    def close(self) -> None:
        if self.enabled and self.tty:
            self.stream.write("\n")
            self.stream.flush()
