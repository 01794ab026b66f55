"""Robust decoding: every odd input gives a correct RGB array or a precise one-line error."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
from PIL import Image

from fcndetect.io.images import ImageLoadError, load_image


@pytest.fixture(scope="module")
def thumb(photo) -> Image.Image:
    """The astronaut at 128x128: quick to encode in every format."""
    return photo.resize((128, 128))


def _save(img: Image.Image, path, **kw):
    img.save(path, **kw)
    return path


def test_rgb_png_roundtrip(tmp_path, thumb):
    arr = load_image(_save(thumb, tmp_path / "a.png"))
    assert arr.dtype == np.uint8 and arr.shape == (128, 128, 3)
    np.testing.assert_array_equal(arr, np.asarray(thumb))


@pytest.mark.parametrize("mode", ["RGBA", "L", "LA", "P", "CMYK"])
def test_mode_conversions(tmp_path, thumb, mode):
    ext = ".jpg" if mode == "CMYK" else ".png"
    img = thumb.convert(mode)
    arr = load_image(_save(img, tmp_path / f"x{ext}"))
    assert arr.shape == (128, 128, 3)
    ref = np.asarray(thumb.convert("L").convert("RGB") if mode in ("L", "LA") else thumb).astype(int)
    tol = {"RGBA": 0, "L": 0, "LA": 0, "P": 40, "CMYK": 12}[mode]
    assert np.abs(arr.astype(int) - ref).mean() <= tol


def test_16_bit_png_scaled_by_bit_depth(tmp_path):
    ramp = (np.arange(256, dtype=np.uint32) * 257).astype(np.uint16).reshape(16, 16)
    Image.fromarray(ramp).save(tmp_path / "g16.png")
    arr = load_image(tmp_path / "g16.png")
    np.testing.assert_array_equal(arr[:, :, 0], np.arange(256, dtype=np.uint8).reshape(16, 16))


def test_exif_rotation_applied(tmp_path, thumb):
    rotated = thumb.transpose(Image.Transpose.ROTATE_90)  # stored sideways...
    exif = Image.Exif()
    exif[0x0112] = 6  # ...with orientation 6: "rotate 90 degrees clockwise to view"
    rotated.save(tmp_path / "r.jpg", exif=exif, quality=95)
    arr = load_image(tmp_path / "r.jpg")
    assert arr.shape == (128, 128, 3)
    assert np.abs(arr.astype(int) - np.asarray(thumb).astype(int)).mean() < 6


def test_animated_gif_first_frame(tmp_path, thumb):
    frames = [thumb.convert("P"), Image.new("P", (128, 128))]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:], duration=100)
    arr = load_image(tmp_path / "a.gif")
    assert arr.shape == (128, 128, 3) and arr.mean() > 30  # not the black second frame


@pytest.mark.parametrize("size", [(1, 1), (10000, 20)])
def test_extreme_sizes(tmp_path, size):
    arr = load_image(_save(Image.new("RGB", size, (10, 20, 30)), tmp_path / "s.png"))
    assert arr.shape == (size[1], size[0], 3)


def _truncated(tmp_path, thumb):
    buf = io.BytesIO()
    thumb.save(buf, "JPEG")
    p = tmp_path / "t.jpg"
    p.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    return p


def _bad_crc(tmp_path, thumb):
    buf = io.BytesIO()
    thumb.save(buf, "PNG")
    data = bytearray(buf.getvalue())
    data[29] ^= 0xFF  # inside the IHDR chunk's CRC
    p = tmp_path / "crc.png"
    p.write_bytes(bytes(data))
    return p


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    "make, reason",
    [
        (lambda t, p: t / "missing.png", "no such file"),
        (lambda t, p: _write(t / "e.jpg", b""), "empty file"),
        (lambda t, p: _write(t / "x.jpg", b"hello"), "not a recognised image"),
        (_truncated, "truncated"),
        (_bad_crc, "corrupt"),
        (lambda t, p: (t / "d.jpg").mkdir() or t / "d.jpg", "is a directory"),
        (lambda t, p: os.symlink(t / "nowhere.png", t / "l.png") or t / "l.png", "broken symbolic link"),
    ],
)
def test_errors_are_one_line_and_name_the_file(tmp_path, thumb, make, reason):
    path = make(tmp_path, thumb)
    with pytest.raises(ImageLoadError) as err:
        load_image(path)
    msg = str(err.value)
    assert reason in msg and msg.startswith(str(path)) and "\n" not in msg


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_fifo_does_not_hang(tmp_path):
    os.mkfifo(tmp_path / "y.jpg")
    with pytest.raises(ImageLoadError, match="not a regular file"):
        load_image(tmp_path / "y.jpg")


def test_max_pixels_guard(tmp_path):
    p = _save(Image.new("RGB", (300, 200)), tmp_path / "big.png")
    with pytest.raises(ImageLoadError, match="exceeds --max-pixels"):
        load_image(p, max_pixels=50_000)
    assert load_image(p, max_pixels=None).shape == (200, 300, 3)


def test_to_grayscale_against_bt601_and_pil():
    from fcndetect.io.images import to_grayscale

    rgb = np.random.default_rng(0).integers(0, 256, (2, 9, 11, 3), dtype=np.uint8)  # a batch works too
    got = to_grayscale(rgb)
    assert got.shape == rgb.shape and (got[..., 0] == got[..., 1]).all() and (got[..., 1] == got[..., 2]).all()
    for b, y, x in [(0, 0, 0), (1, 8, 10), (0, 4, 7), (1, 3, 2)]:
        r, g, bl = (float(v) for v in rgb[b, y, x])
        assert got[b, y, x, 0] == round(0.299 * r + 0.587 * g + 0.114 * bl)
    pil = np.asarray(Image.fromarray(rgb[0]).convert("L")).astype(int)
    assert np.abs(got[0, ..., 0].astype(int) - pil).max() <= 1  # PIL rounds its fixed-point sum
    gray = np.repeat(rgb[0, ..., :1], 3, axis=2)
    np.testing.assert_array_equal(to_grayscale(gray), gray)


def test_detector_grayscale_setting_sees_the_gray_image(samples):
    from fcndetect import Detector
    from fcndetect.io.images import to_grayscale

    image = load_image(samples / "astronaut.png")
    gray_det = Detector("face", grayscale=True)
    plain = Detector("face")
    a = gray_det.detect_array(image)
    b = plain.detect_array(to_grayscale(image))
    np.testing.assert_array_equal(a.boxes, b.boxes)
    np.testing.assert_array_equal(a.logits, b.logits)
    assert len(a) >= 1


def test_max_pixels_is_the_only_pixel_limit(tmp_path, thumb, monkeypatch):
    """Pillow's own limit does not apply (here set below the image), and is restored after decoding."""
    path = _save(thumb, tmp_path / "a.png")  # 16,384 pixels
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(Image.DecompressionBombError):  # what Pillow alone does with this image
        Image.open(path)
    assert load_image(path).shape == (128, 128, 3)  # the default --max-pixels (200 Mpx) applies
    assert Image.MAX_IMAGE_PIXELS == 1000
    with pytest.raises(ImageLoadError, match="exceeds --max-pixels 10,000"):
        load_image(path, max_pixels=10_000)
    assert load_image(path, max_pixels=None).shape == (128, 128, 3)
    assert Image.MAX_IMAGE_PIXELS == 1000


@pytest.fixture(scope="module")
def png_182mpx(tmp_path_factory) -> str:
    """A 14000 x 13000 (182 Mpx) 1-bit PNG: 22 kB on disk, over Pillow's 179 Mpx bomb limit."""
    path = tmp_path_factory.mktemp("big") / "big.png"
    Image.new("1", (14000, 13000)).save(path)
    return str(path)


def test_large_image_is_checked_before_decoding(png_182mpx, monkeypatch):
    from PIL import ImageFile

    def no_decoding(self):
        raise AssertionError("pixels decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    with pytest.raises(ImageLoadError, match=r"14000x13000 = 182,000,000 pixels exceeds --max-pixels 100,000,000"):
        load_image(png_182mpx, max_pixels=100_000_000)
    with pytest.raises(AssertionError, match="pixels decoded"):  # under the default limit, decoding starts
        load_image(png_182mpx)


@pytest.mark.slow
def test_182_mpx_png_decodes_under_the_default_and_a_raised_limit(png_182mpx):
    """Real decodes (about 3 s and 550 MB each)."""
    assert load_image(png_182mpx).shape == (13000, 14000, 3)
    assert load_image(png_182mpx, max_pixels=300_000_000).shape == (13000, 14000, 3)
