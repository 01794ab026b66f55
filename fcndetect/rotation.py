"""In-plane rotations: rotate an image, and map points found in it back to the original.

Angles are degrees, counter-clockwise as the image is displayed (``y`` down), about the image centre; the
canvas grows to hold the whole rotated image, and what lies outside the original is zeros. Multiples of 90
degrees move pixels exactly (``numpy.rot90``); other angles resample bilinearly.

Points are ``(x, y)`` in continuous pixel coordinates (``[0, 0, W, H]`` is the whole image).
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch

__all__ = ["rotation_matrix", "rotate_image", "map_points", "box_corners", "quad_boxes"]


def rotation_matrix(width: int, height: int, angle: float) -> tuple[np.ndarray, tuple[int, int]]:
    """The ``[2, 3]`` affine map from original to rotated coordinates, and the rotated canvas ``(W', H')``."""
    a = math.radians(angle)
    c, s = math.cos(a), math.sin(a)
    if abs(c) < 1e-12:
        c = 0.0
    if abs(s) < 1e-12:
        s = 0.0
    new_w = int(round(abs(width * c) + abs(height * s)))
    new_h = int(round(abs(width * s) + abs(height * c)))
    cx, cy = width / 2, height / 2
    m = np.array([[c, s, new_w / 2 - c * cx - s * cy], [-s, c, new_h / 2 + s * cx - c * cy]], np.float64)
    return m, (new_w, new_h)


def rotate_image(image: np.ndarray, angle: float) -> tuple[np.ndarray, np.ndarray]:
    """``image`` (``[H, W, C]``) rotated by ``angle`` degrees counter-clockwise, and the ``[2, 3]`` map from
    original to rotated coordinates (:func:`rotation_matrix`)."""
    h, w = image.shape[:2]
    m, (new_w, new_h) = rotation_matrix(w, h, angle)
    quarter = angle / 90.0
    if abs(quarter - round(quarter)) < 1e-9:
        return np.ascontiguousarray(np.rot90(image, int(round(quarter)) % 4)), m
    shifted = m.copy()  # cv2 maps pixel indices (centres at i + 0.5): conjugate by the half-pixel shift
    shifted[:, 2] += m[:, :2] @ np.array([0.5, 0.5]) - 0.5
    out = cv2.warpAffine(image, shifted, (new_w, new_h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                         borderValue=0)
    return (out if out.ndim == 3 else out[:, :, None]), m


def map_points(points: torch.Tensor, m: np.ndarray, inverse: bool = False) -> torch.Tensor:
    """Apply the affine ``m`` (``[2, 3]``) to ``[..., 2]`` points, or its inverse."""
    mat = torch.as_tensor(m, dtype=torch.float64)
    a, t = mat[:, :2], mat[:, 2]
    p = points.to(torch.float64)
    if inverse:
        return (p - t) @ torch.linalg.inv(a).T
    return p @ a.T + t


def box_corners(boxes: torch.Tensor) -> torch.Tensor:
    """``[N, 4]`` xyxy boxes as ``[N, 4, 2]`` corners: top-left, top-right, bottom-right, bottom-left."""
    x1, y1, x2, y2 = boxes.unbind(dim=1)
    return torch.stack([torch.stack([x1, y1], 1), torch.stack([x2, y1], 1), torch.stack([x2, y2], 1),
                        torch.stack([x1, y2], 1)], dim=1)


def quad_boxes(quads: torch.Tensor) -> torch.Tensor:
    """``[N, 4, 2]`` corner sets as their axis-aligned ``[N, 4]`` xyxy boxes."""
    return torch.cat([quads.min(dim=1).values, quads.max(dim=1).values], dim=1)
