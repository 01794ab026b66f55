"""The command as fast as the library: start-up, and a folder of photos, each side by side with its floor.

    python benchmarks/startup.py [--folder DIR] [--images 40] [--startup-runs 5] [--folder-runs 3]
                                 [--compare SRC]

Two ratios, each from runs interleaved in one session (so a busy machine slows both sides alike):

* **start-up**: ``fcndetect run sample_images/astronaut.png --quiet`` as a whole process (interpreter,
  imports, models, one detection, output) against ``python -c "import torch"``; median of ``--startup-runs``.
* **folder**: ``fcndetect run DIR --quiet`` against a Python process that imports fcndetect, builds
  ``Detector()`` and loops ``fcndetect.io.images.load_image(path)`` + ``det(image)`` over the same photos in
  the same order; median of ``--folder-runs``. ``DIR`` holds links to the first ``--images`` photos (by
  name) of 0.4 to 6 Mpx in ``--folder`` (default: the shared AFW development half), in a temporary folder.

With ``--compare SRC`` (a source tree of fcndetect, e.g. an older commit's ``git archive``), the command
also runs from ``SRC`` (``PYTHONPATH=SRC``) in the same interleaved rounds, and gets its own rows.

Both commands write their JSON Lines to /dev/null. The table goes to stdout and to
``benchmarks/results/startup.md`` with the machine, its load before and after, and the command line.
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DATA = ROOT.parent / "shared" / "data"
SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")

LIBRARY_LOOP = r"""
import sys
from pathlib import Path
import fcndetect
from fcndetect import Detector
from fcndetect.io.images import load_image
det = Detector()
for path in sorted(p for p in Path(sys.argv[1]).iterdir() if p.suffix.lower() in %r):
    det(load_image(path))
""" % (SUFFIXES,)


Command = tuple[list[str], dict[str, str] | None]  # argv, environment (None: this one's)


def timed(command: Command) -> float:
    """Wall seconds of ``command`` (stdout discarded); exits with its stderr if it fails."""
    cmd, env = command
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"startup.py: {shlex.join(cmd)[:200]} failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    return elapsed


def interleaved(commands: list[Command], runs: int) -> list[float]:
    """The median of ``runs`` wall times of each command, in rounds (a, b, ..., a, b, ...), after one untimed
    round (file caches warm for all)."""
    for c in commands:
        timed(c)
    times: list[list[float]] = [[] for _ in commands]
    for _ in range(runs):
        for c, t in zip(commands, times):
            t.append(timed(c))
    return [statistics.median(t) for t in times]


def megapixels(path: Path) -> float:
    from PIL import Image

    with Image.open(path) as im:
        return im.width * im.height / 1e6


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--folder", type=Path, default=DATA / "afw_dev")
    p.add_argument("--images", type=int, default=40)
    p.add_argument("--startup-runs", type=int, default=5)
    p.add_argument("--folder-runs", type=int, default=3)
    p.add_argument("--out", type=Path, default=HERE / "results" / "startup.md")
    p.add_argument("--compare", type=Path, default=None, help="also run the command from this source tree")
    p.add_argument("--compare-label", default=None, help="what --compare holds, for the table (default: its name)")
    args = p.parse_args()
    sys.path.insert(0, str(HERE))
    from machine_info import machine, versions

    script = Path(sys.executable).parent / "fcndetect"  # the console script of this environment
    fcn = [str(script)] if script.is_file() else [sys.executable, "-c", "from fcndetect.cli import main; main()"]
    photos = [q for q in sorted(args.folder.iterdir()) if q.suffix.lower() in SUFFIXES
              and 0.4 <= megapixels(q) <= 6.0][: args.images]
    if not photos:
        sys.exit(f"startup.py: no photos of 0.4 to 6 Mpx in {args.folder}")
    sources = [("", None)]
    if args.compare is not None:
        sources.append((f" from {args.compare_label or args.compare.name}",
                        {**os.environ, "PYTHONPATH": str(args.compare.resolve())}))
    load_before = machine()
    rows = []
    with tempfile.TemporaryDirectory(prefix="fcndetect-startup-") as tmp:
        folder = Path(tmp)
        for q in photos:
            (folder / q.name).symlink_to(q.resolve())
        image = str(ROOT / "sample_images" / "astronaut.png")
        ours = [([*fcn, "run", image, "--quiet"], env) for _, env in sources]
        *medians, floor = interleaved([*ours, ([sys.executable, "-c", "import torch"], None)], args.startup_runs)
        for (label, _), a in zip(sources, medians):
            rows.append((f"start-up: `fcndetect run astronaut.png`{label}", "`python -c \"import torch\"`", a, floor,
                         args.startup_runs))
        ours = [([*fcn, "run", str(folder), "--quiet"], env) for _, env in sources]
        *medians, floor = interleaved([*ours, ([sys.executable, "-c", LIBRARY_LOOP, str(folder)], None)],
                                      args.folder_runs)
        sizes = [megapixels(q) for q in photos]
        for (label, _), a in zip(sources, medians):
            rows.append((f"folder: `fcndetect run DIR --quiet`{label}, {len(photos)} photos of "
                         f"{min(sizes):.1f}-{max(sizes):.1f} Mpx", "Python loop: `Detector()`, `load_image` + `det`",
                         a, floor, args.folder_runs))
    lines = [
        "# The command against its floor: start-up and a folder",
        "",
        f"Machine: {load_before} (before); load average {os.getloadavg()[0]:.2f} after.",
        f"Versions: {versions()}.",
        f"Command: `{shlex.join(['python', 'benchmarks/' + Path(__file__).name, *sys.argv[1:]])}`",
        f"Photos: the first {len(photos)} of 0.4-6 Mpx in `{args.folder.name}` by name. Commands interleaved in "
        "rounds, median wall time: the ratio is what counts on a shared machine.",
        "",
        "| measured | against | runs | measured (s) | against (s) | ratio |",
        "|---|---|---:|---:|---:|---:|",
        *(f"| {m} | {w} | {n} | {a:.2f} | {b:.2f} | {a / b:.2f}x |" for m, w, a, b, n in rows),
    ]
    text = "\n".join(lines) + "\n"
    print(text, end="")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
