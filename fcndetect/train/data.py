"""Training windows: positives from crops or annotated photos, negatives from photos without the object.

Every window is an ``[S, S, 3]`` uint8 RGB array (``S`` = the classifier's input side); a set of them is an
``[N, S, S, 3]`` uint8 array. Boxes are ``[x1, y1, x2, y2]`` floats in image pixels with continuous edges.
Randomness comes from a :class:`numpy.random.Generator` the caller seeds, so a run is repeatable.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torchvision.ops import box_iou as _tv_box_iou

from ..io.images import ImageLoadError, load_image
from ..io.sources import expand_sources

__all__ = [
    "TrainDataError", "Photo", "read_photos", "crop_window", "read_crops", "annotated_windows", "random_boxes",
    "random_windows",
    "square_box", "box_iou", "is_grayscale", "jitter_boxes", "read_annotated",
]

#: DDFD's rule for windows cut around annotated objects.
POSITIVE_IOU = 0.5
NEGATIVE_IOU = 0.3


class TrainDataError(ValueError):
    """Training data that cannot be used (the message names the file and the reason, on one line)."""


@dataclass
class Photo:
    """A decoded image (``[H, W, 3]`` uint8 RGB) and its object boxes (``[N, 4]`` xyxy; empty for negatives)."""

    path: str
    image: np.ndarray
    boxes: np.ndarray


def _image_paths(source: str, what: str) -> list[str]:
    items = list(expand_sources([source]))
    errors = [i for i in items if i.error is not None]
    if errors:
        raise TrainDataError(f"{errors[0].path}: {what}: {errors[0].error}")
    if not items:
        raise TrainDataError(f"{source}: {what}: no image files")
    return [i.path for i in items]


def _load(path: str, what: str) -> np.ndarray:
    try:
        return load_image(path)
    except ImageLoadError as exc:
        raise TrainDataError(f"{path}: {what}: {exc.reason}") from None


def read_photos(sources: list[str], what: str = "negatives") -> list[Photo]:
    """Every image under ``sources`` (files, folders, globs), decoded, with no boxes.

    Raises:
        TrainDataError: a source with no images, or an unreadable image (named).
    """
    paths = [p for s in sources for p in _image_paths(s, what)]
    return [Photo(p, _load(p, what), np.zeros((0, 4))) for p in paths]


def is_grayscale(image: np.ndarray) -> bool:
    """Whether an ``[H, W, 3]`` RGB image has R = G = B everywhere (a single-channel file decodes so)."""
    return bool(np.array_equal(image[..., 0], image[..., 1]) and np.array_equal(image[..., 1], image[..., 2]))


def crop_window(image: np.ndarray, box: np.ndarray | list[float], size: int) -> np.ndarray:
    """The ``box`` region of an ``[H, W, 3]`` uint8 image resized to ``[size, size, 3]`` uint8.

    ``box`` is ``[x1, y1, x2, y2]`` (image pixels, continuous edges); parts outside the image are filled by
    replicating its border. Area interpolation when shrinking, bilinear when enlarging.
    """
    x1, y1, x2, y2 = (float(v) for v in box)
    side_x, side_y = x2 - x1, y2 - y1
    if side_x <= 0 or side_y <= 0:
        raise ValueError(f"empty box {list(box)}")
    # pixel-centre mapping: output pixel u samples the box at x1 + (u + 0.5) * side / size - 0.5
    sx, sy = side_x / size, side_y / size
    m = np.array([[sx, 0.0, x1 + 0.5 * sx - 0.5], [0.0, sy, y1 + 0.5 * sy - 0.5]], dtype=np.float64)
    shrink = min(sx, sy) > 1.0
    if shrink:  # area filter first: resize the image so the box becomes ~size, then sample bilinearly
        f = 1.0 / min(sx, sy)
        small = cv2.resize(image, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
        fx, fy = small.shape[1] / image.shape[1], small.shape[0] / image.shape[0]
        m = np.array([[sx * fx, 0.0, (x1 + 0.5 * sx) * fx - 0.5], [0.0, sy * fy, (y1 + 0.5 * sy) * fy - 0.5]])
        image = small
    return cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE)


def read_crops(source: str, size: int) -> tuple[np.ndarray, list[str], bool]:
    """Positive crops: every image under ``source`` (each one positive), centre-cropped to a square and resized
    to ``size``.

    Returns:
        ``[N, size, size, 3]`` uint8 windows, their paths, and whether any file is single-channel.

    Raises:
        TrainDataError: no images, an unreadable image, or a crop smaller than ``size`` (named).
    """
    paths = _image_paths(source, "positives")
    out = np.empty((len(paths), size, size, 3), dtype=np.uint8)
    gray = False
    for k, p in enumerate(paths):
        img = _load(p, "positives")
        h, w = img.shape[:2]
        if min(h, w) < size:
            raise TrainDataError(f"{p}: positives: crop is {w}x{h}, smaller than the {size} px input size "
                                 f"(use --input-size {min(h, w)} or larger crops)")
        gray = gray or is_grayscale(img)
        side = min(h, w)
        x0, y0 = (w - side) / 2, (h - side) / 2
        out[k] = crop_window(img, [x0, y0, x0 + side, y0 + side], size)
    return out, paths, gray


def square_box(box: np.ndarray) -> np.ndarray:
    """``[..., 4]`` xyxy boxes made square around their centres, side ``max(w, h)``."""
    box = np.asarray(box, dtype=np.float64)
    c = (box[..., :2] + box[..., 2:]) / 2
    side = np.maximum(box[..., 2] - box[..., 0], box[..., 3] - box[..., 1])[..., None]
    return np.concatenate([c - side / 2, c + side / 2], axis=-1)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of ``[N, 4]`` and ``[M, 4]`` xyxy boxes: ``[N, M]`` (torchvision's, on float64 arrays)."""
    t = lambda x: torch.from_numpy(np.asarray(x, np.float64).reshape(-1, 4))  # noqa: E731
    return _tv_box_iou(t(a), t(b)).numpy()


