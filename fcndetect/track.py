"""Tracks across a video's frames, and the regions that cover each track through gaps, before and after it.

Pure over boxes and frame times (numpy only). Boxes are ``[x1, y1, x2, y2]`` floats in the frame's pixels with
continuous edges. Frames are named by their 0-based index in the decoded stream and their time in seconds (the
frame's timestamp, so variable frame timing is followed).

Association, in the spirit of SORT and ByteTrack: each live track predicts its box at the new frame's time
(constant velocity of its four coordinates, per second); detections scoring at least ``high`` are matched to the
predictions first, then those between ``low`` and ``high`` to the tracks left over; a high detection left over
starts a track, a low one never does. Matching is greedy on a similarity that is the IoU of the predicted and
detected boxes, or, for a small fast face whose prediction overshoots, a smaller value from the distance of
their centres relative to the box's size: faces in one frame are few, so greedy matching on a clear similarity
gives the optimal assignment's answer in practice, with no solver to depend on.

Cover (:meth:`Tracker.regions`): a track covers every frame between its first and last detection (boxes
interpolated in time between consecutive detections, so gaps and frames skipped by a stride follow the motion),
and ``hold`` frames after its last and before its first detection (boxes extrapolated along its velocity).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["TrackerConfig", "Tracker", "box_iou_matrix"]


@dataclass(frozen=True)
class TrackerConfig:
    """How tracks are made and how long they cover.

    Attributes:
        high: a detection scoring at least this starts a track (or extends one).
        low: a detection scoring at least this (and under ``high``) may extend a track, never start one.
        hold: frames covered after a track's last detection and before its first (>= 0).
        max_gap: a track not detected for more than this many frames ends; gaps up to it are interpolated.
        iou_min: the least IoU of a prediction and a detection that can match them.
        max_distance: without that IoU, the largest distance of their centres, in units of the geometric mean
            of the boxes' sides, that can still match them (box sides must agree within a factor 2).
        smoothing: how far a detection moves the track's smoothed box (and its velocity) from the prediction
            (1: to the detection).
        grow: how much a box extrapolated or interpolated away from a detection grows, as a fraction of its
            sides per frame from the nearest detection (the motion's uncertainty).
        inertia: the share of the velocity a box held before or after a track follows (0: it stays where the
            track was last seen; a shaking camera makes velocities noisy).
        hold_after: frames covered after a track's last detection, if not ``hold`` (needs no look-ahead: a run
            that detects in one frame out of many covers the frames between this way).
        lookahead: frames by which :meth:`Tracker.regions` trails :meth:`Tracker.update` (the frames a run
            holds in memory); default: enough for every gap and hold. A gap longer than it is covered by the
            track's prediction (``hold_after``) instead of interpolated.
    """

    high: float = 0.5
    low: float = 0.1
    hold: int = 8
    max_gap: int = 16
    iou_min: float = 0.2
    max_distance: float = 1.0
    smoothing: float = 0.5
    grow: float = 0.12
    inertia: float = 0.5
    hold_after: int | None = None
    lookahead: int | None = None

    def __post_init__(self) -> None:
        if not (0.0 <= self.low <= self.high <= 1.0):
            raise ValueError(f"track thresholds must satisfy 0 <= low <= high <= 1, got {self.low}, {self.high}")
        if min(self.hold, self.max_gap, self.hold_after or 0, self.lookahead or 0) < 0:
            raise ValueError(f"hold, hold_after, max_gap and lookahead must be >= 0, got {self.hold}, "
                             f"{self.hold_after}, {self.max_gap}, {self.lookahead}")


@dataclass
class _Track:
    id: int
    frames: list[int] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    boxes: list[np.ndarray] = field(default_factory=list)  # the detections
    states: list[np.ndarray] = field(default_factory=list)  # the smoothed box after each detection
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(4))  # per second, of x1, y1, x2, y2
    first_velocity: np.ndarray | None = None  # from the first two detections: extrapolates backwards

    def add(self, frame: int, time: float, box: np.ndarray, smoothing: float) -> None:
        """A detection: the state moves from the prediction towards it by ``smoothing``; the velocity follows."""
        state = box
        if self.frames:
            dt = time - self.times[-1]
            pred = self.predict(time)
            state = pred + smoothing * (box - pred)
            if dt > 0:
                step = (state - self.states[-1]) / dt
                self.velocity = step if len(self.frames) == 1 else smoothing * step + (1 - smoothing) * self.velocity
                if self.first_velocity is None:
                    self.first_velocity = step
        self.frames.append(frame)
        self.times.append(time)
        self.boxes.append(box)
        self.states.append(state)

    def predict(self, time: float, inertia: float = 1.0) -> np.ndarray:
        """``[4]``: the box at ``time`` after the last detection, along ``inertia`` times the velocity."""
        return self.states[-1] + inertia * self.velocity * (time - self.times[-1])

    def at(self, frame: int, time: float, hold: int, grow: float, inertia: float,
           hold_after: int) -> list[np.ndarray]:
        """The boxes (``[4]`` each) covering ``frame`` (at ``time``); none when the track does not cover it.

        At a detection: the detection and the smoothed box (a face half hidden is detected smaller than it is;
        the motion knows its size). Elsewhere one box, interpolated in a gap or extrapolated before and after,
        grown by ``grow`` of its sides per frame from the nearest detection (the motion's uncertainty)."""
        first, last = self.frames[0], self.frames[-1]
        if frame > last:
            return [_grown(self.predict(time, inertia), grow * (frame - last))] if frame - last <= hold_after else []
        if frame < first:
            if first - frame > hold:
                return []
            v = self.first_velocity if self.first_velocity is not None else np.zeros(4)
            return [_grown(self.states[0] + inertia * v * (time - self.times[0]), grow * (first - frame))]
        k = int(np.searchsorted(self.frames, frame))
        if self.frames[k] == frame:
            return [self.boxes[k], self.states[k]]
        f0, f1 = self.frames[k - 1], self.frames[k]
        t0, t1 = self.times[k - 1], self.times[k]
        u = (time - t0) / (t1 - t0) if t1 > t0 else (frame - f0) / (f1 - f0)
        u = float(np.clip(u, 0.0, 1.0))
        a = _union(self.boxes[k - 1], self.states[k - 1])
        b = _union(self.boxes[k], self.states[k])
        return [_grown(a + (b - a) * u, grow * min(frame - f0, f1 - frame))]


def _union(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``[4]``: the box enclosing boxes ``a`` and ``b``."""
    return np.concatenate([np.minimum(a[:2], b[:2]), np.maximum(a[2:], b[2:])])


def _grown(box: np.ndarray, fraction: float) -> np.ndarray:
    """``[4]``: ``box`` with its sides grown by ``fraction`` about its centre (at most doubled)."""
    f = min(max(fraction, 0.0), 1.0)
    half = (box[2:] - box[:2]) * f / 2
    return np.concatenate([box[:2] - half, box[2:] + half])


def box_iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``[N, M]`` IoU of boxes ``a`` ``[N, 4]`` and ``b`` ``[M, 4]`` (x1, y1, x2, y2); 0 where a union is empty."""
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    ix = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    iy = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = ix * iy
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def _similarity(pred: np.ndarray, dets: np.ndarray, cfg: TrackerConfig) -> np.ndarray:
    """``[T, D]``: IoU where it reaches ``iou_min``; else up to ``iou_min / 2`` from the centres' distance
    (closer is higher) where it is within ``max_distance`` and the sides agree; else 0 (no match)."""
    iou = box_iou_matrix(pred, dets)
    sim = np.where(iou >= cfg.iou_min, iou, 0.0)
    if cfg.max_distance > 0 and len(pred) and len(dets):
        cp = (pred[:, :2] + pred[:, 2:]) / 2
        cd = (dets[:, :2] + dets[:, 2:]) / 2
        sp = np.sqrt(np.clip(pred[:, 2] - pred[:, 0], 1e-6, None) * np.clip(pred[:, 3] - pred[:, 1], 1e-6, None))
        sd = np.sqrt(np.clip(dets[:, 2] - dets[:, 0], 1e-6, None) * np.clip(dets[:, 3] - dets[:, 1], 1e-6, None))
        scale = np.sqrt(sp[:, None] * sd[None, :])
        dist = np.linalg.norm(cp[:, None, :] - cd[None, :, :], axis=2) / scale
        ratio = np.maximum(sp[:, None] / sd[None, :], sd[None, :] / sp[:, None])
        near = (dist <= cfg.max_distance) & (ratio <= 2.0) & (sim == 0)
        sim = np.where(near, cfg.iou_min / 2 * (1.0 - dist / (cfg.max_distance + 1e-9)) + 1e-6, sim)
    return sim


def _greedy(sim: np.ndarray) -> list[tuple[int, int]]:
    """Pairs ``(row, col)`` taken in decreasing similarity, each row and column once; zeros never match."""
    pairs: list[tuple[int, int]] = []
    if sim.size == 0:
        return pairs
    order = np.argsort(-sim, axis=None, kind="stable")
    used_r, used_c = set(), set()
    for flat in order:
        r, c = divmod(int(flat), sim.shape[1])
        if sim[r, c] <= 0:
            break
        if r in used_r or c in used_c:
            continue
        used_r.add(r)
        used_c.add(c)
        pairs.append((r, c))
    return pairs


class Tracker:
    """Online tracks over a video's processed frames (see the module docstring).

    Call :meth:`update` with each processed frame in order; call :meth:`regions` for each decoded frame, in
    order, once no detection can still change it: after :meth:`update` of a frame at least
    :attr:`lag` frames later, or after the last update.
    """

    def __init__(self, config: TrackerConfig | None = None) -> None:
        self.config = config or TrackerConfig()
        self._live: list[_Track] = []  # may still be matched
        self._covering: list[_Track] = []  # every track that may still cover a frame not asked for yet
        self._next_id = 1
        self._last_frame = -1

    @property
    def lag(self) -> int:
        """Frames by which :meth:`regions` must trail :meth:`update`: a gap's end or a track's start (and the
        detection after it, which gives its velocity) this far ahead can still change a frame's cover."""
        cfg = self.config
        return cfg.lookahead if cfg.lookahead is not None else max(cfg.hold + 1, cfg.max_gap)

    def update(self, frame: int, time: float, boxes: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """Associate one processed frame's detections with the tracks.

        Args:
            frame: the frame's index (increasing from call to call).
            time: its time in seconds.
            boxes: ``[N, 4]`` x1, y1, x2, y2.
            scores: ``[N]`` probabilities.

        Returns:
            ``[N]`` int64: each detection's track id (from 1, in order of creation), or 0 for a detection that
            joined no track (under ``low``, or a low one that matched none).
        """
        if frame <= self._last_frame:
            raise ValueError(f"frames must increase: {frame} after {self._last_frame}")
        self._last_frame = frame
        cfg = self.config
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        scores = np.asarray(scores, np.float64).reshape(-1)
        ids = np.zeros(len(boxes), np.int64)
        self._live = [t for t in self._live if frame - t.frames[-1] <= cfg.max_gap]
        free = list(range(len(self._live)))
        for tier in (scores >= cfg.high, (scores >= cfg.low) & (scores < cfg.high)):
            cols = np.flatnonzero(tier)
            if not len(cols) or not free:
                continue
            pred = np.stack([self._live[r].predict(time) for r in free])
            taken = []
            for r, c in _greedy(_similarity(pred, boxes[cols], cfg)):
                matched = self._live[free[r]]
                matched.add(frame, time, boxes[cols[c]], cfg.smoothing)
                ids[cols[c]] = matched.id
                taken.append(free[r])
            free = [r for r in free if r not in taken]
        for new in np.flatnonzero((scores >= cfg.high) & (ids == 0)):
            track = _Track(self._next_id)
            self._next_id += 1
            track.add(frame, time, boxes[new], cfg.smoothing)
            self._live.append(track)
            self._covering.append(track)
            ids[new] = track.id
        return ids

    def regions(self, frame: int, time: float) -> tuple[np.ndarray, np.ndarray]:
        """The boxes covering ``frame`` (at ``time``): ``([M, 4] boxes, [M] track ids)``, one or two per track
        that covers it (detected there, interpolated through a gap, or held before or after). Ask for frames in
        increasing order: tracks that cannot cover a later frame are forgotten."""
        cfg = self.config
        after = cfg.hold if cfg.hold_after is None else cfg.hold_after
        self._covering = [t for t in self._covering if frame - t.frames[-1] <= after or t in self._live]
        boxes, ids = [], []
        for t in self._covering:
            for box in t.at(frame, time, cfg.hold, cfg.grow, cfg.inertia, after):
                if box[2] > box[0] and box[3] > box[1]:
                    boxes.append(box)
                    ids.append(t.id)
        return np.array(boxes, np.float64).reshape(-1, 4), np.array(ids, np.int64)
