"""Peak memory and time of a face preset on a large photo, with and without tiling.

Each configuration runs in a fresh subprocess so that its peak RSS (``ru_maxrss``) is its own.

    python benchmarks/large_image.py [IMAGE] [--budgets 512,0] [--config face]

``--config`` picks the preset (default ``face``: the dense O-Net, whose 2x-upsampled first level is what
tiling is for; ``face-cascade`` is the default detector).

IMAGE defaults to the largest photo in ../shared/data/large_scenes. ``--budgets`` lists ``max_memory_mb``
values (0 = untiled; beware: untiled needs many GiB at min_size 24 on a 5312x2988 photo).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SCENES = REPO.parent / "shared" / "data" / "large_scenes"

CHILD = r"""
import json, resource, sys, time
import torch
from fcndetect import Detector
from fcndetect.io.images import load_image
path, budget, threads, config = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
torch.set_num_threads(threads)
det = Detector(config, max_memory_mb=budget)
image = load_image(path)
t0 = time.perf_counter()
dets = det.detect_array(image)
seconds = time.perf_counter() - t0
levels = det.levels(image.shape[1], image.shape[0])
print(json.dumps({"seconds": seconds, "detections": len(dets), "levels": len(levels),
                  "largest_level": [levels[0].width, levels[0].height] if levels else None,
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("image", nargs="?", default=None)
    ap.add_argument("--budgets", default="512", help="comma-separated max_memory_mb values (0 = untiled)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--config", default="face", help="preset (default: face, the dense O-Net)")
    args = ap.parse_args()
    image = args.image
    if image is None:
        if not SCENES.is_dir():
            print(f"no image given and {SCENES} is absent", file=sys.stderr)
            return 2
        image = str(max(sorted(SCENES.glob("*.jpg")), key=lambda p: Image.open(p).size[0] * Image.open(p).size[1]))
    w, h = Image.open(image).size
    print(f"image {image} ({w}x{h}), preset {args.config}, {args.threads} threads")
    print("| max_memory_mb | seconds | peak RSS (MiB) | detections | levels | largest level |")
    print("|---|---|---|---|---|---|")
    for budget in (int(b) for b in args.budgets.split(",")):
        p = subprocess.run([sys.executable, "-c", CHILD, image, str(budget), str(args.threads), args.config],
                           capture_output=True, text=True)
        if p.returncode != 0:
            print(f"| {budget} | failed: {p.stderr.strip().splitlines()[-1] if p.stderr.strip() else p.returncode} |")
            continue
        r = json.loads(p.stdout)
        lw, lh = r["largest_level"]
        print(f"| {budget or 'untiled'} | {r['seconds']:.1f} | {r['peak_rss_mib']:.0f} | {r['detections']} | "
              f"{r['levels']} | {lw}x{lh} |")
    return 0


if __name__ == "__main__":
    from record import recorded

    raise SystemExit(recorded(__file__, main))
