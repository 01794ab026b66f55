"""The headline as users meet it: ``fcndetect run FOLDER`` as a whole process against an MTCNN equivalent.

    python benchmarks/whole_process.py [FOLDER ...] [--runs 3] [--threads N] [--out FILE]

For each folder (default: ``../shared/data/dev_faces`` and ``../shared/data/afw_dev``), two commands run
``--runs`` times each, interleaved (fcndetect, MTCNN, fcndetect, MTCNN, ...), and the median wall time of
each is reported with their ratio. Both read the same image files from disk and write one JSON line per
image to stdout (sent to /dev/null), so everything a user waits for counts: interpreter start, imports,
model loading, decoding, detection and output.

* fcndetect: ``fcndetect run FOLDER --quiet`` (the default preset; ``--threads N`` when given), the console
  script next to the running interpreter;
* MTCNN: a Python process that imports ``facenet_pytorch``, builds ``MTCNN(keep_all=True, device="cpu")``
  (its defaults), and for every image of the folder in name order decodes it with PIL (RGB, EXIF-upright
  as fcndetect does), runs ``mtcnn.detect`` and prints its boxes and probabilities as one JSON line
  (``torch.set_num_threads(N)`` when ``--threads N`` is given).

The table goes to stdout and to ``benchmarks/results/whole_process.md`` (``--out``) with the machine, its load
and the command line. ``benchmarks/startup.py`` compares the same command with fcndetect's own library loop.
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "data"
SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")

MTCNN_CHILD = r"""
import json, sys
from pathlib import Path
import torch
from PIL import Image, ImageOps
from facenet_pytorch import MTCNN
folder, threads = Path(sys.argv[1]), int(sys.argv[2])
if threads:
    torch.set_num_threads(threads)
mtcnn = MTCNN(keep_all=True, device="cpu")
for path in sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".bmp", ".webp")):
    image = ImageOps.exif_transpose(Image.open(path)).convert("RGB")
    boxes, probs = mtcnn.detect(image)
    dets = [] if boxes is None else [{"box": b.tolist(), "score": float(p)} for b, p in zip(boxes, probs)]
    print(json.dumps({"image": str(path), "detections": dets}))
"""


def timed(cmd: list[str]) -> float:
    """Wall seconds of ``cmd`` (stdout discarded); exits with its stderr if it fails."""
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"whole_process.py: {' '.join(cmd[:3])} ... failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    return elapsed


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("folders", nargs="*", type=Path, default=[DATA / "dev_faces", DATA / "afw_dev"])
    p.add_argument("--runs", type=int, default=3, help="runs of each command, interleaved; the median counts")
    p.add_argument("--threads", type=int, default=0, help="torch threads for both (0: each one's default)")
    p.add_argument("--out", type=Path, default=HERE / "results" / "whole_process.md")
    args = p.parse_args()
    sys.path.insert(0, str(HERE))
    from machine_info import machine, versions

    lines = ["# `fcndetect run FOLDER` against an MTCNN process, as whole processes", "",
             f"Machine: {machine()} (before).", f"Versions: {versions()}.",
             f"Command: `{shlex.join(['python', 'benchmarks/' + Path(__file__).name, *sys.argv[1:]])}`", ""]
    script = Path(sys.executable).parent / "fcndetect"  # the console script of this environment
    fcn = [str(script)] if script.is_file() else [sys.executable, "-m", "fcndetect.cli"]
    lines += [f"{args.runs} interleaved runs each, median wall time; threads {args.threads or 'default'}.", "",
              "| folder | images | fcndetect run (s) | MTCNN process (s) | x MTCNN |", "|---|---:|---:|---:|---:|"]
    print("\n".join(lines), flush=True)
    for folder in args.folders:
        if not folder.is_dir():
            sys.exit(f"whole_process.py: {folder} is not a folder")
        n = sum(1 for q in folder.rglob("*") if q.suffix.lower() in SUFFIXES)
        ours = [*fcn, "run", str(folder), "--quiet", *(["--threads", str(args.threads)] if args.threads else [])]
        theirs = [sys.executable, "-c", MTCNN_CHILD, str(folder), str(args.threads)]
        t_ours, t_theirs = [], []
        for _ in range(args.runs):
            t_ours.append(timed(ours))
            t_theirs.append(timed(theirs))
        a, b = statistics.median(t_ours), statistics.median(t_theirs)
        lines.append(f"| {folder.name} | {n} | {a:.2f} | {b:.2f} | {a / b:.2f}x |")
        print(lines[-1], flush=True)
    lines += ["", f"Load average after: {os.getloadavg()[0]:.2f}."]
    print(lines[-1])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    from record import recorded

    raise SystemExit(recorded(__file__, main))
