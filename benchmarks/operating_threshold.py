"""The default's operating threshold with and without rotations: faces found at IoU 0.4 and false positives
on dev_faces at thresholds 0.97, 0.98 and 0.99 (detections of one run at threshold 0.9, cut afterwards).

    python benchmarks/operating_threshold.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "dev_faces"


def main() -> int:
    from fcndetect import Detector
    from fcndetect.evaluate import load_annotations, match_image
    from fcndetect.io.images import load_image

    torch.set_num_threads(1)
    gt = {**load_annotations(DATA / "training.xml"), **load_annotations(DATA / "testing.xml")}
    images = {n: load_image(DATA / n) for n in gt}
    print("| rotations | threshold | faces at IoU 0.4 | false positives |\n|---|---:|---:|---:|")
    for rotations in [(0,), (0, 90, 180, 270)]:
        det = Detector(threshold=0.9, rotations=rotations)
        results = {n: det(images[n]) for n in gt}
        for threshold in (0.97, 0.98, 0.99):
            tp = fp = 0
            for n, r in results.items():
                keep = r.scores > threshold
                hit = match_image(r.boxes[keep].astype(float), r.logits[keep].astype(float),
                                  np.asarray(gt[n], float), 0.4)
                tp, fp = tp + int(hit.sum()), fp + int((~hit).sum())
            print(f"| {list(rotations)} | {threshold} | {tp}/{sum(len(g) for g in gt.values())} | {fp} |", flush=True)
    return 0


if __name__ == "__main__":
    from record import recorded

    raise SystemExit(recorded(__file__, main))
