"""The trained face cascade against today's and facenet-pytorch's MTCNN: AP at IoU 0.3 and time, side by side.

    python benchmarks/face_training.py [--configs face-wider face-mtcnn] [--sets dev_faces afw_dev wider_val]
        [--train-dir OUT] [--threads 2] [--output benchmarks/results/face_training.md]

Every configuration is ``Detector(config, threshold=0.5)`` (the acceptance's setting), built once; MTCNN is
``MTCNN(keep_all=True, min_face_size=20, thresholds=[0.6, 0.7, 0.5])``. Each gets one untimed warm-up call on
the set's first image; then, per image, every detector runs in turn on the already decoded RGB array
(interleaved, so that load from other processes hits all alike), timed with ``time.perf_counter``.
Detections are ranked by ``Detections.logits`` (MTCNN: its probabilities). ``x MTCNN`` is a detector's total
time over MTCNN's on the same set.

Sets: ``dev_faces`` and ``afw_dev`` (``../shared/data``), and ``wider_val``: the photos of ``wider_train`` that
``configs/train/face.toml`` holds out (its seeded split by photo; no stage trained on them), where invalid faces
and faces under 20 px are ignored (a detection on one counts neither way). ``--train-dir`` adds the training
time per stage from that run's ``train.json``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import fcndetect  # noqa: F401 - before torch: sets OpenMP's short spin, as the fcndetect command does
import numpy as np
import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DATA = ROOT.parent / "shared" / "data"
RECIPE = ROOT / "configs" / "train" / "face.toml"
SETS = ("dev_faces", "afw_dev", "wider_val")


def load_set(name: str):
    """``(names, images, valid boxes by name, ignored boxes by name)``."""
    from fcndetect.evaluate import load_annotations
    from fcndetect.io.images import load_image

    if name == "wider_val":
        import os

        from fcndetect.train.faces import read_face_photos, split_photos
        from fcndetect.train.recipe import read_recipe
        from fcndetect.train.validate import fold_ground_truth

        recipe = read_recipe(RECIPE)
        cwd = os.getcwd()
        os.chdir(ROOT)  # the recipe's data paths are relative to the repository's root
        try:
            photos = read_face_photos(list(recipe.data.annotations), recipe.data.min_face)
            if recipe.data.max_photos:
                photos = photos[:recipe.data.max_photos]
            _, val = split_photos(photos, recipe.data.val_fraction, recipe.seed)
            gt = fold_ground_truth(val)
            names = [p.path for p in val]
            images = [load_image(n) for n in names]
        finally:
            os.chdir(cwd)
        return names, images, {k: v[0] for k, v in gt.items()}, {k: v[1] for k, v in gt.items()}
    folder = DATA / name
    files = [folder / "training.xml", folder / "testing.xml"] if name == "dev_faces" else [folder / "ground_truth.txt"]
    gt: dict[str, np.ndarray] = {}
    for f in files:
        gt.update({k: np.asarray(v, np.float64).reshape(-1, 4) for k, v in load_annotations(f).items()})
    names = sorted(gt)
    return names, [load_image(folder / n) for n in names], gt, {n: np.zeros((0, 4)) for n in names}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--configs", nargs="+", default=["face-wider", "face-mtcnn"],
                   help="presets or preset files, each run as Detector(config, threshold=0.5); "
                        "'NAME|key=value, ...' adds Detector keyword arguments (Python syntax)")
    p.add_argument("--sets", nargs="+", default=list(SETS), choices=SETS)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--limit", type=int, help="first N images of each set only")
    p.add_argument("--train-dir", type=Path, help="a `fcndetect train --recipe` output: its training times")
    p.add_argument("--output", type=Path, help="also write the table here (Markdown)")
    args = p.parse_args(argv)
    if not DATA.is_dir():
        sys.exit(f"face_training.py: {DATA} is absent")
    import cv2
    from facenet_pytorch import MTCNN
    from PIL import Image

    sys.path.insert(0, str(HERE))
    from machine_info import machine, versions

    from fcndetect import Detector
    from fcndetect.train.validate import ap_of, drop_ignored

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    def build(spec: str) -> Detector:
        name, _, extra = spec.partition("|")
        return Detector(name, **{"threshold": 0.5, **eval(f"dict({extra})")})  # noqa: S307 - the user's own flags

    detectors = [build(c) for c in args.configs]
    mtcnn = MTCNN(keep_all=True, device="cpu", min_face_size=20, thresholds=[0.6, 0.7, 0.5])
    command = shlex.join(["python", "benchmarks/face_training.py", *(sys.argv[1:] if argv is None else argv)])
    lines = [f"# {datetime.now(timezone.utc).isoformat(timespec='seconds')} | {machine()} | {versions()}",
             f"# command: {command}",
             "# Detector(config, threshold=0.5) vs MTCNN(keep_all=True, min_face_size=20, thresholds=[0.6, 0.7, 0.5]);"
             " interleaved per image, 1 warm-up call each, decoding excluded; AP at IoU 0.3 ranked by logits",
             "", "| set | detector | ms/image | x MTCNN | AP@0.3 | max recall | detections |",
             "|---|---|---:|---:|---:|---:|---:|"]
    print("\n".join(lines), flush=True)
    for set_name in args.sets:
        names, images, gt, ignored = load_set(set_name)
        if args.limit:
            names, images = names[:args.limit], images[:args.limit]
        gt = {n: gt[n] for n in names}
        pil = [Image.fromarray(im) for im in images]
        for det in detectors:
            det.detect_array(images[0])
        mtcnn.detect(pil[0])
        times = [0.0] * (len(detectors) + 1)
        outs: list[dict[str, tuple[np.ndarray, np.ndarray]]] = [{} for _ in range(len(detectors) + 1)]
        for name, im, pim in zip(names, images, pil):
            for k, det in enumerate(detectors):
                t0 = time.perf_counter()
                d = det.detect_array(im)
                times[k] += time.perf_counter() - t0
                outs[k][name] = drop_ignored(d.boxes, d.logits, gt[name], ignored[name])
            t0 = time.perf_counter()
            boxes, probs = mtcnn.detect(pim)
            times[-1] += time.perf_counter() - t0
            found = (np.zeros((0, 4)), np.zeros(0)) if boxes is None else (np.asarray(boxes), np.asarray(probs))
            outs[-1][name] = drop_ignored(*found, gt[name], ignored[name])
        labels = [*args.configs, "MTCNN (facenet-pytorch)"]
        n_faces = sum(len(v) for v in gt.values())
        for label, t, out in zip(labels, times, outs):
            r = ap_of(out, gt)
            row = (f"| {set_name} ({len(names)} photos, {n_faces} faces) | `{label}` | {1e3 * t / len(names):.1f} | "
                   f"{t / times[-1]:.2f}x | {r['ap']:.3f} | {r['max_recall']:.3f} | {r['detections']} |")
            lines.append(row)
            print(row, flush=True)
    if args.train_dir is not None:
        state = json.loads((args.train_dir / "train.json").read_text())
        lines += ["", "Training time per stage (seconds, `fcndetect train --recipe configs/train/face.toml`; window "
                  "collection and mining included, then the epochs):", "",
                  "| stage | total s | of which windows and mining s |", "|---|---:|---:|"]
        for stage, s in state.get("stage_seconds", {}).items():
            lines.append(f"| {stage} | {s:.0f} | {state.get('data_seconds', {}).get(stage, float('nan')):.0f} |")
        lines.append(f"| all | {sum(state.get('stage_seconds', {}).values()):.0f} | |")
        print("\n".join(lines[-(len(state.get('stage_seconds', {})) + 2):]))
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
