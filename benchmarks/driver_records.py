"""The driver's cost per record, with no network and no model: what bounds ``--engine ray`` at scale.

    python benchmarks/driver_records.py [--count 1000000] [--writes 1000] [--detections 3]

Three measurements, one after the other, in this process:

1. **Record path** (``--count`` records): ``BatchRunner.run`` over ``--count`` inputs with an engine that
   yields each input's outcome as the Ray engine's driver gets it (``pickle.loads`` of the actor's pickled
   :class:`~fcndetect.detections.Detections`, ``--detections`` faces with landmarks each), the records
   written as JSON Lines to ``/dev/null`` (no ``-o``). Prints the time per record and how much the peak
   resident memory (``VmHWM``, reset before the run) grew over what the listed inputs already took.
2. **Combined files** (``--count`` records): the same records streamed into ``detections.jsonl`` and COCO's
   ``detections.json``/``images.json`` (:class:`~fcndetect.io.combined.CombinedOutputs`) in a temporary
   folder, then published. Time per record and the growth of the peak resident memory.
3. **Per-image files with ``-o``** (``--writes`` images): each image's JSON record and a 90 KB annotated
   JPEG-sized file, written as the runner writes them (atomic, fsync each), to a temporary folder on the
   current directory's filesystem. Time per image.

The machine's load average is printed beside the figures (they are from one run on a shared machine).
"""

from __future__ import annotations

import argparse
import os
import pickle
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fcndetect import __version__  # noqa: E402
from fcndetect.config import DetectorConfig  # noqa: E402
from fcndetect.detections import Detections  # noqa: E402
from fcndetect.engines.base import ItemResult  # noqa: E402
from fcndetect.io.combined import CombinedOutputs  # noqa: E402
from fcndetect.io.sinks import result_record  # noqa: E402
from fcndetect.io.sources import SourceItem  # noqa: E402
from fcndetect.runner import BatchRunner, RunOptions  # noqa: E402


def _detections(n: int, k: int) -> Detections:
    """``n`` faces with landmarks on a 640x480 image, varied by ``k``."""
    rng = np.random.default_rng(k)
    xy = rng.uniform(0, 400, size=(n, 2)).astype(np.float32)
    boxes = np.concatenate([xy, xy + 80], axis=1)
    logits = rng.normal(4, 1, size=n).astype(np.float32)
    return Detections(boxes=boxes, scores=1 / (1 + np.exp(-logits)), labels=np.zeros(n, dtype=np.int64),
                      class_names=("face",), image_size=(640, 480), logits=logits,
                      landmarks=(boxes[:, None, :2] + rng.uniform(10, 70, size=(n, 5, 2))).astype(np.float32))


class _FakeDetector:
    """What BatchRunner asks of a detector when it detects nothing itself (run.json, class names)."""

    config = DetectorConfig()
    class_names = ("face",)

    def weights_fingerprint(self) -> str:
        return "synthetic"


class _SyntheticRunner(BatchRunner):
    """BatchRunner whose engine yields pickled outcomes, unpickled as the Ray engine's driver does."""

    def __init__(self, outcomes: list[bytes], **kwargs: object) -> None:
        super().__init__(_FakeDetector(), **kwargs)  # type: ignore[arg-type]
        self.outcomes = outcomes

    def _engine(self, items: list[SourceItem], need_maps: bool) -> Iterator[ItemResult]:
        for k, item in enumerate(items):
            outcome = pickle.loads(self.outcomes[k % len(self.outcomes)])
            yield ItemResult(item, None, outcome["detections"], None, outcome["files"])


def _rss_mib(field: str) -> float:
    """``VmRSS`` (now) or ``VmHWM`` (peak since the last :func:`_reset_peak`) of this process, in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _reset_peak() -> float:
    """Reset the peak resident size to the current one (Linux ``clear_refs``); the current size, MiB."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass
    return _rss_mib("VmRSS")


