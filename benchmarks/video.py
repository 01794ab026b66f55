"""Video throughput: frames per second of the default preset on a 640x480 clip, with and without ``-o`` and
``--anonymize``, against facenet-pytorch's MTCNN on the same frames, in one run.

    python benchmarks/video.py [--photos DIR] [--hold 3] [--rounds 3] [--batch-size 1] [--threads N]

The clip is made here with ``cv2.VideoWriter`` (``mp4v``, 10 fps): every photo of ``--photos`` (default: the dev
photos) scaled to fit 640x480, centred on black, held ``--hold`` frames. After one warm-up pass, every
configuration processes the whole clip once per round, in turn, for ``--rounds`` rounds in this process (so a
busy spell of the machine hits them all alike); each one's best round is reported:

* ``run (records)``: ``BatchRunner`` on the clip, records only (decoding in its background thread included);
* ``run -o``: the same, also writing ``<name>.jsonl`` and the annotated MP4;
* ``run -o --anonymize blur``: also the anonymised MP4;
* ``detect_batch``: ``Detector.detect_batch`` on the frames already decoded (no I/O);
* ``MTCNN``: ``facenet_pytorch.MTCNN(keep_all=True).detect`` on the same decoded frames, as PIL images (no I/O).

Times are wall-clock seconds on this machine; ratios are what to compare (``x MTCNN``: MTCNN's time over
the configuration's, above 1 means faster than MTCNN).
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import fcndetect  # noqa: F401 - before torch: fcndetect sets OpenMP's wait policy first (fcndetect.threads)
import cv2
import numpy as np
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
DEV = REPO.parent / "shared" / "data" / "dev_faces"
SIZE = (640, 480)


def make_clip(photos: list[Path], hold: int, path: Path, fps: float = 10.0) -> list[np.ndarray]:
    """The clip's frames (RGB), written to ``path``."""
    frames = []
    for p in photos:
        im = Image.open(p).convert("RGB")
        s = min(SIZE[0] / im.width, SIZE[1] / im.height)
        nw, nh = round(im.width * s), round(im.height * s)
        canvas = Image.new("RGB", SIZE)
        canvas.paste(im.resize((nw, nh), Image.LANCZOS), ((SIZE[0] - nw) // 2, (SIZE[1] - nh) // 2))
        frames += [np.asarray(canvas)] * hold
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, SIZE)
    for f in frames:
        writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    writer.release()
    return frames


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", default=str(DEV))
    ap.add_argument("--hold", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=1)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()

    from fcndetect import Detector, __version__
    from fcndetect.io.video import open_video
    from fcndetect.runner import BatchRunner, RunOptions

    photos = sorted(p for p in Path(args.photos).glob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if not photos:
        print(f"video.py: no photos in {args.photos}", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    det = Detector()
    cores = os.cpu_count() or 1
    print(f"# {datetime.now(timezone.utc).isoformat(timespec='seconds')} | {platform.machine()}, {cores} cores, "
          f"torch {torch.__version__} ({torch.get_num_threads()} threads), fcndetect {__version__}, "
          f"model {det.config.chain}")
    print(f"# command: python benchmarks/{Path(__file__).name} {' '.join(sys.argv[1:])}")
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "clip.mp4"
        make_clip(photos, args.hold, clip)
        with open_video(clip) as reader:
            frames = [f.image for f in reader.frames()]  # the pixels every configuration sees
        print(f"# clip: {len(frames)} frames, {SIZE[0]}x{SIZE[1]}, 10 fps, mp4v ({len(photos)} photos held "
              f"{args.hold} frames); batch size {args.batch_size}; best of {args.rounds} round(s)\n")

        def run(output: bool, anonymize: str | None) -> float:
            out = Path(tempfile.mkdtemp(dir=tmp)) if output else None
            opts = RunOptions(output=out, batch_size=args.batch_size, quiet=True, anonymize=anonymize)
            t = time.perf_counter()
            summary = BatchRunner(det, opts, out=io.StringIO(), err=io.StringIO()).run([str(clip)])
            dt = time.perf_counter() - t
            if summary.n_failed or summary.n_records != len(frames):
                raise RuntimeError(f"the run failed: {summary.n_failed} error record(s)")
            return dt

        def detect_batch() -> float:
            t = time.perf_counter()
            for k in range(0, len(frames), args.batch_size):
                det.detect_batch(frames[k:k + args.batch_size])
            return time.perf_counter() - t

        configs = {"run (records)": lambda: run(False, None), "run -o": lambda: run(True, None),
                   "run -o --anonymize blur": lambda: run(True, "blur"), "detect_batch (decoded frames)": detect_batch}
        try:
            from facenet_pytorch import MTCNN

            mtcnn = MTCNN(keep_all=True, device="cpu")
            pil = [Image.fromarray(f) for f in frames]

            def mtcnn_run() -> float:
                t = time.perf_counter()
                for im in pil:
                    mtcnn.detect(im)
                return time.perf_counter() - t

            configs["MTCNN (facenet-pytorch, decoded frames)"] = mtcnn_run
        except ImportError as exc:
            print(f"# MTCNN skipped: {exc}")
        run(False, None)  # warm-up: first-call allocations, lazy imports
        times = {name: float("inf") for name in configs}
        for _ in range(max(1, args.rounds)):
            for name, fn in configs.items():
                times[name] = min(times[name], fn())
    ref = times.get("MTCNN (facenet-pytorch, decoded frames)")
    print("| configuration | seconds | frames/s | x MTCNN |\n|---|---:|---:|---:|")
    for name, t in times.items():
        ratio = f"{ref / t:.2f}" if ref else "-"
        print(f"| {name} | {t:.2f} | {len(frames) / t:.1f} | {ratio} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