def random_boxes(photos: list[Photo], count: int, rng: np.random.Generator,
                 min_side: float = 24.0) -> list[tuple[int, np.ndarray]]:
    """``count`` square windows at random positions and scales over ``photos`` (round-robin): side log-uniform
    in ``[min_side, shorter image side]``, position uniform, each with IoU <= 0.3 to every object box of its
    photo (a part of an object, e.g. an eye, is a negative). Returns ``(photo index, [4] xyxy box)`` pairs.

    Raises:
        TrainDataError: a photo whose objects leave no room for such windows.
    """
    out: list[tuple[int, np.ndarray]] = []
    tries = 0
    while len(out) < count:
        index = (len(out) + tries) % len(photos)
        photo = photos[index]
        h, w = photo.image.shape[:2]
        lo = min(min_side, min(h, w))
        side = float(np.exp(rng.uniform(np.log(lo), np.log(min(h, w)))))
        x, y = rng.uniform(0, w - side), rng.uniform(0, h - side)
        box = np.array([x, y, x + side, y + side])
        if len(photo.boxes) and box_iou(box, photo.boxes).max() > NEGATIVE_IOU:
            tries += 1
            if tries > 100 * count:
                raise TrainDataError(f"{photo.path}: no room for negative windows beside the objects")
            continue
        out.append((index, box))
    return out


def random_windows(photos: list[Photo], count: int, size: int, rng: np.random.Generator,
                   min_side: float = 24.0) -> np.ndarray:
    """The :func:`random_boxes` windows cut out: ``[count, size, size, 3]`` uint8."""
    out = np.empty((count, size, size, 3), dtype=np.uint8)
    for k, (index, box) in enumerate(random_boxes(photos, count, rng, min_side)):
        out[k] = crop_window(photos[index].image, box, size)
    return out


