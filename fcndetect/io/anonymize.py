"""Anonymisation: every detection's region blurred, pixelated or filled; nothing drawn.

A region is the ellipse centred on the box whose semi-axes are the box's half-sides grown by ``margin`` (a
fraction of the box's side on each side: ``1 + 2 * margin`` times the half-sides), and never less than
``sqrt(2)`` times them: the ellipse circumscribing the box, so a region always contains its whole box.
The default margin (:data:`DEFAULT_MARGIN`) takes the default face preset's boxes, which run from the brows to
the chin and from cheek to cheek, out to the forehead and the ears.

Boxes are ``[x1, y1, x2, y2]`` floats in the image's pixels with continuous edges (``[0, 0, W, H]`` is the whole
image).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

__all__ = ["ANONYMIZE_METHODS", "DEFAULT_MARGIN", "DEFAULT_HOLD", "region_ellipse", "region_mask", "anonymize"]

ANONYMIZE_METHODS = ("blur", "pixelate", "solid")
#: Default growth of each region, as a fraction of the box's side on each side.
DEFAULT_MARGIN = 0.3
#: Videos: frames a face's region stays anonymised after its last detection and before its first (chosen on
#: panned, zoomed, blurred and occluded clips: benchmarks/video_anonymize.py).
DEFAULT_HOLD = 8
#: Blur: the Gaussian's sigma as a fraction of the region's larger semi-axis (the kernel grows with the box).
_BLUR_SIGMA_FRACTION = 0.25
#: Pixelate: cells across the region's larger axis.
_PIXEL_CELLS = 8


def region_ellipse(box: Sequence[float] | np.ndarray, margin: float) -> tuple[float, float, float, float]:
    """``(cx, cy, a, b)``: the centre and the semi-axes (x, y) of one box's region (see the module docstring).

    Args:
        box: ``[x1, y1, x2, y2]``, continuous pixel edges.
        margin: growth on each side, a fraction of the box's side (>= 0).
    """
    x1, y1, x2, y2 = (float(v) for v in box)
    hw, hh = max(0.0, x2 - x1) / 2, max(0.0, y2 - y1) / 2
    grow = max(1.0 + 2.0 * margin, math.sqrt(2.0))
    return (x1 + x2) / 2, (y1 + y2) / 2, hw * grow, hh * grow


def region_mask(shape: tuple[int, int], boxes: np.ndarray | Sequence[Sequence[float]], margin: float) -> np.ndarray:
    """``[H, W]`` bool: the pixels whose centres lie in some box's region (``boxes``: ``[N, 4]`` x1, y1, x2, y2)."""
    h, w = shape
    mask = np.zeros((h, w), bool)
    ys = np.arange(h, dtype=np.float64) + 0.5
    xs = np.arange(w, dtype=np.float64) + 0.5
    for box in np.asarray(boxes, dtype=np.float64).reshape(-1, 4):
        cx, cy, a, b = region_ellipse(box, margin)
        if a <= 0 or b <= 0:
            continue
        c0, c1 = max(0, int(math.floor(cx - a))), min(w, int(math.ceil(cx + a)))
        r0, r1 = max(0, int(math.floor(cy - b))), min(h, int(math.ceil(cy + b)))
        if c0 >= c1 or r0 >= r1:
            continue
        dx = ((xs[c0:c1] - cx) / a) ** 2
        dy = ((ys[r0:r1] - cy) / b) ** 2
        mask[r0:r1, c0:c1] |= (dy[:, None] + dx[None, :]) <= 1.0
    return mask


def _blurred(patch: np.ndarray, side: float) -> np.ndarray:
    """``patch`` blurred by a Gaussian of sigma ``_BLUR_SIGMA_FRACTION * side`` (the kernel grows with the
    region). A wide one runs on the patch shrunk so that its sigma is about 2 px there, then enlarged again
    (bilinear): the same smoothness at a small fraction of the cost of a full-size kernel."""
    sigma = max(1.0, _BLUR_SIGMA_FRACTION * side)
    h, w = patch.shape[:2]
    shrink = max(1, int(sigma // 2))
    if shrink == 1:
        return cv2.GaussianBlur(patch, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
    small = cv2.resize(patch, (max(1, round(w / shrink)), max(1, round(h / shrink))), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), sigma / shrink, borderType=cv2.BORDER_REFLECT)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def _pixelated(patch: np.ndarray, side: float) -> np.ndarray:
    cell = max(2, int(round(2 * side / _PIXEL_CELLS)))
    h, w = patch.shape[:2]
    small = cv2.resize(patch, (max(1, math.ceil(w / cell)), max(1, math.ceil(h / cell))), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)


def anonymize(image: np.ndarray, boxes: np.ndarray | Sequence[Sequence[float]], method: str = "blur",
              margin: float = DEFAULT_MARGIN) -> np.ndarray:
    """A copy of ``image`` (``[H, W, 3]`` uint8) with every box's region anonymised.

    Args:
        image: ``[H, W, 3]`` uint8 (any channel order).
        boxes: ``[N, 4]`` ``[x1, y1, x2, y2]`` in the image's pixels, continuous edges.
        method: ``blur`` (a Gaussian whose sigma is a quarter of the region's larger semi-axis, run on a shrunk
            copy when it is wide), ``pixelate``
            (about 8 cells across the region) or ``solid`` (filled black).
        margin: each region's growth (see the module docstring).

    Raises:
        ValueError: an unknown method or a negative margin.
    """
    if method not in ANONYMIZE_METHODS:
        raise ValueError(f"anonymize: unknown method {method!r} (expected one of {', '.join(ANONYMIZE_METHODS)})")
    if not margin >= 0:
        raise ValueError(f"anonymize: margin must be >= 0, got {margin}")
    out = np.array(image, dtype=np.uint8, copy=True)
    h, w = out.shape[:2]
    for box in np.asarray(boxes, dtype=np.float64).reshape(-1, 4):
        cx, cy, a, b = region_ellipse(box, margin)
        side = max(a, b)
        if side <= 0:
            continue
        # the region's bounding rectangle, padded so the blur sees real pixels around it
        pad = int(math.ceil(side)) if method == "blur" else 0
        c0, c1 = max(0, int(math.floor(cx - a)) - pad), min(w, int(math.ceil(cx + a)) + pad)
        r0, r1 = max(0, int(math.floor(cy - b)) - pad), min(h, int(math.ceil(cy + b)) + pad)
        if c0 >= c1 or r0 >= r1:
            continue
        mask = region_mask((r1 - r0, c1 - c0), [[box[0] - c0, box[1] - r0, box[2] - c0, box[3] - r0]], margin)
        patch = out[r0:r1, c0:c1]
        if method == "blur":
            filled = _blurred(patch, side)
        elif method == "pixelate":
            filled = _pixelated(patch, side)
        else:
            filled = np.zeros_like(patch)
        patch[mask] = filled[mask]
    return out
