"""NMS-avg against NMS-max on many boxes, side by side in one process: the time ratio is the claim.

Also times the per-cluster loop NMS-avg that fcndetect 0.1.0 shipped (each cluster against all N boxes),
kept here only as the "before" figure.

    python benchmarks/nms.py [--boxes 20000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from datetime import datetime, timezone

import torch
from torchvision.ops import box_iou

from fcndetect.boxes import nms_avg, nms_max


def loop_nms_avg(boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor, thr: float) -> int:
    """fcndetect 0.1.0's NMS-avg: one iteration per cluster, each computing IoU against all N boxes."""
    n = boxes.shape[0]
    order = torch.argsort(scores, descending=True, stable=True)
    b, lab = boxes[order].double(), labels[order]
    alive = torch.ones(n, dtype=torch.bool)
    seed, clusters = 0, 0
    while seed < n:
        iou = box_iou(b[seed : seed + 1], b)[0]
        cluster = alive & (lab == lab[seed]) & (iou > thr)
        cluster[seed] = True
        _ = b[cluster].mean(dim=0)
        clusters += 1
        alive &= ~cluster
        remaining = torch.nonzero(alive[seed:])
        seed = seed + int(remaining[0]) if remaining.numel() else n
    return clusters


def pyramid_like_boxes(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``n`` windows of a 3-scales-per-octave pyramid over a 4000x3000 photo, with random logits."""
    g = torch.Generator().manual_seed(seed)
    side = 24 * 2 ** (torch.randint(0, 15, (n,), generator=g).float() / 3)
    x1 = torch.rand(n, generator=g) * (4000 - side)
    y1 = torch.rand(n, generator=g) * (3000 - side)
    boxes = torch.stack([x1, y1, x1 + side, y1 + side], dim=1)
    return boxes, torch.randn(n, generator=g) * 4, torch.zeros(n, dtype=torch.int64)


def best_of(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--boxes", type=int, nargs="+", default=[2000, 20000])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--iou", type=float, default=0.3)
    args = ap.parse_args()
    print(f"# {datetime.now(timezone.utc).isoformat(timespec='seconds')} | {platform.machine()}, "
          f"{os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("\n| boxes | nms_max ms | nms_avg ms | nms_avg / nms_max | 0.1.0 loop nms_avg ms | loop / nms_avg |")
    print("|---:|---:|---:|---:|---:|---:|")
    for n in args.boxes:
        boxes, scores, labels = pyramid_like_boxes(n)
        t_max = best_of(lambda: nms_max(boxes, scores, labels, args.iou), args.repeat)
        t_avg = best_of(lambda: nms_avg(boxes, scores, labels, args.iou), args.repeat)
        t_loop = best_of(lambda: loop_nms_avg(boxes, scores, labels, args.iou), 1)
        print(f"| {n} | {t_max * 1e3:.1f} | {t_avg * 1e3:.1f} | {t_avg / t_max:.2f}x | {t_loop * 1e3:.1f} | "
              f"{t_loop / t_avg:.1f}x |")


if __name__ == "__main__":
    from record import recorded

    raise SystemExit(recorded(__file__, main))
