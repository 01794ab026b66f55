"""Progress of a batch run on stderr: a one-line bar on a terminal, else a plain line now and then."""

from __future__ import annotations

import time
from typing import TextIO

__all__ = ["Progress"]


class Progress:
    """Progress on stderr: a one-line bar on a terminal, else a plain line every ``every`` seconds."""

    def __init__(self, total: int, enabled: bool, tty: bool, stream: TextIO, every: float = 10.0) -> None:
        self.total, self.enabled, self.tty, self.stream, self.every = total, enabled, tty, stream, every
        self.start = self.last = time.perf_counter()

    def update(self, done: int, errors: int) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        rate = done / max(now - self.start, 1e-9)
        if self.tty:
            width = 30
            filled = int(width * done / max(self.total, 1))
            self.stream.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{self.total} "
                              f"{rate:5.1f} img/s  {errors} error(s)")
            self.stream.flush()
        elif now - self.last >= self.every or done == self.total:
            self.stream.write(f"progress: {done}/{self.total} images, {rate:.1f} img/s, {errors} error(s)\n")
            self.stream.flush()
            self.last = now

    def close(self) -> None:
        if self.enabled and self.tty:
            self.stream.write("\n")
            self.stream.flush()
