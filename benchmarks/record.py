"""Benchmark results as files: what a benchmark script prints on stdout is also kept in
``benchmarks/results/<script>.md``, one section per command line, each with the machine it ran on.

A script ends with::

    if __name__ == "__main__":
        from record import recorded
        raise SystemExit(recorded(__file__, main))

Running the same command again replaces its section; another command line adds one. Nothing is written when
the script fails (a non-zero exit or an exception) or with ``--no-record`` (taken off the arguments first).
"""

from __future__ import annotations

import io
import os
import platform
import re
import shlex
import sys
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import TextIO, cast

RESULTS = Path(__file__).resolve().parent / "results"
SECTION = re.compile(r"^## `python benchmarks/", re.M)


class _Tee(io.TextIOBase):
    def __init__(self, stream: TextIO) -> None:
        self.stream, self.kept = stream, io.StringIO()

    def write(self, s: str) -> int:
        self.kept.write(s)
        return self.stream.write(s)

    def flush(self) -> None:
        self.stream.flush()


def machine_line() -> str:
    """``# UTC time | CPU, cores, torch threads | versions`` (torch only where the script imported it)."""
    parts = [platform.machine(), f"{os.cpu_count()} cores", f"python {platform.python_version()}"]
    torch = sys.modules.get("torch")
    if torch is not None:
        parts.append(f"torch {torch.__version__}, {torch.get_num_threads()} torch threads")
    try:
        import fcndetect

        parts.append(f"fcndetect {fcndetect.__version__}")
    except ImportError:
        pass
    try:
        from machine_info import cpu_name

        parts[0] = cpu_name()
    except ImportError:
        pass
    if hasattr(os, "getloadavg"):
        parts.append("load average {:.1f} {:.1f} {:.1f} (1, 5, 15 min)".format(*os.getloadavg()))
    return f"# {datetime.now(timezone.utc).isoformat(timespec='seconds')} | {', '.join(parts)}"


def save_section(script: str, command: str, body: str, machine: str) -> Path:
    """Write (or replace) the section of ``command`` in ``RESULTS/<script stem>.md``."""
    path = RESULTS / f"{Path(script).stem}.md"
    head = f"## `{command}`\n\n"
    section = f"{head}```text\n{machine}\n# command: {command}\n```\n\n{body.strip()}\n"
    text = path.read_text(encoding="utf-8") if path.is_file() else f"# `benchmarks/{Path(script).name}`\n\n"
    starts = [m.start() for m in SECTION.finditer(text)]
    preamble = text[: starts[0]] if starts else text
    sections = [text[a:b] for a, b in zip(starts, [*starts[1:], len(text)])]
    sections = [s.rstrip() + "\n" for s in sections]
    for k, s in enumerate(sections):
        if s.startswith(head):
            sections[k] = section
            break
    else:
        sections.append(section)
    RESULTS.mkdir(exist_ok=True)
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(preamble.rstrip() + "\n\n" + "\n".join(sections), encoding="utf-8")
    tmp.replace(path)
    return path


def recorded(script: str, main: Callable[[], int | None]) -> int:
    """Run ``main`` with stdout also kept; on success, save it as the section of this command line."""
    keep = "--no-record" not in sys.argv
    sys.argv = [a for a in sys.argv if a != "--no-record"]
    command = shlex.join(["python", f"benchmarks/{Path(script).name}", *sys.argv[1:]])
    tee = _Tee(sys.stdout)
    real, sys.stdout = sys.stdout, cast(TextIO, tee)
    try:
        code = main() or 0
    finally:
        sys.stdout = real
    if keep and code == 0:
        path = save_section(script, command, tee.kept.getvalue(), machine_line())
        print(f"results: {path.relative_to(RESULTS.parent.parent)}", file=sys.stderr)
    return code