def _load() -> str:
    try:
        return " ".join(f"{v:.1f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=1_000_000)
    ap.add_argument("--writes", type=int, default=1000)
    ap.add_argument("--detections", type=int, default=3)
    args = ap.parse_args()
    print(f"# {datetime.now(timezone.utc).isoformat(timespec='seconds')} | {platform.machine()}, "
          f"{os.cpu_count()} cores, fcndetect {__version__}, load average {_load()} (1, 5, 15 min)")
    print(f"# command: python benchmarks/{Path(__file__).name} {' '.join(sys.argv[1:])}")
    outcomes = [pickle.dumps({"detections": _detections(args.detections, k), "files": None}) for k in range(64)]

    # 1. the record path, no -o
    import fcndetect.runner as runner_module

    names = [f"/data/photos/{k // 1000:04d}/img_{k:07d}.jpg" for k in range(args.count)]
    items = [SourceItem(path=p, relative=p, root=None) for p in names]
    runner_module.expand_sources = lambda sources, *a, **k: iter(sources)  # the inputs are listed already
    before = _reset_peak()
    with open(os.devnull, "w", encoding="utf-8") as null:
        runner = _SyntheticRunner(outcomes, options=RunOptions(quiet=True, progress=False), out=null, err=null)
        t0 = time.perf_counter()
        summary = runner.run(items)  # type: ignore[arg-type]
        t = time.perf_counter() - t0
    grew = _rss_mib("VmHWM") - before
    if summary.n_records != args.count:
        print(f"driver_records.py: {summary.n_records} of {args.count} records", file=sys.stderr)
        return 1
    print(f"\n1. record path (unpickle, record, JSON line to /dev/null), {args.count:,} records, "
          f"{args.detections} detections each: {t / args.count * 1e3:.3f} ms per record, "
          f"{args.count / t:,.0f} records/s; peak resident memory grew {grew:.0f} MiB during the run "
          f"({grew * 2**20 / args.count:.0f} B per input: the runner's output names and their clash check; "
          f"the {args.count:,} listed inputs, {before:.0f} MiB resident before the run, not counted)")
    print(f"   load average after: {_load()}")

    # 2. combined files
    records = [result_record(names[k], pickle.loads(outcomes[k])["detections"], None) for k in range(len(outcomes))]
    tmp = Path(tempfile.mkdtemp(prefix="driver_records.", dir="."))
    try:
        before = _reset_peak()
        t0 = time.perf_counter()
        combined = CombinedOutputs(tmp, "coco", ["face"], sys.stdout)
        for k in range(args.count):
            combined.add(records[k % len(records)], names[k])
        combined.commit()
        t = time.perf_counter() - t0
        grew = _rss_mib("VmHWM") - before
        size = sum(p.stat().st_size for p in tmp.iterdir()) / 2**20
        print(f"\n2. combined files (detections.jsonl + COCO detections.json, images.json), {args.count:,} "
              f"records: {t / args.count * 1e3:.3f} ms per record; {size:.0f} MiB written; peak resident "
              f"memory grew {grew:.1f} MiB")
        print(f"   load average after: {_load()}")
        for p in tmp.iterdir():
            p.unlink()

        # 3. per-image files with -o (atomic writes, fsync each)
        photo = os.urandom(90 * 1024)
        runner = _SyntheticRunner(outcomes, options=RunOptions(output=tmp, quiet=True, progress=False))
        t0 = time.perf_counter()
        for k in range(args.writes):
            runner._write_image_outputs(f"img_{k:07d}.jpg", records[k % len(records)],
                                        [(".annotated.jpg", photo)])
        t = time.perf_counter() - t0
        print(f"\n3. per-image files with -o (JSON record + 90 KB annotated image, each written atomically "
              f"with fsync), {args.writes:,} images: {t / args.writes * 1e3:.2f} ms per image, "
              f"{args.writes / t:,.0f} images/s")
        print(f"   load average after: {_load()}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    from record import recorded

    raise SystemExit(recorded(__file__, main))
