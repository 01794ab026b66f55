"""Shared by the evaluation tests: a plain-Python reference of greedy matching, and random boxes."""

from __future__ import annotations

from types import SimpleNamespace

import pytest


def ref_iou(a, b):
    """IoU of two xyxy boxes, one pair at a time; 0 where the union is empty."""
    area_a = (a[2] - a[0]) * (a[3] - a[1])
    area_b = (b[2] - b[0]) * (b[3] - b[1])
    w = max(min(a[2], b[2]) - max(a[0], b[0]), 0.0)
    h = max(min(a[3], b[3]) - max(a[1], b[1]), 0.0)
    inter = w * h
    union = area_a + area_b - inter
    return inter / union if union > 0 else 0.0


def ref_match(boxes, scores, gt, thr):
    """Greedy matching, written out: by descending score (ties: input order), each detection takes the unmatched
    ground-truth box of highest IoU (ties: lowest index) if that IoU is >= ``thr``."""
    order = sorted(range(len(boxes)), key=lambda i: (-scores[i], i))
    used = [False] * len(gt)
    tp = [False] * len(boxes)
    for i in order:
        best, best_j = -1.0, -1
        for j, g in enumerate(gt):
            if not used[j]:
                o = ref_iou(boxes[i], g)
                if o > best:
                    best, best_j = o, j
        if best_j >= 0 and best >= thr:
            used[best_j] = True
            tp[i] = True
    return tp


def random_box(rng):
    """A random xyxy box with integer corners near the origin (zero width allowed)."""
    x, y = rng.randint(0, 20), rng.randint(0, 20)
    return [x, y, x + rng.randint(0, 12), y + rng.randint(1, 12)]


def jitter(rng, box):
    """``box`` with each corner moved by up to 0, 1 or 3 pixels, kept non-negative in size."""
    amplitude = rng.choice((0, 1, 1, 3))
    x1, y1, x2, y2 = (v + rng.randint(-amplitude, amplitude) for v in box)
    return [x1, y1, max(x1, x2), max(y1, y2)]


@pytest.fixture(scope="session")
def reference() -> SimpleNamespace:
    """The reference IoU and matcher, and the random box makers, for tests in this folder."""
    return SimpleNamespace(iou=ref_iou, match=ref_match, random_box=random_box, jitter=jitter)
