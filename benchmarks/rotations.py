"""Time per image against the number of search angles (``--rotations``), side by side in one run.

    python benchmarks/rotations.py [--images DIR] [--repeat 3] [--threads 2]

Each configuration (upright, ``0,180``, the four right angles, and the ``face-any`` preset) runs over the same
decoded images in the same process; the order of configurations is rotated every repeat and the median of the
repeats is printed, so the ratios to the upright run are measured side by side. Decoding is excluded; one
warm-up call per configuration is not timed. The load average before and after is printed beside the table.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEV = REPO.parent / "shared" / "data" / "dev_faces"

CONFIGS: list[tuple[str, dict[str, object]]] = [
    ("0 (default)", {}),
    ("0,180", {"rotations": (0, 180)}),
    ("0,90,180,270", {"rotations": (0, 90, 180, 270)}),
    ("`face-any` (0,90,180,270,-30,30)", {"config": "face-any"}),
]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", default=str(DEV))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()

    import fcndetect  # noqa: F401  (before torch: the OpenMP wait policy)
    import torch

    from fcndetect import Detector, __version__
    from fcndetect.io.images import load_image
    from fcndetect.io.sources import expand_sources

    if args.threads:
        torch.set_num_threads(args.threads)
    items = [it for it in expand_sources([args.images]) if it.error is None]
    if not items:
        print(f"rotations.py: no images in {args.images}", file=sys.stderr)
        return 2
    images = [load_image(it.path) for it in items]
    detectors = []
    for _, options in CONFIGS:
        options = dict(options)
        det = Detector(options.pop("config", None), **options)
        det.detect_array(images[0])  # warm-up, untimed
        detectors.append(det)
    load_before = os.getloadavg()[0]
    times: list[list[float]] = [[] for _ in CONFIGS]
    for r in range(args.repeat):
        for k in range(len(CONFIGS)):
            idx = (k + r) % len(CONFIGS)
            start = time.perf_counter()
            for image in images:
                detectors[idx].detect_array(image)
            times[idx].append((time.perf_counter() - start) / len(images) * 1000)
    load_after = os.getloadavg()[0]
    print(f"# {datetime.now(timezone.utc).isoformat(timespec='seconds')} | {platform.machine()}, "
          f"{len(os.sched_getaffinity(0))} CPUs, torch {torch.__version__} ({torch.get_num_threads()} threads), "
          f"fcndetect {__version__}, load average {load_before:.1f} before, {load_after:.1f} after")
    print(f"# command: python benchmarks/{Path(__file__).name} {' '.join(sys.argv[1:])}")
    print(f"# {len(images)} images from {args.images}, median of {args.repeat} interleaved repeats\n")
    base = statistics.median(times[0])
    print("| rotations | ms/image | vs upright |\n|---|---:|---:|")
    for (name, _), t in zip(CONFIGS, times):
        ms = statistics.median(t)
        print(f"| {name} | {ms:.1f} | {ms / base:.2f}x |")
    return 0


if __name__ == "__main__":
    from record import recorded

    raise SystemExit(recorded(__file__, main))
