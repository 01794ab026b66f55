"""A cascade stage's training windows, cut from annotated photos and photos without faces.

Per annotated photo: jittered windows around each face (positives and part faces, with box-regression
targets), random background windows, and the windows the stages before pass (:func:`stage_candidates`;
labelled by IoU: hard negatives, and positives at the scales that stage really sees). Per photo without
faces: what the stages before pass, all negatives. Windows are cut exactly as the cascade cuts its crops
(:func:`fcndetect.cascade.sample_crops`), and labelled on the windows the crops really hold.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..cascade import CropPlan, Octaves, sample_crops, square_boxes
if TYPE_CHECKING:
    from ..detector import Detector

from .faces import DROPPED, NEGATIVE, PART, POSITIVE, FacePhoto, jitter_windows, label_windows, random_negatives

__all__ = ["StageWindows", "stage_candidates", "photo_windows", "collect_windows", "JITTER_SHIFT", "JITTER_SCALE"]

#: how far jittered windows stray from a face (fraction of its side; log-scale): a mix of positives and parts
JITTER_SHIFT, JITTER_SCALE = 0.12, 0.15


@dataclass
class StageWindows:
    """Windows ``[N, S, S, 3]`` uint8 RGB, ``labels [N]`` int64 (POSITIVE, PART, NEGATIVE) and regression
    ``targets [N, 4]`` float32 (zero for negatives)."""

    windows: torch.Tensor
    labels: torch.Tensor
    targets: torch.Tensor

    @staticmethod
    def empty(size: int) -> "StageWindows":
        return StageWindows(torch.zeros((0, size, size, 3), dtype=torch.uint8), torch.zeros(0, dtype=torch.long),
                            torch.zeros((0, 4)))

    @staticmethod
    def cat(parts: Sequence["StageWindows"], size: int) -> "StageWindows":
        parts = [p for p in parts if len(p.labels)]
        if not parts:
            return StageWindows.empty(size)
        return StageWindows(torch.cat([p.windows for p in parts]), torch.cat([p.labels for p in parts]),
                            torch.cat([p.targets for p in parts]))

    def counts(self) -> dict[str, int]:
        return {k: int((self.labels == v).sum()) for k, v in (("positives", POSITIVE), ("parts", PART),
                                                               ("negatives", NEGATIVE))}


@torch.inference_mode()
def stage_candidates(detector: Detector, image: np.ndarray, stage_index: int) -> np.ndarray:
    """The square windows (``[N, 4]`` xyxy) that the cascade's ``stage_index``-th stage classifies in ``image``:
    for stage 0, ``detector`` is a single dense stage and its detections are the windows (the stage's own
    false positives: hard negatives of the net being fine-tuned); later, ``detector`` is the cascade of the
    trained stages before it, and the windows are those its last earlier stage keeps."""
    if stage_index == 0:
        boxes = detector.detect_array(image).boxes
        return square_boxes(torch.as_tensor(boxes, dtype=torch.float64)).numpy()
    trace = detector.stage_windows(image)
    if len(trace) < stage_index:  # an earlier stage kept nothing
        return np.zeros((0, 4))
    return square_boxes(trace[stage_index - 1][1].double()).numpy()


def _cut(image: Octaves, boxes: np.ndarray, size: int) -> tuple[torch.Tensor, np.ndarray]:
    """Crops ``[N, size, size, 3]`` uint8 of square ``boxes`` and the windows they really hold ``[N, 4]``."""
    crops, real = sample_crops(image, torch.as_tensor(boxes, dtype=torch.float64).reshape(-1, 4), size,
                               CropPlan(lead=0, size=size, cell=0))
    return crops.clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous(), real.numpy()


def _subset(idx: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    return idx if len(idx) <= count else np.sort(rng.choice(idx, count, replace=False))


def photo_windows(image: np.ndarray, photo: FacePhoto, size: int, rng: np.random.Generator, *,
                  positives_per_face: int, negatives: int, min_side: float, candidates: np.ndarray | None,
                  mined: int) -> StageWindows:
    """The training windows of one annotated photo (``image``: ``[H, W, 3]`` uint8 RGB): ``positives_per_face``
    jittered windows per face, ``negatives`` random background windows of at least ``min_side`` px, and up
    to ``mined`` of each label among ``candidates`` (``[M, 4]`` square windows the stages before pass)."""
    h, w = image.shape[:2]
    boxes = [jitter_windows(photo, rng, positives_per_face, JITTER_SHIFT, JITTER_SCALE),
             random_negatives(photo, (w, h), rng, negatives, min_side)]
    if candidates is not None and len(candidates) and mined:
        lab, _ = label_windows(candidates, photo)
        keep = [_subset(np.flatnonzero(lab == v), mined, rng) for v in (POSITIVE, PART, NEGATIVE)]
        boxes.append(candidates[np.concatenate(keep)])
    all_boxes = np.concatenate(boxes)
    all_boxes = all_boxes[(all_boxes[:, 2] - all_boxes[:, 0]) >= 1]
    octaves = Octaves(image)
    crops, real = _cut(octaves, all_boxes, size)
    labels, targets = label_windows(real, photo)
    keep_t = torch.from_numpy(np.flatnonzero(labels != DROPPED))
    return StageWindows(crops[keep_t], torch.from_numpy(labels)[keep_t], torch.from_numpy(targets)[keep_t])


def scene_windows(image: np.ndarray, size: int, rng: np.random.Generator, candidates: np.ndarray | None,
                  count: int) -> StageWindows:
    """Up to ``count`` of ``candidates`` (what the stages before pass) in a photo without faces: negatives."""
    if candidates is None or not len(candidates) or not count:
        return StageWindows.empty(size)
    chosen = candidates[_subset(np.arange(len(candidates)), count, rng)]
    chosen = chosen[(chosen[:, 2] - chosen[:, 0]) >= 1]
    crops, _ = _cut(Octaves(image), chosen, size)
    return StageWindows(crops, torch.zeros(len(crops), dtype=torch.long), torch.zeros((len(crops), 4)))


def collect_windows(photos: Sequence[FacePhoto], scenes: Sequence[str], load: Callable[[str], np.ndarray],
                    candidates: Callable[[np.ndarray], np.ndarray] | None, size: int, rng: np.random.Generator,
                    *, positives_per_face: int, negatives: int, min_side: float, mined: int, scene_count: int,
                    tick: Callable[[], None] | None = None) -> tuple[StageWindows, dict[str, float]]:
    """Every photo's windows (:func:`photo_windows`, :func:`scene_windows`), photos decoded one at a time by
    ``load``. Returns the windows and mining figures: candidates per photo, and the fraction of faces to
    learn that some candidate covers at IoU >= 0.5 (the stages before's recall)."""
    from .data import box_iou

    parts: list[StageWindows] = []
    n_cand, n_faces, n_found = 0, 0, 0
    for photo in photos:
        image = load(photo.path)
        cand = candidates(image) if candidates is not None else None
        if cand is not None:
            n_cand += len(cand)
            valid = photo.valid
            n_faces += len(valid)
            if len(valid) and len(cand):
                n_found += int((box_iou(valid, cand).max(1) >= 0.5).sum())
        parts.append(photo_windows(image, photo, size, rng, positives_per_face=positives_per_face,
                                   negatives=negatives, min_side=min_side, candidates=cand, mined=mined))
        if tick is not None:
            tick()
    for path in scenes:
        image = load(path)
        cand = candidates(image) if candidates is not None else None
        parts.append(scene_windows(image, size, rng, cand, scene_count))
        if tick is not None:
            tick()
    stats = {"candidates_per_photo": n_cand / max(1, len(photos)),
             "candidate_recall": n_found / n_faces if n_faces else float("nan")}
    return StageWindows.cat(parts, size), stats
