"""Progress lines: images and a video's frames, on a terminal and off it."""

from __future__ import annotations

import io

from fcndetect.io.progress import Progress


def test_a_video_bar_counts_frames_on_a_terminal():
    out = io.StringIO()
    p = Progress(30, True, True, out, unit="frames", label="clip.mp4")
    p.update(15, 1)
    p.close()
    text = out.getvalue()
    assert text.startswith("\rclip.mp4: [" + "#" * 15 + "." * 15 + "] 15/30 ") and text.endswith("\n")
    assert " fps  1 error(s)" in text


def test_plain_lines_off_a_terminal_every_interval_and_at_the_end():
    out = io.StringIO()
    p = Progress(0, True, False, out, every=3600.0, unit="frames", label="v.avi")  # a container without a count
    p.update(1, 0)
    assert out.getvalue() == ""  # not yet: a plain line every interval
    p.every = 0.0
    p.update(2, 0)
    line = out.getvalue()
    assert line.startswith("progress: v.avi: 2 frames, ") and line.endswith(" fps, 0 error(s)\n")
    out = io.StringIO()
    Progress(3, True, False, out, every=3600.0).update(3, 0)  # the last image: always a line
    assert out.getvalue().startswith("progress: 3/3 images, ") and "img/s" in out.getvalue()