def read_annotated(annotations: list[str], size: int) -> tuple[list[Photo], bool]:
    """Photos and object boxes from annotation files in any format ``fcndetect eval`` reads; image keys are
    paths relative to the annotation file's folder (or as written).

    Raises:
        TrainDataError: a file that does not parse, an image that is missing or unreadable, no objects at all.
    """
    from ..evaluate.errors import AnnotationError
    from ..evaluate.readers import load_annotations

    photos: list[Photo] = []
    gray = False
    for ann in annotations:
        try:
            table = load_annotations(ann)
        except (AnnotationError, OSError, ValueError) as exc:
            raise TrainDataError(f"{ann}: positives: {' '.join(str(exc).split())}") from None
        for key, boxes in table.items():
            path = Path(ann).parent / key
            path = path if path.exists() or not os.path.exists(key) else Path(key)
            if not path.exists():
                raise TrainDataError(f"{path}: positives: image listed in {ann} not found")
            image = _load(str(path), "positives")
            gray = gray or is_grayscale(image)
            photos.append(Photo(str(path), image, np.asarray(boxes, np.float64).reshape(-1, 4)))
    if not any(len(p.boxes) for p in photos):
        raise TrainDataError(f"{annotations[0]}: positives: the annotations hold no object boxes")
    return photos, gray


def jitter_boxes(boxes: np.ndarray, rng: np.random.Generator, per_object: int = 8,
                 jitter: float = 0.15) -> tuple[np.ndarray, np.ndarray]:
    """Windows around annotated objects, DDFD's way: each ``[N, 4]`` xyxy object box is squared (side
    ``max(w, h)``) and jittered ``per_object`` times (the first copy unchanged; the others' centres move by up
    to ``jitter`` of the side, their sides scale by ``exp(±jitter)``). A window with IoU >= 0.5 to a squared
    object box is a positive, one with IoU <= 0.3 to all of them a negative; the rest are dropped.

    Returns:
        positive ``[P, 4]`` and negative ``[Q, 4]`` xyxy square windows.
    """
    squares = square_box(np.asarray(boxes, np.float64).reshape(-1, 4))
    pos: list[np.ndarray] = []
    neg: list[np.ndarray] = []
    for box in squares:
        side = box[2] - box[0]
        if side < 4:
            continue
        for j in range(per_object):
            c = (box[:2] + box[2:]) / 2 + (rng.uniform(-jitter, jitter, 2) * side if j else 0.0)
            s = side * (float(np.exp(rng.uniform(-jitter, jitter))) if j else 1.0)
            win = np.concatenate([c - s / 2, c + s / 2])
            best = box_iou(win, squares)[0].max()
            if best >= POSITIVE_IOU:
                pos.append(win)
            elif best <= NEGATIVE_IOU:
                neg.append(win)
    as_array = lambda w: np.stack(w) if w else np.zeros((0, 4))  # noqa: E731
    return as_array(pos), as_array(neg)


def annotated_windows(photos: list[Photo], size: int, rng: np.random.Generator, per_object: int = 8,
                      jitter: float = 0.15) -> tuple[np.ndarray, np.ndarray]:
    """The :func:`jitter_boxes` windows of every photo, cut out: positives ``[P, size, size, 3]`` and
    negatives ``[Q, size, size, 3]`` uint8."""
    pos: list[np.ndarray] = []
    neg: list[np.ndarray] = []
    for photo in photos:
        p, n = jitter_boxes(photo.boxes, rng, per_object, jitter)
        pos.extend(crop_window(photo.image, b, size) for b in p)
        neg.extend(crop_window(photo.image, b, size) for b in n)
    empty = np.empty((0, size, size, 3), np.uint8)
    return (np.stack(pos) if pos else empty), (np.stack(neg) if neg else empty)
