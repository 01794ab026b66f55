"""Robust image decoding: any common file to an upright ``[H, W, 3]`` uint8 RGB array, or a clear error."""

from __future__ import annotations

import contextlib
import io
import os
import stat
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = ["ImageLoadError", "load_image", "decode_image", "check_regular_file", "read_file_bytes", "to_grayscale",
           "to_rgb_array", "IMAGE_EXTENSIONS", "DEFAULT_MAX_PIXELS"]

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".jpe", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm", ".pnm"}
)
#: Default guard against decompression bombs: 20,000 x 10,000 pixels (an 8K photo is 33 Mpx).
DEFAULT_MAX_PIXELS = 200_000_000


_LIMIT_LOCK = threading.Lock()
_limit_users = 0
_limit_saved: int | None = None


@contextlib.contextmanager
def _pillow_limit_off() -> Iterator[None]:
    """Pillow's own decompression-bomb limit (``Image.MAX_IMAGE_PIXELS``, 89 Mpx warning, 179 Mpx error) off
    while fcndetect decodes: ``--max-pixels`` is the only pixel limit, checked by :func:`decode_image` from the
    header, before any pixel is decoded. Thread-safe: concurrent decodes count themselves under a lock; the
    first sets the limit to ``None``, the last restores the value it found (other code using Pillow in this
    process meanwhile sees no limit)."""
    global _limit_users, _limit_saved
    with _LIMIT_LOCK:
        if _limit_users == 0:
            _limit_saved = Image.MAX_IMAGE_PIXELS
            Image.MAX_IMAGE_PIXELS = None
        _limit_users += 1
    try:
        yield
    finally:
        with _LIMIT_LOCK:
            _limit_users -= 1
            if _limit_users == 0:
                Image.MAX_IMAGE_PIXELS = _limit_saved


class ImageLoadError(Exception):
    """An input could not be read as an image. ``str(err)`` is ``"<path>: <reason>"`` on one line."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = str(path)
        self.reason = " ".join(str(reason).split())  # one line
        super().__init__(f"{self.path}: {self.reason}")


def check_regular_file(path: str | os.PathLike[str]) -> None:
    """Raise :class:`ImageLoadError` unless ``path`` is a non-empty regular file; never opens it (a FIFO stays
    unopened)."""
    path = Path(path)
    try:
        st = path.stat()  # follows symlinks: a broken link or a loop fails here
    except FileNotFoundError:
        reason = "broken symbolic link" if path.is_symlink() else "no such file"
        raise ImageLoadError(path, reason) from None
    except OSError as exc:
        raise ImageLoadError(path, exc.strerror or str(exc)) from None
    if stat.S_ISDIR(st.st_mode):
        raise ImageLoadError(path, "is a directory, not an image file")
    if not stat.S_ISREG(st.st_mode):
        raise ImageLoadError(path, "not a regular file (FIFO, socket or device)")
    if st.st_size == 0:
        raise ImageLoadError(path, "empty file (0 bytes)")


_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"GIF8", "GIF"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
)


def _sniff(head: bytes) -> str | None:
    """The format a file's first bytes claim, if any."""
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WebP"
    return next((name for sig, name in _SIGNATURES if head.startswith(sig)), None)


def read_file_bytes(path: str | os.PathLike[str]) -> bytes:
    """The bytes of a file already checked by :func:`check_regular_file`, or :class:`ImageLoadError`."""
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError as exc:
        raise ImageLoadError(path, exc.strerror or str(exc)) from None


