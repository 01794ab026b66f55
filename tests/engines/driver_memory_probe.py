"""Run by tests/engines/test_driver_memory.py in a fresh process: ``fcndetect run FOLDER --engine E`` through
BatchRunner, records to a stream that samples Python's allocations (tracemalloc) at record ``--from`` and at the
last record (still inside the run: the runner's own lists are alive). Prints one JSON object: records, seconds,
growth of current and peak allocations between the two, and of the peak resident size (VmHWM).

``pathlib_growth``: what allocations made in :mod:`pathlib` grew by meanwhile. Each ``Path(...)`` interns its
parts (``sys.intern``), and CPython's table of interned strings, sized by every string interned in the process
(torch's identifiers), is rebuilt now and then as file names come and go: a one-off allocation of several MiB
whose size does not depend on the number of records (and, with the old table allocated before tracemalloc
started, counted as growth). ``current_growth`` leaves it out."""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
import tracemalloc
from pathlib import Path


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


class Probe(io.TextIOBase):
    """A stdout that counts JSON lines and samples memory at line ``start`` and at line ``last``."""

    def __init__(self, start: int, last: int) -> None:
        self.start, self.last, self.lines = start, last, 0
        self.at_start: int | None = None
        self.at_last: tuple[int, int] | None = None
        self.rss_at_start = self.rss_at_last = 0

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self.lines += text.count("\n")
        if self.at_start is None and self.lines >= self.start:
            self.snap_start = tracemalloc.take_snapshot()
            self.at_start = tracemalloc.get_traced_memory()[0]
            tracemalloc.reset_peak()
            try:
                Path("/proc/self/clear_refs").write_text("5")  # VmHWM from here
            except OSError:
                pass
            self.rss_at_start = _rss_kib("VmRSS")
        if self.at_last is None and self.lines >= self.last:
            self.at_last = tracemalloc.get_traced_memory()
            self.snap_last = tracemalloc.take_snapshot()
            self.rss_at_last = _rss_kib("VmHWM")
        return len(text)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("folder")
    ap.add_argument("--engine", default="local")
    ap.add_argument("--from", dest="start", type=int, default=1000)
    args = ap.parse_args()
    from fcndetect.config import DetectorConfig
    from fcndetect.engines.ray import RayOptions
    from fcndetect.runner import BatchRunner, RunOptions, engine_detector

    import torch  # after fcndetect, which sets OpenMP's wait policy first

    torch.set_num_threads(1)
    config = DetectorConfig(model="face-pnet", stages=(), stage_thresholds=())
    opts = RunOptions(engine=args.engine, ray=RayOptions(threads=1), quiet=True, progress=False)  # others ignore ray
    detector = engine_detector(config, opts.make_engine())
    probe = Probe(args.start, sum(1 for _ in Path(args.folder).iterdir()))
    tracemalloc.start()
    t0 = time.perf_counter()
    summary = BatchRunner(detector, opts, out=probe, err=sys.stderr).run([args.folder])
    seconds = time.perf_counter() - t0
    current, peak = probe.at_last or (0, 0)
    start = probe.at_start or 0
    import pathlib

    in_pathlib = [tracemalloc.Filter(True, pathlib.__file__)]
    diff = probe.snap_last.compare_to(probe.snap_start, "filename")
    pathlib_growth = sum(d.size_diff for d in probe.snap_last.filter_traces(in_pathlib).compare_to(
        probe.snap_start.filter_traces(in_pathlib), "filename"))
    print(json.dumps({"records": probe.lines, "failed": summary.n_failed, "seconds": seconds,
                      "current_growth": sum(d.size_diff for d in diff) - pathlib_growth,
                      "pathlib_growth": pathlib_growth, "peak_growth": peak - start,
                      "rss_peak_growth": (probe.rss_at_last - probe.rss_at_start) * 1024}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
