"""Videos in batch runs: frame records equal the same frames run as images, stride, output videos, formats,
errors, interrupts and resume."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from fcndetect.cli import cli
from fcndetect.io.video import open_video
from video_clips import astronaut_frames, laplacian_values, read_clip, write_clip

CLI = [sys.executable, "-c", "from fcndetect.cli import main; main()"]
N = 7  # frames of the small clip


def _invoke(args, **kw):
    return CliRunner().invoke(cli, [str(a) for a in args], **kw)


def _lines(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines()]


def _outputs(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def clip(tmp_path_factory, samples) -> Path:
    return write_clip(tmp_path_factory.mktemp("video") / "clip.mp4", astronaut_frames(samples, N), fps=10.0)


@pytest.fixture(scope="module")
def video_run(clip, tmp_path_factory):
    """One run of the clip with every output: -o, --anonymize blur, batches of 3."""
    out = tmp_path_factory.mktemp("video_out") / "out"
    r = _invoke(["run", clip, "-o", out, "--anonymize", "blur", "--batch-size", "3", "--format", "coco"])
    return r, out


def test_frame_records_equal_the_frames_run_as_images(clip, video_run, tmp_path):
    r, _out = video_run
    assert r.exit_code == 0, r.stderr
    recs = _lines(r.stdout)
    assert [x["frame"] for x in recs] == list(range(N))
    assert [x["time"] for x in recs] == [round(k / 10, 3) for k in range(N)]
    assert all(x["image"] == str(clip) and (x["width"], x["height"]) == (192, 192) for x in recs)
    assert list(recs[0]) == ["image", "frame", "time", "width", "height", "detections", "error"]
    # the same decoded frames, saved losslessly and run as images
    with open_video(clip) as reader:
        for f in reader.frames():
            Image.fromarray(f.image).save(tmp_path / f"{f.index:02d}.png")
    images = _lines(_invoke(["run", tmp_path]).stdout)
    assert len(images) == N
    for frame, image in zip(recs, images):  # the same detections; a video's also carry their track
        assert [{k: v for k, v in d.items() if k != "track"} for d in frame["detections"]] == image["detections"]
        assert list(frame["detections"][0])[:5] == ["box", "score", "logit", "label", "track"]
    assert sum(len(x["detections"]) for x in recs) >= N  # the face, in every frame
    assert {d["track"] for x in recs for d in x["detections"]} == {1}  # one face, one track
    assert "track" not in images[0]["detections"][0]


def test_stride_gives_every_nth_frame(clip, video_run):
    every = _lines(video_run[0].stdout)
    r = _invoke(["run", clip, "--vid-stride", "3"])
    assert r.exit_code == 0, r.stderr
    recs = _lines(r.stdout)
    assert [x["frame"] for x in recs] == [0, 3, 6] and [x["time"] for x in recs] == [0.0, 0.3, 0.6]
    assert [x["detections"] for x in recs] == [every[k]["detections"] for k in (0, 3, 6)]


def test_output_videos_and_files(clip, video_run):
    r, out = video_run
    recs = _lines(r.stdout)
    assert sorted(p.name for p in out.iterdir()) == [
        "clip.mp4.annotated.mp4", "clip.mp4.anonymized.mp4", "clip.mp4.jsonl", "detections.json",
        "detections.jsonl", "images.json", "run.json"]
    assert _lines((out / "clip.mp4.jsonl").read_text()) == recs == _lines((out / "detections.jsonl").read_text())
    source, _, _ = read_clip(clip)
    for kind in ("annotated", "anonymized"):
        frames, fps, size = read_clip(out / f"clip.mp4.{kind}.mp4")
        assert (len(frames), fps, size) == (N, 10.0, (192, 192)), kind
    annotated, _, _ = read_clip(out / "clip.mp4.annotated.mp4")
    hidden, _, _ = read_clip(out / "clip.mp4.anonymized.mp4")
    for k, rec in enumerate(recs):
        boxes = np.array([d["box"] for d in rec["detections"]])
        x1, y1, x2, y2 = np.round(boxes[0]).astype(int)
        ring = np.abs(annotated[k][y1:y2, x1:x1 + 2].astype(int) - source[k][y1:y2, x1:x1 + 2]).mean()
        assert ring > 20  # the box's left edge is drawn
        assert laplacian_values(hidden[k], boxes).var() <= 0.2 * laplacian_values(source[k], boxes).var()
        far = (slice(150, 192), slice(0, 40))  # far from the face: the anonymised video keeps the pixels
        assert np.abs(hidden[k][far].astype(int) - source[k][far]).mean() < 4  # up to two lossy encodings
    images = json.loads((out / "images.json").read_text())["images"]
    assert [(im["frame"], im["file_name"]) for im in images] == [(k, str(clip)) for k in range(N)]
    results = json.loads((out / "detections.json").read_text())
    assert {res["image_id"] for res in results} == set(range(1, N + 1))
    assert {res["track_id"] for res in results} == {1}


def test_stride_frames_in_between_get_interpolated_regions(clip, tmp_path):
    out = tmp_path / "out"
    r = _invoke(["run", clip, "-o", out, "--anonymize", "solid", "--vid-stride", "3", "--format", "csv", "-q"])
    assert r.exit_code == 0, r.stderr
    recs = _lines(r.stdout)
    hidden, _, _ = read_clip(out / "clip.mp4.anonymized.mp4")
    assert len(hidden) == N
    boxes = {x["frame"]: np.array(x["detections"][0]["box"]) for x in recs}
    assert sorted(boxes) == [0, 3, 6] and {x["detections"][0]["track"] for x in recs} == {1}
    for k in range(N):  # the face pans 4 px a frame: frames 1, 2, 4, 5 are covered where it is, between
        a, b = (k // 3) * 3, min(6, (k // 3) * 3 + 3)
        box = boxes[a] + (boxes[b] - boxes[a]) * ((k - a) / 3 if b > a else 0)
        cx, cy = int((box[0] + box[2]) / 2), int((box[1] + box[3]) / 2)
        assert hidden[k][cy - 3:cy + 3, cx - 3:cx + 3].max() < 40, k  # filled (black, up to the codec)
    rows = (out / "detections.csv").read_text().splitlines()
    assert rows[0].startswith("image,frame,time,width,height,label,score") and rows[0].endswith(",track")
    assert [row.split(",")[1:3] for row in rows[1:]] == [["0", "0.000"], ["3", "0.300"], ["6", "0.600"]]
    assert [row.split(",")[-1] for row in rows[1:]] == ["1", "1", "1"]


def test_per_frame_files_with_crops_and_heatmap(clip, tmp_path):
    out = tmp_path / "out"
    r = _invoke(["run", clip, "-o", out, "--crops", "--heatmap", "--vid-stride", "4", "-q"])
    assert r.exit_code == 0, r.stderr
    names = sorted(p.relative_to(out).as_posix() for p in (out / "clip.mp4.frames").rglob("*") if p.is_file())
    assert names == ["clip.mp4.frames/000000.crops/000_face.png", "clip.mp4.frames/000000.heatmap.jpg",
                     "clip.mp4.frames/000004.crops/000_face.png", "clip.mp4.frames/000004.heatmap.jpg"]


def test_formats_that_cannot_tell_frames_apart_are_refused(clip, samples, tmp_path):
    for fmt in ("fddb", "wider"):
        r = _invoke(["run", samples / "coffee.png", clip, "-o", tmp_path / fmt, "--format", fmt])
        assert r.exit_code == 2 and r.stdout == ""
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"error: --format {fmt} cannot tell a video's frames")
        assert not (tmp_path / fmt).exists()


def test_ray_engine_refuses_videos_in_one_line(clip):
    pytest.importorskip("ray")
    r = _invoke(["run", clip, "--engine", "ray"])
    assert r.exit_code == 2 and r.stderr.strip() == (
        f"error: --engine ray does not read videos ({clip}): run videos with --engine local (the default)")


@pytest.mark.slow  # the console script on a folder of clips
def test_a_folder_of_images_and_broken_videos(tmp_path, samples, clip):
    folder = tmp_path / "in"
    folder.mkdir()
    Image.open(samples / "astronaut.png").convert("RGB").resize((192, 192)).save(folder / "a.png")
    (folder / "b_cut.mp4").write_bytes(clip.read_bytes()[:3000])  # cannot be opened
    (folder / "c_text.mov").write_text("no video here\n" * 100)
    zero = cv2.VideoWriter(str(folder / "d_zero.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10, (32, 32))
    zero.release()  # a container without a frame
    avi = write_clip(tmp_path / "full.avi", astronaut_frames(samples, 12, side=96), fourcc="MJPG")
    data = avi.read_bytes()
    (folder / "e_half.avi").write_bytes(data[: len(data) // 2])  # breaks midway
    (folder / "f_clip.mp4").write_bytes(clip.read_bytes())
    (folder / "notes.txt").write_text("skipped")
    out = tmp_path / "out"
    p = subprocess.run(CLI + ["run", str(folder), "-o", str(out)], capture_output=True, text=True)
    assert p.returncode == 1
    assert "Traceback" not in p.stderr
    recs = _lines(p.stdout)
    names = [Path(x["image"]).name for x in recs]
    half = [x for x in recs if x["image"].endswith("e_half.avi")]
    assert names == ["a.png", "b_cut.mp4", "c_text.mov"] + ["d_zero.avi"] * (names.count("d_zero.avi")) \
        + ["e_half.avi"] * len(half) + ["f_clip.mp4"] * N
    errors = {Path(x["image"]).name: x["error"] for x in recs if x["error"]}
    assert set(errors) == {"b_cut.mp4", "c_text.mov", "d_zero.avi", "e_half.avi"}
    assert "cannot be opened as a video" in errors["b_cut.mp4"] and "cannot be opened" in errors["c_text.mov"]
    assert "frame" in errors["d_zero.avi"] or "cannot be opened" in errors["d_zero.avi"]
    # the broken video: its frames so far, then one error record saying where it broke
    assert [x["frame"] for x in half] == list(range(len(half)))
    assert half[-1]["error"].startswith(f"video broke at frame {len(half) - 1}: ")
    assert all(x["error"] is None for x in half[:-1]) and len(half) > 2
    err_lines = [line for line in p.stderr.splitlines() if line.startswith("error: ")]
    assert len(err_lines) == 4 and all(str(folder) in line for line in err_lines)
    others = [line for line in p.stderr.splitlines() if not line.startswith(("error: ", "progress: "))]
    assert len(others) == 1 and "image(s)" in others[0]  # the summary: no OpenCV or FFmpeg lines
    assert sorted(q.name for q in out.glob("*.jsonl")) == ["detections.jsonl", "f_clip.mp4.jsonl"]
    assert (out / "e_half.avi.annotated.mp4").is_file()  # the frames read so far are kept
    assert not list(out.rglob("*.tmp*"))


def test_progress_counts_frames(clip):
    r = _invoke(["run", clip, "--vid-stride", "2"])
    assert f"progress: {clip}: {N}/{N} frames" in r.stderr and " fps, 0 error(s)" in r.stderr
    assert "0 image(s), 4 video frame(s), 4 detection(s), 0 failed input(s) in " in r.stderr  # the summary
    assert "not processed" not in r.stderr


def _wait_for(pattern: str, folder: Path, proc: subprocess.Popen, seconds: float = 120) -> bool:
    deadline = time.time() + seconds
    while time.time() < deadline and proc.poll() is None:
        if list(folder.glob(pattern)):
            return True
        time.sleep(0.005)
    return False


@pytest.mark.slow  # a subprocess killed mid-video, then resumed
def test_sigkill_mid_video_then_resume_equals_uninterrupted(tmp_path, samples):
    folder = tmp_path / "in"
    folder.mkdir()
    Image.open(samples / "coffee.png").convert("RGB").resize((120, 80)).save(folder / "a.png")
    write_clip(folder / "b.mp4", astronaut_frames(samples, 40, side=160, step=2))
    Image.open(samples / "chelsea.png").convert("RGB").resize((120, 80)).save(folder / "c.png")
    args = ["run", str(folder), "--anonymize", "pixelate", "--format", "csv", "-q"]
    ref = tmp_path / "ref"
    p = subprocess.run(CLI + args + ["-o", str(ref)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    out = tmp_path / "out"
    proc = subprocess.Popen(CLI + args + ["-o", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    started = _wait_for(".fcndetect.tmp/.*.annotated.mp4.*.tmp.mp4", out, proc)
    time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert started and not (out / "b.mp4.jsonl").exists(), "the run was not killed mid-video"
    assert not (out / "b.mp4.annotated.mp4").exists()  # a partial video never has the final name
    p = subprocess.run(CLI + args + ["-o", str(out), "--resume"], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert _outputs(out) == _outputs(ref)  # the videos' bytes included; no temporary file left


@pytest.mark.slow  # a subprocess interrupted mid-video
def test_ctrl_c_mid_video_leaves_no_partial_video(tmp_path, samples):
    clip = write_clip(tmp_path / "long.mp4", astronaut_frames(samples, 60, side=160, step=2))
    out = tmp_path / "out"
    proc = subprocess.Popen(CLI + ["run", str(clip), "-o", str(out), "--anonymize", "blur"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    started = _wait_for(".fcndetect.tmp/.*.annotated.mp4.*.tmp.mp4", out, proc)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert started and proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert [line for line in stderr.splitlines() if not line.startswith("progress: ")] == [
        "interrupted: rerun with --resume to finish"]
    assert sorted(p.name for p in out.iterdir()) == ["run.json"]  # no video, no temporary file
    assert all(json.loads(line)["error"] is None for line in stdout.splitlines())


@pytest.mark.slow  # the console script on a folder with a cut clip
def test_issue_19_acceptance_folder_with_an_image_and_a_cut_mp4(tmp_path, samples, clip):
    folder = tmp_path / "in"
    folder.mkdir()
    Image.open(samples / "astronaut.png").convert("RGB").resize((192, 192)).save(folder / "photo.png")
    (folder / "video.mp4").write_bytes(clip.read_bytes()[:3000])
    p = subprocess.run(CLI + ["run", str(folder)], capture_output=True, text=True)
    assert p.returncode == 1 and "Traceback" not in p.stderr
    recs = _lines(p.stdout)
    assert [(Path(x["image"]).name, x["error"] is None) for x in recs] == [("photo.png", True), ("video.mp4", False)]
    assert len(recs[0]["detections"]) == 1
    errors = [line for line in p.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [f"error: {folder / 'video.mp4'}: {recs[1]['error']}"]
    others = [line for line in p.stderr.splitlines() if not line.startswith(("error: ", "progress: "))]
    assert len(others) == 1 and "image(s)" in others[0]  # the summary


def test_a_frame_whose_detection_fails_and_a_video_that_cannot_be_written(tmp_path, samples, clip, monkeypatch):
    from fcndetect.detector import Detector
    from fcndetect.io import video_writer as video_io

    real_detect = Detector.detect_batch
    calls = {"n": 0}

    def faulty(self, images, return_maps=False):
        calls["n"] += 1
        if calls["n"] == 3:  # the third frame (batches of 1)
            raise RuntimeError("CUDA out of memory")
        return real_detect(self, images, return_maps=return_maps)

    monkeypatch.setattr(Detector, "detect_batch", faulty)
    out = tmp_path / "a"
    r = _invoke(["run", clip, "-o", out])
    assert r.exit_code == 1
    recs = _lines(r.stdout)
    assert [x["frame"] for x in recs] == list(range(N))
    assert [x["frame"] for x in recs if x["error"]] == [2]
    assert recs[2]["error"] == "detection failed: RuntimeError: CUDA out of memory"
    assert r.stderr.count("error: ") == 1
    assert not (out / "clip.mp4.jsonl").exists()  # incomplete: --resume redoes it, as a failed image
    assert len(read_clip(out / "clip.mp4.annotated.mp4")[0]) == N
    monkeypatch.setattr(Detector, "detect_batch", real_detect)

    real_write = video_io.VideoFileWriter.write

    def full_disk(self, image, pts=None):
        if self.frames == 4:
            raise OSError(28, "No space left on device", str(self.path))
        real_write(self, image, pts)

    monkeypatch.setattr(video_io.VideoFileWriter, "write", full_disk)
    out = tmp_path / "b"
    r = _invoke(["run", clip, samples / "coffee.png", "-o", out, "--crops"])
    assert r.exit_code == 1
    recs = _lines(r.stdout)
    # frames are written behind detection (a track found later can still cover them): all 7 were detected and
    # their records sent; writing frame 4 failed: one more record says so
    assert [x["frame"] for x in recs[:-1]] == [*range(N), 4] and recs[-1]["image"].endswith("coffee.png")
    assert [x["error"] is None for x in recs[:N]] == [True] * N
    assert recs[N]["error"] == ("cannot write its outputs at frame 4: No space left on device: "
                                f"{out / 'clip.mp4.annotated.mp4'}")
    assert sorted(p.name for p in out.rglob("*") if p.is_file()) == [
        "coffee.png.annotated.png", "coffee.png.json", "detections.jsonl", "run.json"]  # the video's files gone


def test_videos_from_a_list_file_a_glob_and_stdin(tmp_path, clip):
    for sub in ("a", "b", "c"):
        (tmp_path / sub).mkdir()
        (tmp_path / sub / f"{sub}.mp4").write_bytes(clip.read_bytes())
    (tmp_path / "list.txt").write_text(f"# videos\n{tmp_path / 'a' / 'a.mp4'}\n")
    r = _invoke(["run", f"@{tmp_path / 'list.txt'}", str(tmp_path / "b" / "*.mp4"), "-", "--vid-stride", "5", "-q"],
                input=f"{tmp_path / 'c' / 'c.mp4'}\n")
    assert r.exit_code == 0, r.stderr
    assert [(Path(x["image"]).name, x["frame"]) for x in _lines(r.stdout)] == [
        ("a.mp4", 0), ("a.mp4", 5), ("b.mp4", 0), ("b.mp4", 5), ("c.mp4", 0), ("c.mp4", 5)]


def test_resume_keeps_complete_videos(tmp_path, clip, samples):
    out = tmp_path / "out"
    args = ["run", clip, samples / "coffee.png", "-o", out, "--vid-stride", "2", "--format", "coco"]
    first = _invoke(args)
    assert first.exit_code == 0, first.stderr
    before = {p: p.stat().st_mtime_ns for p in out.iterdir()}
    (out / "detections.json").unlink()  # a combined file lost: --resume writes it again
    again = _invoke([*args, "--resume"])
    assert again.exit_code == 0 and again.stdout == first.stdout
    assert "2 already done" in again.stderr
    for name in ("clip.mp4.annotated.mp4", "clip.mp4.jsonl", "coffee.png.json"):
        assert (out / name).stat().st_mtime_ns == before[out / name]  # not redone
    assert (out / "detections.json").is_file()
    r = _invoke([*args[:-4], "--vid-stride", "3", "--format", "coco", "--resume"])
    assert r.exit_code == 2 and "outputs.vid_stride: 2 -> 3" in r.stderr


_STALLED_RUN = """
import sys, threading
from fcndetect.engines import local
from fcndetect.io import video
real_open = video.open_video
def stalled_open(path, **kw):
    reader = real_open(path, **kw)
    real, forever = reader._decoded, threading.Event()
    def gen():
        for _ in range(3):
            yield next(real)
        print("stalled", file=sys.stderr, flush=True)
        forever.wait()
    reader._decoded = gen()
    return reader