def to_rgb_array(img: Image.Image) -> np.ndarray:
    """Convert a decoded PIL image of any mode to ``[H, W, 3]`` uint8 RGB (EXIF orientation not applied).

    16-bit and 32-bit integer images are scaled by their bit depth (``v / 257`` for 16 bits), not clipped;
    alpha is dropped (opaque pixels keep their colour); palettes, grayscale and CMYK are converted.
    """
    mode = img.mode
    if mode in {"I;16", "I;16B", "I;16L", "I;16N", "I"}:
        arr = np.asarray(img).astype(np.float64)
        top = 65535.0 if mode.startswith("I;16") or arr.max(initial=0) <= 65535 else float(2**32 - 1)
        arr = np.clip(np.round(arr * (255.0 / top)), 0, 255).astype(np.uint8)
        return np.repeat(arr[:, :, None], 3, axis=2)
    if mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        peak = 1.0 if arr.max(initial=0) <= 1.0 else 255.0
        arr = np.clip(np.round(arr * (255.0 / peak)), 0, 255).astype(np.uint8)
        return np.repeat(arr[:, :, None], 3, axis=2)
    if mode in {"P", "PA"}:
        img = img.convert("RGBA")
    if img.mode != "RGB":
        img = img.convert("RGB")
    return np.asarray(img, dtype=np.uint8)  # a fresh (read-only) array: PIL hands over a copy


def to_grayscale(image: np.ndarray) -> np.ndarray:
    """``[..., H, W, 3]`` uint8 RGB images as grayscale repeated on three channels (same shape, uint8).

    Luma ``Y = 0.299 R + 0.587 G + 0.114 B`` (ITU-R BT.601, the weights of PIL's ``convert("L")``), rounded
    to the nearest integer; a gray image (R = G = B) is returned unchanged. Training (``fcndetect train --grayscale``) and
    detection (``grayscale = true``) both use this function, so the two see the same pixels.
    """
    rgb = image.astype(np.float32)
    y = rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114
    gray = np.clip(np.rint(y), 0, 255).astype(np.uint8)
    return np.repeat(gray[..., None], 3, axis=-1)


def load_image(path: str | os.PathLike[str], max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode an image file to an upright ``[H, W, 3]`` uint8 RGB array (:func:`decode_image` of its bytes).

    Raises:
        ImageLoadError: with a one-line reason (missing, not a regular file, empty, unreadable, not an image,
            truncated or corrupt, too many pixels).
    """
    check_regular_file(path)
    return decode_image(read_file_bytes(path), path, max_pixels=max_pixels)


def decode_image(data: bytes, path: str | os.PathLike[str], max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode an image file's bytes to an upright ``[H, W, 3]`` uint8 RGB array; ``path`` only names it in errors.

    EXIF orientation is applied (boxes are in the upright image's coordinates); an animated image gives
    its first frame. Every engine decodes with this function, so they see the same pixels.

    ``max_pixels`` (``None``: no limit) is the only pixel limit: it is checked from the header, before any
    pixel is decoded, and Pillow's own ``Image.MAX_IMAGE_PIXELS`` is off meanwhile (a 182 Mpx image decodes
    under the default 200 Mpx).

    Raises:
        ImageLoadError: with a one-line reason (empty, not an image, truncated or corrupt, too many pixels).
    """
    p = str(path)
    if not data:
        raise ImageLoadError(p, "empty file (0 bytes)")
    try:
        with warnings.catch_warnings(), _pillow_limit_off():
            warnings.simplefilter("ignore")  # EXIF warnings
            with Image.open(io.BytesIO(data)) as img:
                w, h = img.size
                if max_pixels is not None and w * h > max_pixels:
                    raise ImageLoadError(
                        p, f"{w}x{h} = {w * h:,} pixels exceeds --max-pixels {max_pixels:,} (decompression-bomb guard)"
                    )
                img.seek(0)
                img.load()
                arr = to_rgb_array(ImageOps.exif_transpose(img))
    except ImageLoadError:
        raise
    except UnidentifiedImageError:
        kind = _sniff(data[:16])
        reason = f"corrupt {kind} file (its header cannot be decoded)" if kind else "not a recognised image format"
        raise ImageLoadError(p, reason) from None
    except Image.DecompressionBombError as exc:
        raise ImageLoadError(p, f"too many pixels ({exc})") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageLoadError(p, f"corrupt or truncated image ({exc})") from None
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ImageLoadError(p, "image has no pixels")
    return arr
