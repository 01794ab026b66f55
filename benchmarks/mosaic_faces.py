"""Recall on faces no threshold was chosen on: mosaics of ``train_faces`` crops pasted into face-free scenes.

Builds (seeded) 40 images: a ``nonface_scenes`` photo scaled to 640 px, with up to 10 grayscale 36x36
face crops from ``faces_36`` pasted at random sizes (28-110 px) and places, not overlapping. The crop is the
ground-truth box. Then, per configuration, at threshold 0.5: time per image, AP at IoU 0.3, recall at 10 and
167 false positives, and for a cascade the fraction of faces that some window overlaps (IoU >= 0.3) after
each stage.

    python benchmarks/mosaic_faces.py ["stage_thresholds=[0.6, 0.1]" "model='face'" ...]

Each argument is a set of Detector keyword arguments (Python syntax); none means the default preset.
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path

import cv2
import numpy as np

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "train_faces"


def build(n_images: int = 40, faces_per_image: int = 10, seed: int = 0) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The mosaics (``[H, W, 3]`` uint8 RGB) and their face boxes (``[N, 4]`` xyxy)."""
    rng = random.Random(seed)
    faces = sorted((DATA / "faces_36").glob("*.jpg"))
    scenes = sorted((DATA / "nonface_scenes").glob("*.jpg"))
    rng.shuffle(faces)
    rng.shuffle(scenes)
    images, truth, next_face = [], [], 0
    for k in range(n_images):
        bg = cv2.imread(str(scenes[k]))[:, :, ::-1]
        h, w = bg.shape[:2]
        s = 640 / max(h, w)
        bg = np.ascontiguousarray(cv2.resize(bg, (int(w * s), int(h * s)), interpolation=cv2.INTER_AREA))
        height, width = bg.shape[:2]
        boxes: list[list[int]] = []
        for _ in range(60):
            if len(boxes) >= faces_per_image:
                break
            side = int(rng.uniform(28, 110))
            x, y = rng.randrange(0, width - side), rng.randrange(0, height - side)
            if any(not (x + side < b[0] or b[2] < x or y + side < b[1] or b[3] < y) for b in boxes):
                continue
            face = cv2.imread(str(faces[next_face]))[:, :, ::-1]
            next_face += 1
            interp = cv2.INTER_AREA if side < 36 else cv2.INTER_LINEAR
            bg[y : y + side, x : x + side] = cv2.resize(face, (side, side), interpolation=interp)
            boxes.append([x, y, x + side, y + side])
        images.append(bg)
        truth.append(np.array(boxes, np.float64).reshape(-1, 4))
    return images, truth


def main(argv: list[str]) -> int:
    if not DATA.is_dir():
        print(f"{DATA} is absent", file=sys.stderr)
        return 2
    from fcndetect import Detector
    from fcndetect.evaluate import box_iou, evaluate

    images, truth = build()
    gt = {f"m{k}": g for k, g in enumerate(truth)}
    n = sum(len(g) for g in truth)
    print(f"# {len(images)} mosaics, {n} faces from {DATA}, threshold 0.5, IoU 0.3")
    print("| configuration | ms/image | AP | recall@10FP | recall@167FP | max recall | survived each stage |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for spec in argv or [""]:
        kwargs = eval(f"dict({spec})")  # noqa: S307 - a benchmark's own command line
        det = Detector(**{"threshold": 0.5, **kwargs})
        det(images[0])
        t0 = time.perf_counter()
        out = {}
        for k, im in enumerate(images):
            d = det(im)
            out[f"m{k}"] = (d.boxes.astype(np.float64), d.logits.astype(np.float64))
        ms = (time.perf_counter() - t0) / len(images) * 1e3
        stages: dict[str, int] = {}
        if det.stage_models:
            for im, g in zip(images, truth):
                for name, b in det.stage_windows(im):
                    hit = int((box_iou(g, b.double().numpy()).max(axis=1) >= 0.3).sum()) if len(b) else 0
                    stages[name] = stages.get(name, 0) + hit
        r = evaluate(out, gt, iou_thresholds=(0.3,), fp_points=(10, 167)).to_json()["results"][0]
        survived = ", ".join(f"{k} {v / n:.3f}" for k, v in stages.items()) or "-"
        print(f"| `{spec or 'default preset'}` | {ms:.1f} | {r['ap']:.3f} | {r['recall_at_fp']['10']:.3f} | "
              f"{r['recall_at_fp']['167']:.3f} | {r['max_recall']:.3f} | {survived} |")
    return 0


if __name__ == "__main__":
    from record import recorded

    raise SystemExit(recorded(__file__, lambda: main(sys.argv[1:])))