local.open_video = stalled_open
from fcndetect.cli import main
main()
"""


@pytest.mark.slow
def test_ctrl_c_while_the_decoder_is_blocked_exits_130_without_waiting(tmp_path, clip):
    """A decoder stuck in a read (a stalled mount) never holds up an interrupt: the reader's thread is
    abandoned after a short grace period, the run exits 130, and no temporary file is left."""
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-c", _STALLED_RUN, "run", str(clip), "-o", str(out), "--anonymize",
                             "solid", "-q"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = ""
    while proc.poll() is None and "stalled" not in line:
        line = proc.stderr.readline()
    assert "stalled" in line
    time.sleep(0.3)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert time.monotonic() - t0 < 15  # the grace period, not the decoder
    assert "Traceback" not in stderr
    assert sorted(p.name for p in out.iterdir()) == ["run.json"]  # no video, no temporary file


def test_a_face_missing_from_frames_10_and_11_is_still_covered(tmp_path, samples):
    """The face is erased (grey) in frames 10 and 11 of a 20-frame pan: nothing is detected there, and the
    track's region, interpolated between frames 9 and 12, still fills where the face is."""
    frames = astronaut_frames(samples, 20, side=192, step=3)
    face = (60, 15, 110, 75)  # wider than the face's box at frame 0
    erased = [f.copy() for f in frames]
    for k in (10, 11):
        x1, y1, x2, y2 = face
        erased[k][y1:y2, (x1 + 3 * k) % 192:(x2 + 3 * k) % 192] = 128
    clip = write_clip(tmp_path / "gap.mp4", erased)
    out = tmp_path / "out"
    r = _invoke(["run", clip, "-o", out, "--anonymize", "solid", "-q"])
    assert r.exit_code == 0, r.stderr
    recs = _lines(r.stdout)
    assert [len(x["detections"]) for x in recs][9:13] == [1, 0, 0, 1]  # erased: no detection there
    assert {d["track"] for x in recs for d in x["detections"]} == {1}
    hidden, _, _ = read_clip(out / "gap.mp4.anonymized.mp4")
    b9, b12 = (np.array(recs[k]["detections"][0]["box"]) for k in (9, 12))
    for k in (10, 11):
        box = b9 + (b12 - b9) * (k - 9) / 3
        x1, y1, x2, y2 = np.round(box).astype(int)
        assert hidden[k][y1 + 2:y2 - 2, x1 + 2:x2 - 2].max() < 40, k  # the face's place is filled
    far = (slice(150, 192), slice(0, 40))
    assert np.abs(hidden[10][far].astype(int) - erased[10][far]).mean() < 8  # not filled (two lossy encodings)


def test_variable_frame_rate_and_audio_survive_in_both_videos(tmp_path, samples):
    from video_clips import av_audio_packets, av_clip, av_codec, av_timestamps

    times = [0, 40, 80, 160, 200, 240, 320, 360]
    clip = av_clip(tmp_path / "vfr.mp4", astronaut_frames(samples, len(times), side=128), times)
    out = tmp_path / "out"
    r = _invoke(["run", clip, "-o", out, "--anonymize", "blur", "--format", "csv"])
    assert r.exit_code == 0, r.stderr
    assert [x["time"] for x in _lines(r.stdout)] == [t / 1000 for t in times]  # from the timestamps
    packets = av_audio_packets(clip)
    for kind in ("annotated", "anonymized"):
        video = out / f"vfr.mp4.{kind}.mp4"
        assert av_codec(video) == ("h264", "yuv420p", len(times))
        assert av_timestamps(video) == pytest.approx(av_timestamps(clip), abs=1e-6)
        assert av_audio_packets(video) == packets and packets
    assert "warning" not in r.stderr
