"""Batch-mode throughput: images per second for each batch size and worker count, against a plain loop.

    python benchmarks/batch.py [--images DIR] [--count 200] [--batch-sizes 1,4,8] [--workers 0,1,2]

The plain loop decodes and detects one image at a time with ``load_image`` + ``Detector.detect_array``
(no background decoding, no batching). Every configuration processes the same list of images (the folder's
images repeated to ``--count``) in the same process, one after the other, so the ratios are measured in one
run. Threads follow the CLI's default (``cores // max(1, workers)``) unless ``--threads`` is given.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
DEV = REPO.parent / "shared" / "data" / "dev_faces"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", default=str(DEV))
    ap.add_argument("--count", type=int, default=200)
    ap.add_argument("--batch-sizes", default="1,4,8")
    ap.add_argument("--workers", default="0,1,2")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--model", default=None, help="a model (default: the default preset, the face cascade)")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()

    from fcndetect import Detector, __version__
    from fcndetect.io.images import load_image
    from fcndetect.io.sources import expand_sources
    from fcndetect.engines.base import EngineOptions
    from fcndetect.engines.local import iter_detections

    base = [it for it in expand_sources([args.images]) if it.error is None]
    if not base:
        print(f"batch.py: no images in {args.images}", file=sys.stderr)
        return 2
    items = [base[k % len(base)] for k in range(args.count)]
    det = Detector(model=args.model, device=args.device)
    cores = os.cpu_count() or 1
    print(f"# {datetime.now(timezone.utc).isoformat(timespec='seconds')} | {platform.machine()}, {cores} cores, "
          f"torch {torch.__version__}, fcndetect {__version__}, device {args.device}, "
          f"model {det.config.chain}")
    print(f"# command: python benchmarks/{Path(__file__).name} {' '.join(sys.argv[1:])}")
    print(f"# {len(items)} images ({len(base)} distinct from {args.images})\n")

    def threads_for(workers: int) -> int:
        return args.threads or max(1, cores // max(1, workers))

    def plain() -> float:
        torch.set_num_threads(threads_for(0))
        t0 = time.perf_counter()
        for it in items:
            det.detect_array(load_image(it.path))
        return time.perf_counter() - t0

    det.detect_array(load_image(items[0].path))  # warm-up
    t_plain = plain()
    rows = [("plain loop", "-", "-", threads_for(0), len(items) / t_plain, 1.0)]
    for workers in (int(w) for w in args.workers.split(",")):
        for bs in (int(b) for b in args.batch_sizes.split(",")):
            torch.set_num_threads(threads_for(workers))
            t0 = time.perf_counter()
            for _ in iter_detections(det.detect_batch, items, EngineOptions(workers=workers, batch_size=bs)):
                pass
            t = time.perf_counter() - t0
            rows.append((f"batch {bs}, workers {workers}", str(bs), str(workers), threads_for(workers),
                         len(items) / t, t_plain / t))
    print("| configuration | batch size | workers | torch threads | images/s | vs plain loop |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, bs, w, th, ips, ratio in rows:
        print(f"| {name} | {bs} | {w} | {th} | {ips:.2f} | {ratio:.2f}x |")
    best = max(rows[1:], key=lambda r: r[4])
    print(f"\nfastest: {best[0]} ({best[5]:.2f}x the plain loop)")
    return 0


if __name__ == "__main__":
    from record import recorded

    raise SystemExit(recorded(__file__, main))
