"""Video writing: H.264 yuv420p MP4 at the source's timestamps with its audio packets; byte-stable; atomic."""

from __future__ import annotations

import numpy as np
import pytest

from fcndetect.io.video import open_video
from fcndetect.io.video_writer import VideoFileWriter, audio_note
from video_clips import astronaut_frames, av_audio_packets, av_clip, av_codec, av_timestamps, read_clip

# uneven steps: a variable frame rate (a 40 ms frame dropped twice)
TIMES_MS = [0, 40, 80, 160, 200, 240, 280, 360, 400, 440]


def _copy(src, dst, **kw) -> VideoFileWriter:
    """Decode ``src`` and write every frame to ``dst`` at its timestamp, with ``src``'s audio."""
    with open_video(src) as reader:
        info = reader.info
        w = VideoFileWriter(dst, info.fps, (info.width, info.height), info.time_base, str(src), **kw)
        for f in reader.frames():
            w.write(f.image, f.pts)
    w.commit()
    return w


@pytest.fixture(scope="module")
def vfr_clip(tmp_path_factory, samples):
    path = tmp_path_factory.mktemp("vfr") / "vfr.mp4"
    return av_clip(path, astronaut_frames(samples, len(TIMES_MS), side=96), TIMES_MS)


def test_h264_at_the_sources_timestamps_with_its_audio_packets(vfr_clip, tmp_path):
    with open_video(vfr_clip) as reader:
        assert [f.time for f in reader.frames()] == [t / 1000 for t in TIMES_MS]  # time from the timestamps
    w = _copy(vfr_clip, tmp_path / "out.mp4")
    assert w.note is None
    assert av_codec(tmp_path / "out.mp4") == ("h264", "yuv420p", len(TIMES_MS))
    assert av_timestamps(tmp_path / "out.mp4") == pytest.approx(av_timestamps(vfr_clip), abs=1e-6)
    packets = av_audio_packets(vfr_clip)
    assert packets and av_audio_packets(tmp_path / "out.mp4") == packets  # copied, not re-encoded
    data = (tmp_path / "out.mp4").read_bytes()
    assert data.index(b"moov") < data.index(b"mdat")  # +faststart: the index first, playable while loading


def test_no_audio_in_no_audio_out_and_odd_sizes(tmp_path, samples):
    src = av_clip(tmp_path / "odd.mkv", [f[:95, :97] for f in astronaut_frames(samples, 3, side=120)], [0, 40, 80],
                  audio=None, codec="ffv1")
    _copy(src, tmp_path / "out.mp4")
    assert av_audio_packets(tmp_path / "out.mp4") is None
    codec, pix_fmt, n = av_codec(tmp_path / "out.mp4")
    assert (codec, n) == ("h264", 3) and pix_fmt == "yuv444p"  # 4:2:0 needs even sides: the size is kept
    frames, _, size = read_clip(tmp_path / "out.mp4")
    assert size == (97, 95)


def test_audio_that_mp4_cannot_hold_is_left_out_with_one_line(tmp_path, samples):
    src = av_clip(tmp_path / "adpcm.avi", astronaut_frames(samples, 4, side=64), [0, 40, 80, 120],
                  audio="adpcm_ima_wav")
    copy, note = audio_note(str(src))
    assert not copy and note == (
        "its audio (adpcm_ima_wav) cannot be copied into MP4: the videos are written without sound")
    w = _copy(src, tmp_path / "out.mp4")
    assert w.note == note and av_audio_packets(tmp_path / "out.mp4") is None
    assert av_codec(tmp_path / "out.mp4")[2] == 4


def test_writer_is_byte_stable_and_renames_at_the_end(tmp_path, samples, vfr_clip):
    outs = []
    for k in range(2):
        _copy(vfr_clip, tmp_path / f"a{k}.mp4")
        outs.append((tmp_path / f"a{k}.mp4").read_bytes())
    assert outs[0] == outs[1]  # a redone video equals the uninterrupted one, audio included
    frames = astronaut_frames(samples, 5, side=64)
    w = VideoFileWriter(tmp_path / "v.mp4", 10.0, (64, 64))
    for f in frames:
        w.write(f)
    assert not (tmp_path / "v.mp4").exists() and w.tmp.exists() and w.tmp.name.startswith(".")
    w.commit()
    back, fps, size = read_clip(tmp_path / "v.mp4")
    assert len(back) == 5 and fps == 10.0 and size == (64, 64)
    assert np.abs(back[2].astype(int) - frames[2]).mean() < 8  # close to the frames given (a 64 px detailed frame)
    w = VideoFileWriter(tmp_path / "gone.mp4", 10.0, (64, 64), audio_from=str(vfr_clip))
    w.write(frames[0])
    w.discard()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a0.mp4", "a1.mp4", "v.mp4"]
    with pytest.raises(ValueError, match="frame of 32x32"):
        VideoFileWriter(tmp_path / "x.mp4", 10.0, (64, 64)).write(np.zeros((32, 32, 3), np.uint8))
