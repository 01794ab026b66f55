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


def av_clip(path: Path, frames: list[np.ndarray], times_ms: list[int], audio: str | None = "aac",
            codec: str = "libx264") -> Path:
    """Write RGB ``frames`` with PyAV as H.264 (or ``codec``: ``ffv1`` takes odd sizes, in ``.mkv``) at the given
    timestamps (milliseconds: uneven steps make a variable frame rate), with a mono tone as long as the video
    in ``audio`` (``aac``, ``pcm_s16le`` in a ``.mov``/``.mkv``; ``None``: no audio)."""
    import av
    from fractions import Fraction

    h, w = frames[0].shape[:2]
    with av.open(str(path), "w") as out:
        x264 = codec == "libx264"
        vs = out.add_stream(codec, rate=25, options={"crf": "23", "preset": "ultrafast", "bf": "0"} if x264 else {})
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p" if x264 else "yuv444p"
        vs.time_base = vs.codec_context.time_base = Fraction(1, 1000)
        aus = None
        if audio is not None:
            aus = out.add_stream(audio, rate=16000)
            aus.layout = "mono"
        for f, t in zip(frames, times_ms):
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")
            vf.pts, vf.time_base = int(t), Fraction(1, 1000)
            for p in vs.encode(vf):
                out.mux(p)
        for p in vs.encode():
            out.mux(p)
        if aus is not None:
            n = int(16000 * (times_ms[-1] + 40) / 1000)
            tone = (0.2 * np.sin(2 * np.pi * 440 * np.arange(n) / 16000)).astype(np.float32)
            fmt = "fltp" if audio == "aac" else "s16"
            for i in range(0, n, 1024):
                chunk = tone[i:i + 1024][None, :]
                if fmt == "s16":
                    chunk = (chunk * 32767).astype(np.int16)
                af = av.AudioFrame.from_ndarray(chunk, format=fmt, layout="mono")
                af.sample_rate, af.pts = 16000, i
                for p in aus.encode(af):
                    out.mux(p)
            for p in aus.encode():
                out.mux(p)
    return path


def av_timestamps(path: Path) -> list[float]:
    """Every video frame's timestamp (seconds) as PyAV decodes them."""
    import av

    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return [float(f.pts * s.time_base) for f in c.decode(s)]


def av_audio_packets(path: Path) -> list[bytes] | None:
    """The payloads of a video's first audio stream's packets (``None``: no audio stream)."""
    import av

    with av.open(str(path)) as c:
        if not c.streams.audio:
            return None
        return [bytes(p) for p in c.demux(c.streams.audio[0]) if p.size]


def av_codec(path: Path) -> tuple[str, str, int]:
    """``(codec, pixel format, frames decoded)`` of a video's first video stream."""
    import av

    with av.open(str(path)) as c:
        s = c.streams.video[0]
        n = sum(1 for _ in c.decode(s))
        return s.codec_context.name, s.codec_context.pix_fmt, n
