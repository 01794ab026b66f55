"""Slowdown under load: each thread configuration, quiet and beside a busy competitor, in one run.

    python benchmarks/threads.py [IMAGE] [--model face] [--repeat 5] [--competitor python|numpy]

Every configuration runs in a fresh subprocess (OpenMP reads its environment once, when torch loads): it
imports fcndetect (which sets the default wait policy, :mod:`fcndetect.threads`), loads the detector
(``--model face``, the dense O-Net, by default; ``--model ''`` for the default preset), detects once to
warm up and then ``--repeat`` times; the median is reported. Each configuration runs quiet, then again while
a competitor process keeps one core busy (``python``: a pure-Python loop; ``numpy``: matrix products on one
thread). ``slowdown`` is busy / quiet; ``vs default quiet`` compares a configuration's quiet time with the
default's. "Quiet" means no competitor of ours: other processes on the machine are reported in the header
(load average) and affect every row alike. "before" is libgomp's own default (spin 300 000 times, then
sleep), what fcndetect ran with before it set a wait policy.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, os, sys, time
import fcndetect  # sets the default wait policy before torch loads
import numpy as np
import torch
from PIL import Image
from fcndetect import Detector
path, repeat, threads, model = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
if threads:
    torch.set_num_threads(threads)
image = np.asarray(Image.open(path).convert("RGB"))
det = Detector(model=model) if model else Detector()
det(image)
times = []
for _ in range(repeat):
    t0 = time.perf_counter()
    det(image)
    times.append(time.perf_counter() - t0)
times.sort()
print(json.dumps({"median": times[len(times) // 2], "threads": torch.get_num_threads(),
                  "env": {k: os.environ.get(k) for k in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}}))
"""

COMPETITORS = {
    "python": "while True:\n    pass",
    "numpy": "import os\nos.environ['OPENBLAS_NUM_THREADS'] = os.environ['OMP_NUM_THREADS'] = '1'\n"
             "import numpy as np\na = np.random.rand(300, 300)\nwhile True:\n    a @ a",
}

# (label, environment, torch threads; 0 = fcndetect's/torch's default)
CONFIGS: list[tuple[str, dict[str, str], int]] = [
    ("default (fcndetect)", {}, 0),
    ("2 threads, libgomp's spin (before)", {"GOMP_SPINCOUNT": "300000"}, 2),
    ("1 thread, libgomp's spin", {"GOMP_SPINCOUNT": "300000"}, 1),
    ("2 threads, OMP_WAIT_POLICY=PASSIVE", {"OMP_WAIT_POLICY": "PASSIVE"}, 2),
    ("2 threads, GOMP_SPINCOUNT=3000", {"GOMP_SPINCOUNT": "3000"}, 2),
    ("2 threads, GOMP_SPINCOUNT=10000", {"GOMP_SPINCOUNT": "10000"}, 2),
]


def _child(image: str, model: str, repeat: int, env: dict[str, str], threads: int) -> dict[str, object]:
    """One configuration in a fresh interpreter: the JSON its child prints."""
    full = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")}
    full.update(env)
    p = subprocess.run([sys.executable, "-c", CHILD, image, str(repeat), str(threads), model], env=full,
                       capture_output=True, text=True, cwd=REPO)
    if p.returncode != 0:
        raise RuntimeError(p.stderr.strip().splitlines()[-1] if p.stderr.strip() else f"exit {p.returncode}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def _busy(kind: str) -> subprocess.Popen[bytes]:
    """A process that keeps one core busy until killed."""
    proc = subprocess.Popen([sys.executable, "-c", COMPETITORS[kind]])
    time.sleep(0.5)
    return proc


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("image", nargs="?", default=str(REPO / "sample_images" / "astronaut.png"))
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--model", default="face", help="model or preset model ('': the default preset)")
    ap.add_argument("--competitor", choices=sorted(COMPETITORS), default="python")
    args = ap.parse_args()

    import torch

    import fcndetect
    from fcndetect.threads import ENV_DEFAULTS

    load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"# {datetime.now(timezone.utc).isoformat(timespec='seconds')} | {platform.machine()}, "
          f"{os.cpu_count()} cores, load average {load} at start, torch {torch.__version__}, "
          f"fcndetect {fcndetect.__version__}")
    print(f"# command: python benchmarks/{Path(__file__).name} {' '.join(sys.argv[1:])}")
    print(f"# model {args.model or '(default preset)'} on {args.image}, median of {args.repeat} after a warm-up; "
          f"competitor: one {args.competitor} process; fcndetect's default: {ENV_DEFAULTS}\n")
    rows = []
    for label, env, threads in CONFIGS:
        try:
            quiet = _child(args.image, args.model, args.repeat, env, threads)
            competitor = _busy(args.competitor)
            try:
                busy = _child(args.image, args.model, args.repeat, env, threads)
            finally:
                competitor.kill()
                competitor.wait()
        except RuntimeError as exc:
            print(f"| {label} | failed: {exc} |")
            continue
        rows.append((label, quiet["threads"], float(quiet["median"]), float(busy["median"])))
    base = rows[0][2] if rows and rows[0][0].startswith("default") else None
    print("| configuration | torch threads | quiet s | busy s | slowdown | vs default quiet |")
    print("|---|---:|---:|---:|---:|---:|")
    for label, threads, quiet_s, busy_s in rows:
        rel = f"{quiet_s / base:.2f}x" if base else "-"
        print(f"| {label} | {threads} | {quiet_s:.3f} | {busy_s:.3f} | {busy_s / quiet_s:.2f}x | {rel} |")
    if base is not None:
        slowdown = rows[0][3] / rows[0][2]
        print(f"\ndefault slowdown beside a busy process: {slowdown:.2f}x (target < 2x)")
    return 0


if __name__ == "__main__":
    from record import recorded

    raise SystemExit(recorded(__file__, main))
