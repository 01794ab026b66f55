"""Video reading: frames with index, timestamp and stride; one-line errors; silence; a blocked decoder abandoned."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from fcndetect.io.images import ImageLoadError
from fcndetect.io.video import frame_time, is_video_path, open_video
from video_clips import astronaut_frames, read_clip, write_clip


@pytest.fixture(scope="module")
def clip(tmp_path_factory, samples):
    path = tmp_path_factory.mktemp("clips") / "clip.mp4"
    return write_clip(path, astronaut_frames(samples, 7, side=96), fps=12.5)


def test_frames_index_time_stride_match_opencv(clip):
    expected, fps, size = read_clip(clip)
    with open_video(clip) as reader:
        assert (reader.info.width, reader.info.height) == size == (96, 96)
        assert reader.info.fps == fps == 12.5 and reader.info.frame_count == 7
        frames = list(reader.frames(stride=3))
    assert [f.index for f in frames] == list(range(7))
    assert [f.processed for f in frames] == [True, False, False, True, False, False, True]
    assert [f.time for f in frames] == [round(k / 12.5, 3) for k in range(7)] and frames[1].time == 0.08
    for f, ref in zip(frames, expected):
        assert f.image.shape == (96, 96, 3) and f.image.dtype == np.uint8
        assert np.array_equal(f.image, ref)  # the pixels OpenCV decodes, in RGB
    assert reader.error is None and reader.frames_read == 7


def test_frame_time_and_extensions():
    assert frame_time(26, 10.0) == 2.6 and frame_time(1, 30.0) == 0.033 and frame_time(0, 29.97) == 0.0
    assert all(is_video_path(f"a{e}") for e in (".mp4", ".M4V", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".MPEG"))
    assert not is_video_path("a.jpg") and not is_video_path("mp4")


def test_unreadable_videos_are_one_line_errors(tmp_path, clip):
    data = clip.read_bytes()
    (tmp_path / "trunc.mp4").write_bytes(data[:3000])  # the moov atom is at the end: it cannot be opened
    (tmp_path / "text.mp4").write_text("not a video\n" * 50)
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "dir.mp4").mkdir()
    os.mkfifo(tmp_path / "fifo.mp4")
    zero = tmp_path / "zero.mp4"
    write_clip(zero, [np.zeros((32, 32, 3), np.uint8)])
    import cv2

    w = cv2.VideoWriter(str(zero), cv2.VideoWriter_fourcc(*"mp4v"), 10, (32, 32))  # opened, no frame written
    w.release()
    cases = {"trunc.mp4": "cannot be opened as a video", "text.mp4": "cannot be opened as a video",
             "empty.mp4": "empty file", "dir.mp4": "is a directory", "fifo.mp4": "not a regular file",
             "missing.mp4": "no such file"}
    if zero.exists() and zero.stat().st_size:
        cases["zero.mp4"] = "o"  # either "cannot be opened" or "no frame can be decoded"
    for name, reason in cases.items():
        with pytest.raises(ImageLoadError) as info:
            open_video(tmp_path / name)
        assert reason in info.value.reason and "\n" not in str(info.value), (name, info.value)
        assert str(info.value).startswith(str(tmp_path / name))


def test_max_pixels_is_checked_per_frame(clip):
    with pytest.raises(ImageLoadError, match="exceeds --max-pixels"):
        open_video(clip, max_pixels=96 * 96 - 1)


def test_a_stream_that_ends_early_says_where(tmp_path, samples):
    avi = write_clip(tmp_path / "c.avi", astronaut_frames(samples, 20, side=64), fourcc="MJPG")
    data = avi.read_bytes()
    (tmp_path / "cut.avi").write_bytes(data[: len(data) * 6 // 10])
    with open_video(tmp_path / "cut.avi") as reader:
        n = sum(1 for _ in reader.frames())
    assert 0 < n < 20
    assert reader.error is not None and f"broke at frame {n}" in reader.error and "of the 20 frames" in reader.error


def test_opencv_and_ffmpeg_logs_are_silenced(tmp_path, clip):
    data = clip.read_bytes()
    (tmp_path / "trunc.mp4").write_bytes(data[:3000])
    bad = bytearray(data)
    bad[len(bad) // 3: len(bad) // 3 + 400] = b"\x00" * 400  # damaged frame data
    (tmp_path / "damaged.mp4").write_bytes(bytes(bad))
    code = ("import sys\nfrom fcndetect.io.video import open_video\n"
            "for p in sys.argv[1:]:\n"
            "    try:\n        r = open_video(p)\n        list(r.frames())\n    except Exception as e:\n"
            "        print(type(e).__name__)\n")
    p = subprocess.run([sys.executable, "-c", code, str(tmp_path / "trunc.mp4"), str(tmp_path / "damaged.mp4")],
                       capture_output=True, text=True, env={**os.environ, "OPENCV_FFMPEG_LOGLEVEL": ""})
    assert p.returncode == 0 and p.stdout.startswith("ImageLoadError"), p
    assert p.stderr == ""


def test_containers_that_only_estimate_their_count_end_quietly(tmp_path, samples):
    mkv = write_clip(tmp_path / "c.mkv", astronaut_frames(samples, 20, side=64), fourcc="MJPG")
    data = mkv.read_bytes()
    (tmp_path / "cut.mkv").write_bytes(data[: len(data) * 6 // 10])
    with open_video(tmp_path / "cut.mkv") as reader:
        n = sum(1 for _ in reader.frames())
    assert 0 < n < 20 and reader.error is None  # MKV's count is an estimate: an early end is not an error


def _blocking_after(reader, n: int):
    """Make ``reader``'s decoder give ``n`` more frames, then block for good (a stalled network read)."""
    import threading

    real, forever = reader._decoded, threading.Event()

    def stalled():
        for _ in range(n):
            yield next(real)
        forever.wait()

    reader._decoded = stalled()
    return reader


def test_a_blocked_decoder_is_abandoned_after_the_grace_period(clip):
    import time

    reader = _blocking_after(open_video(clip), 2)
    frames = reader.frames()
    assert [next(frames).index for _ in range(3)] == [0, 1, 2]  # the first frame, then 2 decoded
    t0 = time.monotonic()
    reader.close(grace=0.3)
    assert time.monotonic() - t0 < 2.0 and reader.abandoned
    reader.close()  # idempotent
    frames.close()
