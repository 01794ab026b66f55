"""Face photos for cascade training: annotations with WIDER FACE's ignore rule, window labels with box-regression
targets (MTCNN's), and the photo-level validation split.

Boxes are ``[x1, y1, x2, y2]`` floats in image pixels with continuous edges. A window is a square box; its
regression target is MTCNN's offsets of the face box relative to it, ``[(fx1 - x1) / s, (fy1 - y1) / s,
(fx2 - x2) / s, (fy2 - y2) / s]`` with ``s`` the window's side (what :func:`fcndetect.boxes.refine_boxes`
applies). Images are decoded only when their windows are cut (:func:`load_photo`): a thousand photos do not
fit in memory at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .data import TrainDataError, box_iou, square_box

__all__ = [
    "FacePhoto", "read_face_photos", "ignore_mask", "label_windows", "jitter_windows", "random_negatives",
    "split_photos", "regression_targets", "POSITIVE_IOU", "PART_IOU", "NEGATIVE_IOU",
    "POSITIVE", "PART", "NEGATIVE", "DROPPED",
]

#: MTCNN's window labels by IoU with a face box: positive >= 0.65, part face [0.4, 0.65), negative < 0.3.
POSITIVE_IOU, PART_IOU, NEGATIVE_IOU = 0.65, 0.4, 0.3
#: window labels: a face (classification and regression), a part face (regression only), background, unused
POSITIVE, PART, NEGATIVE, DROPPED = 1, 2, 0, -1


@dataclass
class FacePhoto:
    """A photo's path and face boxes ``[N, 4]`` xyxy, with ``ignore [N]`` bool: boxes that are neither faces nor
    background (WIDER's invalid boxes and faces too small to train on)."""

    path: str
    boxes: np.ndarray
    ignore: np.ndarray

    @property
    def valid(self) -> np.ndarray:
        """``[V, 4]``: the boxes that are faces to learn."""
        return self.boxes[~self.ignore]


def ignore_mask(boxes: np.ndarray, invalid: np.ndarray, min_face: float) -> np.ndarray:
    """WIDER's ignore rule: ``[N]`` bool, true for a box marked invalid or narrower or shorter than
    ``min_face`` pixels (``boxes [N, 4]`` xyxy, ``invalid [N]`` bool)."""
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    small = np.minimum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]) < min_face
    return np.asarray(invalid, bool).reshape(-1) | small


def _read_wider(path: Path) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """``(name, boxes [N, 4] xyxy, invalid [N] bool)`` per photo of a WIDER ``*_bbx_gt.txt`` listing."""
    lines = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines()]
    out: list[tuple[str, np.ndarray, np.ndarray]] = []
    k = 0
    while k < len(lines):
        if not lines[k]:
            k += 1
            continue
        name = lines[k]
        try:
            count = int(lines[k + 1])
            rows = [[float(v) for v in lines[k + 2 + j].split()[:10]] for j in range(max(count, 1))]
        except (IndexError, ValueError):
            raise TrainDataError(f"{path}: line {k + 2}: not a WIDER FACE listing (photo, count, boxes)") from None
        k += 2 + max(count, 1)
        a = np.asarray(rows[:count], np.float64).reshape(-1, 10)
        boxes = np.concatenate([a[:, :2], a[:, :2] + a[:, 2:4]], axis=1)
        out.append((name, boxes, a[:, 7] > 0))
    return out


def _is_wider(path: Path) -> bool:
    from ..evaluate.readers import detect_format

    try:
        return detect_format(path) == "wider"
    except Exception:  # noqa: BLE001 - the general reader reports the problem
        return False


def read_face_photos(annotations: list[str], min_face: float) -> list[FacePhoto]:
    """Every photo of the annotation files (WIDER listings with their invalid flags; any other format
    ``fcndetect eval`` reads, without), with :func:`ignore_mask` applied. Image paths are relative to the
    annotation file's folder. Photos are checked to exist, not decoded.

    Raises:
        TrainDataError: an unreadable listing, a missing photo, no face to learn at all.
    """
    from ..evaluate.errors import AnnotationError
    from ..evaluate.readers import load_annotations

    photos: list[FacePhoto] = []
    for ann in annotations:
        p = Path(ann)
        if not p.is_file():
            raise TrainDataError(f"{ann}: annotations not found")
        try:
            if _is_wider(p):
                rows = _read_wider(p)
            else:
                rows = [(k, np.asarray(v, np.float64).reshape(-1, 4), np.zeros(len(v), bool))
                        for k, v in load_annotations(p).items()]
        except (AnnotationError, OSError, ValueError) as exc:
            raise TrainDataError(f"{ann}: {' '.join(str(exc).split())}") from None
        for name, boxes, invalid in rows:
            image = p.parent / name
            if not image.is_file():
                raise TrainDataError(f"{image}: photo listed in {ann} not found")
            photos.append(FacePhoto(str(image), boxes, ignore_mask(boxes, invalid, min_face)))
    if not any(len(ph.valid) for ph in photos):
        raise TrainDataError(f"{annotations[0] if annotations else 'annotations'}: no face of at least "
                             f"{min_face:g} px to learn")
    return photos


