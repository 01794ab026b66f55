"""Test clips written with ``cv2.VideoWriter`` (``mp4v``): from the sample images and from the dev photos."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image


def write_clip(path: Path, frames: list[np.ndarray], fps: float = 10.0, fourcc: str = "mp4v") -> Path:
    """Write ``[H, W, 3]`` uint8 RGB ``frames`` as a video (the container follows ``path``'s extension)."""
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
    assert writer.isOpened(), path
    for f in frames:
        writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def read_clip(path: Path) -> tuple[list[np.ndarray], float, tuple[int, int]]:
    """Every frame (RGB) of a video with OpenCV alone, its frame rate and ``(width, height)``."""
    cap = cv2.VideoCapture(str(path))
    fps = cap.get(cv2.CAP_PROP_FPS)
    size = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    frames = []
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    cap.release()
    return frames, fps, size


def astronaut_frames(samples: Path, n: int, side: int = 192, step: int = 4) -> list[np.ndarray]:
    """``n`` frames of the astronaut photo scaled to ``side`` px (one face of about 35 px), panning by ``step``."""
    im = np.asarray(Image.open(samples / "astronaut.png").convert("RGB").resize((side, side), Image.LANCZOS))
    return [np.ascontiguousarray(np.roll(im, k * step, axis=1)) for k in range(n)]


def fit_on_black(image: Image.Image, size: tuple[int, int]) -> tuple[np.ndarray, float, tuple[int, int]]:
    """``image`` scaled to fit ``size`` (w, h) and centred on black: the frame, the scale and the offset."""
    w, h = size
    s = min(w / image.width, h / image.height)
    nw, nh = round(image.width * s), round(image.height * s)
    canvas = Image.new("RGB", size)
    off = ((w - nw) // 2, (h - nh) // 2)
    canvas.paste(image.convert("RGB").resize((nw, nh), Image.LANCZOS), off)
    return np.asarray(canvas), s, off


def dev_clip(dev_faces: Path, path: Path, hold: int = 3, size: tuple[int, int] = (640, 480),
             fps: float = 10.0) -> list[np.ndarray]:
    """The issue's acceptance clip: every dev photo scaled to fit ``size``, centred on black, held ``hold``
    frames. Returns the ground-truth faces of each frame (``[N, 4]`` x1, y1, x2, y2 in the frame's pixels)."""
    from fcndetect.evaluate.readers import load_annotations

    truth: dict[str, np.ndarray] = {}
    for xml in ("training.xml", "testing.xml"):
        for key, boxes in load_annotations(dev_faces / xml, "imglab").items():
            truth[Path(key).name] = boxes
    frames, boxes = [], []
    for photo in sorted(dev_faces.glob("*.jpg")):
        frame, s, (ox, oy) = fit_on_black(Image.open(photo), size)
        gt = truth.get(photo.name, np.zeros((0, 4))) * s + np.array([ox, oy, ox, oy], dtype=np.float64)
        frames += [frame] * hold
        boxes += [gt] * hold
    write_clip(path, frames, fps)
    return boxes


def laplacian_values(frame: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """The Laplacian of an RGB frame's gray levels at the pixels inside ``boxes`` (their variance measures detail)."""
    lap = cv2.Laplacian(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY), cv2.CV_64F)
    mask = np.zeros(lap.shape, bool)
    for x1, y1, x2, y2 in np.round(np.asarray(boxes).reshape(-1, 4)).astype(int):
        mask[max(0, y1):max(0, y2), max(0, x1):max(0, x2)] = True
    return lap[mask]
