"""Annotated images: boxes with labels and scores, and score-map heatmaps overlaid on the image."""

from __future__ import annotations

import cv2
import numpy as np

from ..detections import Detections
from ..geometry import Geometry

__all__ = ["draw_detections", "heatmap_overlay", "encode_image"]

_COLORS = [(0, 255, 0), (255, 64, 64), (64, 160, 255), (255, 200, 0), (255, 0, 255), (0, 255, 255)]


def draw_detections(image: np.ndarray, detections: Detections) -> np.ndarray:
    """A copy of ``[H, W, 3]`` uint8 RGB ``image`` with each box and ``label score`` drawn on it."""
    out = np.ascontiguousarray(image.copy())
    h, w = out.shape[:2]
    thick = max(1, round(min(h, w) / 300))
    font = max(0.4, min(h, w) / 900)
    for box, score, label in zip(detections.boxes, detections.scores, detections.labels):
        color = _COLORS[int(label) % len(_COLORS)]
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        cv2.rectangle(out, (x1, y1), (x2 - 1, y2 - 1), color, thick, cv2.LINE_AA)
        text = f"{detections.class_names[int(label)]} {score:.2f}"
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font, 1)
        ty = y1 - 3 if y1 - th - base - 3 >= 0 else min(h - 1, y2 + th + 3)
        cv2.rectangle(out, (x1, ty - th - base + 1), (x1 + tw + 2, ty + base - 1), color, -1)
        cv2.putText(out, text, (x1 + 1, ty - 1), cv2.FONT_HERSHEY_SIMPLEX, font, (0, 0, 0), 1, cv2.LINE_AA)
    return out


def heatmap_overlay(image: np.ndarray, detections: Detections, geometry: Geometry, alpha: float = 0.5) -> np.ndarray:
    """The image with the score maps overlaid: per pixel, the best score over levels and classes of the
    cells whose window centre is nearest to it (pixels no window centre reaches stay at 0).

    Args:
        image: ``[H, W, 3]`` uint8 RGB.
        detections: with ``score_maps`` (detect with ``return_maps=True``).
        geometry: the dense network's geometry, to place each cell at its window's centre.
    """
    if detections.score_maps is None:
        raise ValueError("detections carry no score maps (detect with return_maps=True)")
    h, w = image.shape[:2]
    acc = np.zeros((h, w), np.float32)
    centre = geometry.offset + geometry.window / 2
    xs = np.arange(w, dtype=np.float64) + 0.5
    ys = np.arange(h, dtype=np.float64) + 0.5
    for sm in detections.score_maps:
        m = sm.scores.max(axis=0).astype(np.float32)
        cols = np.round((xs * sm.sx - centre) / geometry.stride).astype(np.int64)
        rows = np.round((ys * sm.sy - centre) / geometry.stride).astype(np.int64)
        cin = (cols >= 0) & (cols < m.shape[1])
        rin = (rows >= 0) & (rows < m.shape[0])
        level = m[np.clip(rows, 0, m.shape[0] - 1)][:, np.clip(cols, 0, m.shape[1] - 1)]
        level *= rin[:, None] & cin[None, :]
        np.maximum(acc, level, out=acc)
    colored = cv2.applyColorMap((acc * 255).astype(np.uint8), cv2.COLORMAP_JET)[:, :, ::-1]
    return (image.astype(np.float32) * (1 - alpha) + colored.astype(np.float32) * alpha).astype(np.uint8)


def encode_image(image: np.ndarray, ext: str) -> bytes:
    """Encode ``[H, W, 3]`` uint8 RGB as ``ext`` (``.jpg``, ``.png``, ...); unknown extensions become PNG."""
    ext = ext.lower() if ext.lower() in {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"} else ".png"
    ok, buf = cv2.imencode(ext, image[:, :, ::-1])
    if not ok:
        raise ValueError(f"cannot encode image as {ext}")
    return buf.tobytes()