def split_photos(photos: list[FacePhoto], fraction: float, seed: int) -> tuple[list[FacePhoto], list[FacePhoto]]:
    """``(train, validation)``: a seeded random ``fraction`` of the photos held out, whole photos only (faces of
    one photo never land on both sides). Order within each side is the listing's."""
    n_val = int(round(fraction * len(photos)))
    chosen = set(np.random.default_rng(seed).permutation(len(photos))[:n_val].tolist())
    return ([p for k, p in enumerate(photos) if k not in chosen], [p for k, p in enumerate(photos) if k in chosen])


def regression_targets(windows: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """MTCNN's box offsets of ``faces [N, 4]`` relative to square ``windows [N, 4]`` (both xyxy): ``[N, 4]``
    in units of each window's side, so that ``window + offsets * side == face``."""
    w = np.asarray(windows, np.float64).reshape(-1, 4)
    side = (w[:, 2] - w[:, 0])[:, None]
    return (np.asarray(faces, np.float64).reshape(-1, 4) - w) / side


def label_windows(windows: np.ndarray, photo: FacePhoto) -> tuple[np.ndarray, np.ndarray]:
    """Label square ``windows [N, 4]`` of ``photo`` by IoU with the faces made square (:func:`square_box`: a
    window is square, a face box rarely): POSITIVE (IoU >= 0.65 with a face to learn), PART
    ([0.4, 0.65): regression only), NEGATIVE (IoU < 0.3 with every box, ignored ones included), else DROPPED;
    also DROPPED: a window that overlaps an ignored box at IoU >= 0.3 more than any face to learn (the ignore
    rule: such a window is neither face nor background).

    Returns:
        ``(labels [N] int64, targets [N, 4] float32)``: regression targets to the best face's own box (zero for
        negatives and dropped windows).
    """
    windows = np.asarray(windows, np.float64).reshape(-1, 4)
    n = len(windows)
    labels = np.full(n, DROPPED, np.int64)
    targets = np.zeros((n, 4), np.float32)
    if n == 0:
        return labels, targets
    valid, ignored = photo.valid, photo.boxes[photo.ignore]
    iou_v = box_iou(windows, square_box(valid)) if len(valid) else np.zeros((n, 0))
    iou_i = box_iou(windows, square_box(ignored)) if len(ignored) else np.zeros((n, 0))
    best_v = iou_v.max(1) if iou_v.shape[1] else np.zeros(n)
    best_i = iou_i.max(1) if iou_i.shape[1] else np.zeros(n)
    labels[np.maximum(best_v, best_i) < NEGATIVE_IOU] = NEGATIVE
    ignored_wins = (best_i >= NEGATIVE_IOU) & (best_i > best_v)
    labels[(best_v >= PART_IOU) & ~ignored_wins] = PART
    labels[(best_v >= POSITIVE_IOU) & ~ignored_wins] = POSITIVE
    regress = (labels == POSITIVE) | (labels == PART)
    if regress.any():
        face = valid[iou_v[regress].argmax(1)]
        targets[regress] = regression_targets(windows[regress], face)
    return labels, targets


def jitter_windows(photo: FacePhoto, rng: np.random.Generator, per_face: int, shift: float,
                   scale: float) -> np.ndarray:
    """``per_face`` square windows around each face to learn: the squared box, its centre moved by up to
    ``shift`` of its side and its side scaled by ``exp(U(-scale, scale))`` (the first copy unmoved). ``[M, 4]``
    xyxy; label them with :func:`label_windows`."""
    squares = square_box(photo.valid)
    out: list[np.ndarray] = []
    for box in squares:
        side = box[2] - box[0]
        for j in range(per_face):
            c = (box[:2] + box[2:]) / 2 + (rng.uniform(-shift, shift, 2) * side if j else 0.0)
            s = side * (float(np.exp(rng.uniform(-scale, scale))) if j else 1.0)
            out.append(np.concatenate([c - s / 2, c + s / 2]))
    return np.stack(out) if out else np.zeros((0, 4))


def random_negatives(photo: FacePhoto, size: tuple[int, int], rng: np.random.Generator, count: int,
                     min_side: float) -> np.ndarray:
    """Up to ``count`` square windows of ``photo`` (``size = (width, height)``) that :func:`label_windows`
    calls NEGATIVE: side log-uniform in ``[min_side, shorter side]``, position uniform; ``[K, 4]`` xyxy
    (fewer than ``count`` where faces leave no room after ``20 * count`` draws)."""
    w, h = size
    lo, hi = min(min_side, min(w, h)), min(w, h)
    tries = 20 * count
    side = np.exp(rng.uniform(np.log(lo), np.log(hi), tries))
    x, y = rng.uniform(0, 1, tries) * (w - side), rng.uniform(0, 1, tries) * (h - side)
    boxes = np.stack([x, y, x + side, y + side], axis=1)
    labels, _ = label_windows(boxes, photo)
    return boxes[labels == NEGATIVE][:count]
