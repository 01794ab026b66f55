"""Annotated images: boxes with readable labels, and score-map heatmaps with a colour scale.

Boxes are ``[x1, y1, x2, y2]`` floats in the image's pixels with continuous edges. Line width and label size
follow each box's size, not the image's, so a 20 px face in a 5000 px photo gets a thin line and a small
label. Labels sit outside their box (above it, else below it), never on the object; on a crowded picture a
label that would overlap another label or another box is left out rather than drawn over a neighbour's face
(the best detections are placed first), as supervision's label annotator does. A label says what tells the
boxes apart: in a video the track id (``#7``), else the score with the digits that still differ near 1
(``0.9987``, not ``1.00``); the class name comes first only for models with several classes.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from ..detections import Detections, ScoreMap

__all__ = ["draw_detections", "heatmap_overlay", "heat_values", "encode_image", "label_style", "label_text",
           "upright_crops"]

_COLORS = [(0, 255, 0), (255, 64, 64), (64, 160, 255), (255, 200, 0), (255, 0, 255), (0, 255, 255)]
_FONT = cv2.FONT_HERSHEY_SIMPLEX
#: label text height as a fraction of the box's shorter side, and its bounds in pixels
_TEXT_FRACTION, _TEXT_MIN_PX, _TEXT_MAX_PX = 0.2, 8.0, 20.0

Rect = tuple[int, int, int, int]


def label_style(box_side: float) -> tuple[int, float]:
    """``(line thickness px, font scale)`` for a box whose shorter side is ``box_side`` pixels.

    The line is about 1/40 of the box (at least 1 px); the label's text is about a fifth of the box side, kept
    between 8 and 20 px tall so it stays legible on small boxes and covers little around large ones."""
    thick = max(1, int(round(box_side / 40)))
    text_px = min(_TEXT_MAX_PX, max(_TEXT_MIN_PX, _TEXT_FRACTION * box_side))
    (_, th), _ = cv2.getTextSize("Ag", _FONT, 1.0, 1)
    return thick, text_px / th


def label_text(score: float, label: str | None = None, track: int | None = None) -> str:
    """A box's label: ``#<track>`` when it has a track, else its score (two decimals, four from 0.99 on, cut
    rather than rounded so that nothing under 1 reads ``1``); ``label`` (the class name) first when given."""
    if track is not None and track > 0:
        value = f"#{track}"
    elif score >= 0.99:
        value = f"{math.floor(min(score, 0.99999) * 10000) / 10000:.4f}"
    else:
        value = f"{score:.2f}"
    return f"{label} {value}" if label else value


def _overlaps(a: Rect, b: Rect) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _place(box: Rect, size: tuple[int, int], thick: int, wh: tuple[int, int], taken: list[Rect],
           others: list[Rect]) -> Rect | None:
    """Where a label of ``wh`` goes: just above ``box``, else just below, inside the image, overlapping no
    label in ``taken`` and no box in ``others``; ``None`` when neither place is free."""
    w, h = size
    x1, y1, _x2, y2 = box
    tw, th = wh
    left = min(max(0, x1), max(0, w - tw))
    for top in (y1 - thick - th, y2 + thick):
        rect = (left, top, left + tw, top + th)
        if top < 0 or top + th > h:
            continue
        if any(_overlaps(rect, r) for r in taken) or any(_overlaps(rect, o) for o in others):
            continue
        return rect
    return None


def draw_detections(image: np.ndarray, detections: Detections, tracks: np.ndarray | None = None) -> np.ndarray:
    """A copy of ``[H, W, 3]`` uint8 RGB ``image`` with each box, its landmarks (dots) where it has them, and its
    label (:func:`label_text`; ``tracks``: ``[N]`` track ids, 0 for none) drawn on it, placed as the module
    docstring says."""
    out = np.ascontiguousarray(image.copy())
    h, w = out.shape[:2]
    multi = len(detections.class_names) > 1
    items: list[tuple[tuple[int, int, int, int], int, float, tuple[int, int, int], str]] = []
    for k, (box, score, label) in enumerate(zip(detections.boxes, detections.scores, detections.labels)):
        x1, y1, x2, y2 = (int(round(float(v))) for v in box)
        thick, font = label_style(max(1.0, min(x2 - x1, y2 - y1)))
        color = _COLORS[int(label) % len(_COLORS)]
        if detections.quads is not None and detections.angles is not None and float(detections.angles[k]) % 90:
            corners = np.round(detections.quads[k]).astype(np.int32)  # a window found under a tilt: its quad
            cv2.polylines(out, [corners], True, color, thick, cv2.LINE_AA)
        else:
            cv2.rectangle(out, (x1, y1), (x2 - 1, y2 - 1), color, thick, cv2.LINE_AA)
        if detections.landmarks is not None:  # five dots, sized like the line
            for x, y in detections.landmarks[k]:
                cv2.circle(out, (int(round(float(x))), int(round(float(y)))), thick + 1, color, -1, cv2.LINE_AA)
        track = int(tracks[k]) if tracks is not None else None
        text = label_text(float(score), detections.class_names[int(label)] if multi else None, track)
        items.append(((x1, y1, x2, y2), thick, font, color, text))
    # labels after every box, so no box hides a label; the best detections (first) are placed first
    boxes = [it[0] for it in items]
    taken: list[Rect] = []
    for k, (box, thick, font, color, text) in enumerate(items):
        text_thick = max(1, int(round(font * 1.5)))
        (tw, th), base = cv2.getTextSize(text, _FONT, font, text_thick)
        others = [b for j, b in enumerate(boxes) if j != k]
        rect = _place(box, (w, h), thick, (tw + 2, th + base + 2), taken, others)
        if rect is None:
            continue
        taken.append(rect)
        cv2.rectangle(out, rect[:2], (rect[2] - 1, rect[3] - 1), color, -1)
        cv2.putText(out, text, (rect[0] + 1, rect[1] + th + 1), _FONT, font, (0, 0, 0), text_thick, cv2.LINE_AA)
    return out


def _colour_scale(height: int, width: int) -> np.ndarray:
    """A ``[height, width, 3]`` uint8 RGB legend: the JET colour ramp from score 1 (top) to 0 (bottom), with
    the values 1.0, 0.5 and 0.0 written beside it."""
    panel = np.full((height, width, 3), 255, np.uint8)
    margin = max(4, height // 40)
    bar_w = max(6, width // 4)
    ramp_h = max(2, height - 2 * margin)
    values = np.linspace(255, 0, ramp_h).astype(np.uint8)[:, None]
    ramp = cv2.applyColorMap(np.repeat(values, bar_w, axis=1), cv2.COLORMAP_JET)[:, :, ::-1]
    panel[margin : margin + ramp_h, margin : margin + bar_w] = ramp
    font = max(0.3, min(1.5, height / 900))
    room = width - (margin + bar_w + 3) - 2  # the values stay inside the panel, and so inside the picture
    (tw, th), base = cv2.getTextSize("0.0", _FONT, font, 1)
    font *= min(1.0, room / max(tw, 1), (height / 3) / max(th + base, 1))
    for frac, text in ((0.0, "1.0"), (0.5, "0.5"), (1.0, "0.0")):
        (_, th), base = cv2.getTextSize(text, _FONT, font, 1)
        y = int(margin + frac * (ramp_h - 1))
        y = min(max(y + th // 2, th + 1), height - 1 - base)
        cv2.putText(panel, text, (margin + bar_w + 3, y), _FONT, font, (0, 0, 0), 1, cv2.LINE_AA)
    return panel


def _level_heat(sm: ScoreMap, width: int, height: int) -> np.ndarray:
    """``[height, width]`` float32: per pixel of the (possibly rotated) image the level was computed on, the
    best probability over classes of the cell whose window centre is nearest (0 where no centre reaches)."""
    if sm.geometry is None:
        raise ValueError("score map carries no geometry")
    g = sm.geometry
    centre = g.offset + g.window / 2
    m = sm.scores.max(axis=0).astype(np.float32)
    xs = np.arange(width, dtype=np.float64) + 0.5
    ys = np.arange(height, dtype=np.float64) + 0.5
    cols = np.round((xs * sm.sx - centre) / g.stride).astype(np.int64)
    rows = np.round((ys * sm.sy - centre) / g.stride).astype(np.int64)
    cin = (cols >= 0) & (cols < m.shape[1])
    rin = (rows >= 0) & (rows < m.shape[0])
    level = m[np.clip(rows, 0, m.shape[0] - 1)][:, np.clip(cols, 0, m.shape[1] - 1)]
    level *= rin[:, None] & cin[None, :]
    return level


def heat_values(score_maps: list[ScoreMap], width: int, height: int) -> np.ndarray:
    """``[height, width]`` float32 in [0, 1]: per pixel of the original image, the best probability over
    levels, classes and angles of the cells whose window centre is nearest to it.

    A level found under a rotation (:attr:`~fcndetect.detections.ScoreMap.angle`) is computed on its rotated
    canvas, then carried back to the original pixels (nearest neighbour, through
    :func:`fcndetect.rotation.rotation_matrix`)."""
    acc = np.zeros((height, width), np.float32)
    by_angle: dict[float, list[ScoreMap]] = {}
    for sm in score_maps:
        by_angle.setdefault(float(sm.angle), []).append(sm)
    for angle, maps in by_angle.items():
        if angle == 0.0:
            for sm in maps:
                np.maximum(acc, _level_heat(sm, width, height), out=acc)
            continue
        from ..rotation import rotation_matrix  # imports torch: only for maps found under a rotation

        m, (rw, rh) = rotation_matrix(width, height, angle)
        rotated = np.zeros((rh, rw), np.float32)
        for sm in maps:
            np.maximum(rotated, _level_heat(sm, rw, rh), out=rotated)
        # pixel centres: original (x + 0.5, y + 0.5) -> rotated m @ (x + 0.5, y + 0.5, 1), an index minus 0.5
        shifted = m.copy()
        shifted[:, 2] += m[:, :2] @ np.array([0.5, 0.5]) - 0.5
        back = cv2.warpAffine(rotated, shifted, (width, height), flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        np.maximum(acc, back, out=acc)
    return acc


def heatmap_overlay(image: np.ndarray, detections: Detections, alpha: float = 0.5) -> np.ndarray:
    """The image with the score maps overlaid, and a colour scale (score 0..1) appended on the right.

    Per pixel: the best probability over levels, classes and angles (:func:`heat_values`). Each level is
    placed with its own :attr:`~fcndetect.detections.ScoreMap.geometry` and angle.

    Args:
        image: ``[H, W, 3]`` uint8 RGB.
        detections: with ``score_maps`` (detect with ``return_maps=True``).

    Returns:
        ``[H, W + L, 3]`` uint8 RGB, ``L`` the legend's width.
    """
    if detections.score_maps is None:
        raise ValueError("detections carry no score maps (detect with return_maps=True)")
    h, w = image.shape[:2]
    acc = heat_values(detections.score_maps, w, h)
    colored = cv2.applyColorMap((acc * 255).astype(np.uint8), cv2.COLORMAP_JET)[:, :, ::-1]
    blended = (image.astype(np.float32) * (1 - alpha) + colored.astype(np.float32) * alpha).astype(np.uint8)
    legend = _colour_scale(h, max(36, min(160, w // 10)))
    return np.concatenate([blended, legend], axis=1)


def upright_crops(image: np.ndarray, detections: Detections) -> list[np.ndarray]:
    """Each detection's region of ``[H, W, 3]`` ``image``; a detection found under a rotation
    (``detections.angles``) is cut from the image rotated by its angle, so that the object is upright."""
    import torch

    from ..rotation import map_points, quad_boxes, rotate_image  # torch: imported when crops are asked for

    crops = []
    rotated: dict[float, tuple[np.ndarray, np.ndarray]] = {}
    for k, box in enumerate(detections.boxes):
        source = image
        if detections.angles is not None and detections.quads is not None and float(detections.angles[k]) != 0.0:
            angle = float(detections.angles[k])
            if angle not in rotated:
                rotated[angle] = rotate_image(image, angle)
            source, m = rotated[angle]
            box = quad_boxes(map_points(torch.from_numpy(detections.quads[k:k + 1]).double(), m))[0].numpy()
        h, w = source.shape[:2]
        x1, y1 = max(0, int(np.floor(box[0]))), max(0, int(np.floor(box[1])))
        x2, y2 = min(w, int(np.ceil(box[2]))), min(h, int(np.ceil(box[3])))
        crops.append(source[y1:y2, x1:x2] if x2 > x1 and y2 > y1 else np.zeros((0, 0, 3), np.uint8))
    return crops


def encode_image(image: np.ndarray, ext: str) -> bytes:
    """Encode ``[H, W, 3]`` uint8 RGB as ``ext`` (``.jpg``, ``.png``, ...); unknown extensions become PNG."""
    ext = ext.lower() if ext.lower() in {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"} else ".png"
    ok, buf = cv2.imencode(ext, image[:, :, ::-1])
    if not ok:
        raise ValueError(f"cannot encode image as {ext}")
    return buf.tobytes()
