"""A video's frames through an engine: every frame in order, the stride's frames detected, batching that never
changes a result, a frame whose detection fails isolated, videos beside images in input order."""

from __future__ import annotations

import numpy as np
import pytest

from fcndetect.detections import Detections
from fcndetect.engines.base import EngineOptions
from fcndetect.engines.frames import VideoStream
from fcndetect.engines.local import iter_detections
from fcndetect.io.sources import SourceItem
from fcndetect.io.video import open_video
from video_clips import write_clip

N = 11


def _frames() -> list[np.ndarray]:
    """Frames whose first pixel encodes their index (survives the codec: a flat frame)."""
    return [np.full((48, 64, 3), 10 * k, np.uint8) for k in range(N)]


class _Recorder:
    """A ``detect_batch`` that records its batches and 'detects' one box whose x1 is the frame's gray level;
    frames listed in ``fail`` (by gray level // 10) raise."""

    def __init__(self, fail: tuple[int, ...] = ()) -> None:
        self.batches: list[list[int]] = []
        self.fail = fail

    def __call__(self, images, return_maps=False):
        levels = [int(round(float(im.mean()) / 10)) for im in images]
        self.batches.append(levels)
        if any(lv in self.fail for lv in levels):
            raise RuntimeError(f"boom at {levels}")
        return [Detections(boxes=np.array([[lv, 0, lv + 5, 5]], np.float32), scores=np.ones(1, np.float32),
                           labels=np.zeros(1, np.int64), class_names=("x",), image_size=(64, 48)) for lv in levels]


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return write_clip(tmp_path_factory.mktemp("frames") / "flat.mp4", _frames())


@pytest.mark.parametrize("batch_size,stride", [(1, 1), (4, 1), (3, 2), (2, 5), (1, 20)])
def test_every_frame_in_order_the_strides_detected_in_batches(clip, batch_size, stride):
    rec = _Recorder()
    out = list(VideoStream(open_video(clip), rec, batch_size=batch_size, stride=stride))
    assert [r.frame.index for r in out] == list(range(N))
    chosen = list(range(0, N, stride))
    assert [r.frame.index for r in out if r.frame.processed] == chosen
    for r in out:
        if r.frame.processed:
            assert r.error is None and float(r.detections.boxes[0, 0]) == r.frame.index
        else:
            assert r.detections is None and r.error is None
    assert [lv for batch in rec.batches for lv in batch] == chosen  # each chosen frame detected once, in order
    assert all(0 < len(b) <= batch_size for b in rec.batches)


def test_a_failing_frame_is_isolated(clip):
    out = list(VideoStream(open_video(clip), _Recorder(fail=(5,)), batch_size=4))
    errors = {r.frame.index: r.error for r in out if r.error}
    assert list(errors) == [5] and errors[5] == "detection failed: RuntimeError: boom at [5]"
    assert all(r.detections is not None for r in out if r.frame.index != 5)


def test_local_engine_keeps_videos_in_input_order(clip, samples):
    items = [SourceItem(str(samples / "coffee.png"), relative="coffee.png"), SourceItem(str(clip), relative="v.mp4"),
             SourceItem(str(samples / "chelsea.png"), relative="chelsea.png")]
    rec = _Recorder()
    results = iter_detections(rec, items, EngineOptions(batch_size=8, vid_stride=4))
    first = next(results)
    assert first.item.path.endswith("coffee.png") and first.detections is not None
    video = next(results)
    assert video.video is not None and video.image is None and video.error is None
    frames = list(video.video)
    assert [f.frame.index for f in frames if f.frame.processed] == [0, 4, 8]
    last = next(results)
    assert last.item.path.endswith("chelsea.png") and last.detections is not None
    assert list(results) == []
