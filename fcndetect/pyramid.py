"""Image pyramid: which scales to evaluate, and resizing to them.

A level at scale ``s`` is the image resized by ``s``, so that an object of ``window / s`` pixels in the image
fills the classifier's window. Scales run from ``window / min_size`` (the smallest object searched for;
above 1, the image is upsampled) down to ``window / max_size``, multiplied by ``scale_factor`` (< 1) at
each step (DDFD: ``2 ** (-1 / 3)``, three scales per octave).

Each level is resized from the level before it (:func:`pyramid_images`), not from the image: a level then
reads about 1.6 times its own pixels instead of the whole image, which on AFW's 1-4 Mpx photos took the
pyramid's resizing from 137 to 10 ms per photo (``benchmarks/frontier.py``'s sets, one thread).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["Level", "pyramid_scales", "pyramid_levels", "resize_image", "pyramid_images", "iter_pyramid_images"]


#: The most levels one pyramid may have (a guard for direct callers; the settings' own bound on
#: ``scale_factor``, at most 32 levels per octave, keeps runs far below it).
MAX_LEVELS = 4096


@dataclass(frozen=True)
class Level:
    """One pyramid level: the nominal scale and the level's actual size in pixels.

    ``sx = width / image_width`` and ``sy = height / image_height`` are the exact factors (sizes are
    rounded to whole pixels) used to map level pixels back to the image.
    """

    scale: float
    width: int
    height: int
    sx: float
    sy: float


def pyramid_scales(
    image_size: tuple[int, int],
    window: int,
    min_size: float,
    max_size: float | None = None,
    scale_factor: float = 2 ** (-1 / 3),
) -> list[float]:
    """Scales of the pyramid, largest first.

    Args:
        image_size: ``(width, height)`` of the image in pixels.
        window: the classifier's window side in pixels.
        min_size: smallest object side to find, in image pixels (> 0).
        max_size: largest object side to find; ``None`` means the image's shorter side.
        scale_factor: ratio between consecutive scales, in (0, 1).

    Returns:
        scales ``s`` such that every level is at least ``window`` pixels on each side.
    """
    if not 0.0 < scale_factor < 1.0:
        raise ValueError(f"scale_factor must be in (0, 1), got {scale_factor}")
    if min_size <= 0:
        raise ValueError(f"min_size must be > 0, got {min_size}")
    width, height = image_size
    short = min(width, height)
    largest = short if max_size is None else min(max_size, short)
    if largest < min_size:
        return []
    s_min = window / largest
    s_max = window / min_size
    if s_max > s_min and math.log(s_max / s_min) / -math.log(scale_factor) > MAX_LEVELS:
        raise ValueError(f"scale_factor {scale_factor} would give more than {MAX_LEVELS} pyramid levels "
                         f"(from scale {s_max:.4g} down to {s_min:.4g})")
    scales = []
    s = window / min_size
    # Step so that the smallest scale is reached within rounding; never go below one window.
    while s >= s_min * (1 - 1e-9) and round(short * s) >= window:
        scales.append(s)
        s *= scale_factor
    return scales


def pyramid_levels(
    image_size: tuple[int, int],
    window: int,
    min_size: float,
    max_size: float | None = None,
    scale_factor: float = 2 ** (-1 / 3),
) -> list[Level]:
    """:func:`pyramid_scales` with each level's rounded size and exact per-axis factors."""
    width, height = image_size
    levels = []
    for s in pyramid_scales(image_size, window, min_size, max_size, scale_factor):
        w = max(1, int(round(width * s)))
        h = max(1, int(round(height * s)))
        if w < window or h < window:
            continue
        levels.append(Level(scale=s, width=w, height=h, sx=w / width, sy=h / height))
    return levels


def resize_image(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize an ``[H, W, C]`` uint8/float image: area averaging to shrink, bilinear to enlarge."""
    h, w = image.shape[:2]
    if (w, h) == (width, height):
        return image
    shrink = width * height < w * h
    interp = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    out = cv2.resize(image, (width, height), interpolation=interp)
    if out.ndim == 2:
        out = out[:, :, None]
    return out


def iter_pyramid_images(image: np.ndarray, levels: list[Level]) -> Iterator[np.ndarray]:
    """The ``[h, w, C]`` image of every level, largest first, each resized from the one before it (the first
    from ``image``) with :func:`resize_image`, made as they are asked for. ``levels`` must be ordered largest
    first (:func:`pyramid_levels`)."""
    prev = image
    for level in levels:
        prev = resize_image(prev, level.width, level.height)
        yield prev


def pyramid_images(image: np.ndarray, levels: list[Level]) -> list[np.ndarray]:
    """Every level's image at once (:func:`iter_pyramid_images`)."""
    return list(iter_pyramid_images(image, levels))
