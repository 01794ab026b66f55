"""Batch mode: hardened inputs, faithful conversions, outputs, resume after SIGKILL, formats, sources."""

from __future__ import annotations

import io
import json
import os
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
from fcndetect.runner import read_sources



def _invoke(args, **kw):
    return CliRunner().invoke(cli, [str(a) for a in args], **kw)


def _records(stdout: str) -> dict[str, dict]:
    return {Path(r["image"]).name: r for r in map(json.loads, stdout.splitlines())}


def _build_folder(root: Path, photo_small: Image.Image) -> dict[str, str | None]:
    """Every case of issue 4 item 7; returns file name -> expected error fragment (None: processed)."""
    root.mkdir()
    sub = root / "sub dir"
    sub.mkdir()
    photo_small.save(root / "plain.png")
    photo_small.save(sub / "фото с лицом.png")  # unicode and spaces
    photo_small.convert("CMYK").save(root / "cmyk.jpg", quality=95)
    photo_small.convert("RGBA").save(root / "rgba.png")
    pal = photo_small.convert("P", palette=Image.ADAPTIVE, colors=256)
    pal.save(root / "palette.png")
    pal.convert("RGB").save(root / "palette_rgb.png")  # the same pixels, stored as RGB
    photo_small.convert("L").save(root / "gray.png")
    gray16 = (np.asarray(photo_small.convert("L")).astype(np.uint16) * 257)
    Image.fromarray(gray16).save(root / "gray16.png")
    rgb16 = np.asarray(photo_small)[:, :, ::-1].astype(np.uint16) * 257
    cv2.imwrite(str(root / "rgb16.png"), rgb16)
    exif = Image.Exif()
    exif[0x0112] = 6
    photo_small.transpose(Image.Transpose.ROTATE_90).save(root / "exif.jpg", exif=exif, quality=95)
    photo_small.save(root / "plain.jpg", quality=95)
    frames = [photo_small.convert("P"), Image.new("P", photo_small.size)]
    frames[0].save(root / "anim.gif", save_all=True, append_images=frames[1:], duration=50)
    Image.new("RGB", (1, 1)).save(root / "one.png")
    Image.new("RGB", (10000, 20), (90, 90, 90)).save(root / "wide.png")
    Image.new("RGB", (700, 500)).save(root / "huge.png")  # over --max-pixels below
    (root / "zero.jpg").write_bytes(b"")
    buf = io.BytesIO()
    photo_small.save(buf, "JPEG")
    (root / "truncated.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    data = bytearray((root / "plain.png").read_bytes())
    data[29] ^= 0xFF
    (root / "badcrc.png").write_bytes(bytes(data))
    (root / "text.jpg").write_text("not an image\n")
    (root / "notes.xml").write_text("<annotation/>")  # skipped silently
    os.symlink(root / "l2.jpg", root / "l1.jpg")
    os.symlink(root / "l1.jpg", root / "l2.jpg")
    os.symlink(root, root / "loop")  # a folder symlink loop: not followed
    os.symlink(root / "nowhere.png", root / "broken.jpg")
    (root / "x.jpg").mkdir()
    os.mkfifo(root / "y.jpg")
    return {
        "plain.png": None, "palette_rgb.png": None, "фото с лицом.png": None, "cmyk.jpg": None, "rgba.png": None, "palette.png": None,
        "gray.png": None, "gray16.png": None, "rgb16.png": None, "exif.jpg": None, "plain.jpg": None,
        "anim.gif": None, "one.png": None, "wide.png": None,
        "huge.png": "exceeds --max-pixels", "zero.jpg": "empty file", "truncated.jpg": "truncated",
        "badcrc.png": "corrupt PNG", "text.jpg": "not a recognised image format",
        "l1.jpg": "symbolic links", "l2.jpg": "symbolic links", "broken.jpg": "broken symbolic link",
        "x.jpg": "is a directory", "y.jpg": "not a regular file",
    }


def _iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def test_hardened_folder(tmp_path, photo_small):
    folder = tmp_path / "in"
    expected = _build_folder(folder, photo_small)
    out = tmp_path / "out"
    r = _invoke(["run", folder, "-o", out, "--max-pixels", 300_000, "--min-size", 30], catch_exceptions=False)
    assert r.exit_code == 1
    recs = _records(r.stdout)
    assert sorted(recs) == sorted(expected)  # one line per image file, nothing for notes.xml
    for name, err in expected.items():
        if err is None:
            assert recs[name]["error"] is None, (name, recs[name]["error"])
        else:
            assert err in recs[name]["error"], (name, recs[name]["error"])
    assert "Traceback" not in r.stderr
    lines = [x for x in r.stderr.splitlines()[:-1] if not x.startswith("progress: ")]
    assert len(lines) == sum(e is not None for e in expected.values())
    assert all(line.startswith("error: ") for line in lines)
    # faithful conversions. Lossless variants give exactly the detections of the same pixels stored as RGB:
    face = recs["plain.png"]["detections"]
    assert len(face) == 1
    for name, same_as in (("фото с лицом.png", "plain.png"), ("rgba.png", "plain.png"), ("rgb16.png", "plain.png"),
                          ("gray16.png", "gray.png"), ("palette.png", "palette_rgb.png")):
        assert recs[name]["detections"] == recs[same_as]["detections"], name
    # lossy variants (JPEG, CMYK JPEG, EXIF-rotated JPEG, GIF palette, grayscale): the best detection is the face
    for name in ("cmyk.jpg", "exif.jpg", "plain.jpg", "anim.gif", "gray.png", "palette.png"):
        dets = recs[name]["detections"]
        assert dets and _iou(dets[0]["box"], face[0]["box"]) >= 0.7, (name, dets)
    assert (recs["one.png"]["width"], recs["wide.png"]["width"]) == (1, 10000)
    # outputs of every good image complete, nothing partial, no temporary file
    for name, err in expected.items():
        rel = (folder / name).relative_to(folder) if name != "фото с лицом.png" else Path("sub dir") / name
        js = out / (str(rel) + ".json")
        assert js.is_file() == (err is None), name
        if err is None:
            assert json.loads(js.read_text()) == recs[name]
            assert (out / (str(rel) + ".annotated" + Path(name).suffix)).stat().st_size > 0
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]
    assert len((out / "detections.jsonl").read_text().splitlines()) == len(expected)


def _cli_cmd() -> list[str]:
    return [sys.executable, "-c", "from fcndetect.cli import main; main()"]


def _outputs(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.slow  # a subprocess killed mid-run, then resumed
def test_sigkill_then_resume_equals_uninterrupted(tmp_path, photo_small):
    folder = tmp_path / "in"
    folder.mkdir()
    n = 24
    for k in range(n):
        photo_small.rotate(k * 7).save(folder / f"img{k:02d}.png")
    (folder / "bad.jpg").write_text("nope")
    args = ["run", str(folder), "--min-size", "40", "--format", "csv", "--heatmap", "-q"]
    ref = tmp_path / "ref"
    p = subprocess.run(_cli_cmd() + args + ["-o", str(ref)], capture_output=True, text=True)
    assert p.returncode == 1, p.stderr
    out = tmp_path / "out"
    proc = subprocess.Popen(_cli_cmd() + args + ["-o", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline and len(list(out.glob("img*.json"))) < 3:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = len(list(out.glob("img*.json")))
    assert 3 <= done < n, "the run was not killed mid-way"
    assert not (out / "detections.csv").exists()  # combined files only for a complete run
    # a different setting is refused...
    p = subprocess.run(_cli_cmd() + args[:-1] + ["--threshold", "0.5", "-o", str(out), "--resume"],
                       capture_output=True, text=True)
    assert p.returncode == 2 and "other settings" in p.stderr
    assert "settings.threshold: " in p.stderr and "-> 0.5" in p.stderr  # names the setting and both values
    # ...the same settings finish the run
    p = subprocess.run(_cli_cmd() + args + ["-o", str(out), "--resume"], capture_output=True, text=True)
    assert p.returncode == 1, p.stderr
    assert _outputs(out) == _outputs(ref)


def test_non_empty_output_refused_and_overwrite(tmp_path, samples):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    r = _invoke(["run", samples / "coffee.png", "-o", out])
    assert r.exit_code == 2 and "not empty" in r.stderr
    r = _invoke(["run", samples / "coffee.png", "-o", out, "--overwrite", "-q"])
    assert r.exit_code == 0 and (out / "coffee.png.json").is_file()


def test_batching_and_workers_do_not_change_bytes(tmp_path, photo_small):
    folder = tmp_path / "in"
    folder.mkdir()
    for k in range(5):
        photo_small.rotate(k * 9).save(folder / f"i{k}.png")
    outs = []
    # the same torch threads in both: a thread count changes the summation order of convolutions, so the
    # last printed digit of a logit may change with it (as with the device)
    for extra in (["--batch-size", "1", "--workers", "0", "--threads", "1"],
                  ["--batch-size", "3", "--workers", "2", "--threads", "1"]):
        o = tmp_path / f"o{len(outs)}"
        r = _invoke(["run", folder, "-o", o, "--min-size", "40", "--format", "coco", "-q", *extra])
        assert r.exit_code == 0
        outs.append((r.stdout, _outputs(o)))
    assert outs[0] == outs[1]


def test_coco_output_loads_in_pycocotools(tmp_path, samples):
    coco = pytest.importorskip("pycocotools.coco")
    out = tmp_path / "o"
    r = _invoke(["run", samples, "-o", out, "--format", "coco", "-q"])
    assert r.exit_code == 0
    gt = json.loads((out / "images.json").read_text())
    gt["annotations"] = [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [181, 62, 87, 110], "area": 87 * 110,
                          "iscrowd": 0}]
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    ground = coco.COCO(str(tmp_path / "gt.json"))
    res = ground.loadRes(str(out / "detections.json"))
    assert len(res.getAnnIds()) == 1


def test_format_without_output_goes_to_stdout(samples):
    r = _invoke(["run", samples / "astronaut.png", "--format", "csv", "-q"])
    assert r.exit_code == 0 and r.stdout.splitlines()[0].startswith("image,width,height,label,score,logit,x1,y1,x2,y2,")
    row = r.stdout.splitlines()[1].split(",")
    assert len(row) == 20 and all(row[10:])  # the cascade's last stage is O-Net: its five landmarks


def test_sources_list_stdin_and_dedup(tmp_path, samples):
    lst = tmp_path / "list.txt"
    lst.write_text(f"# my images\n{samples / 'coffee.png'}\n\n{samples / 'chelsea.png'}\n")
    assert read_sources([f"@{lst}"]) == [str(samples / "coffee.png"), str(samples / "chelsea.png")]
    r = _invoke(["run", f"@{lst}", "-", str(samples / "coffee.png"), str(samples), "-q"],
                input=f"{samples / 'chelsea.png'}\n")
    assert r.exit_code == 0
    names = [Path(json.loads(line)["image"]).name for line in r.stdout.splitlines()]
    assert names == ["coffee.png", "chelsea.png", "astronaut.png"]  # each file once


def test_quiet_silences_stderr(samples, tmp_path):
    r = _invoke(["run", samples / "coffee.png", tmp_path / "missing.png", "-q"])
    assert r.exit_code == 1 and r.stderr == ""


def test_output_files_honour_the_umask(tmp_path, samples):
    out = tmp_path / "o"
    old = os.umask(0o027)
    try:
        r = _invoke(["run", samples / "coffee.png", "-o", out, "--format", "csv", "-q"])
    finally:
        os.umask(old)
    assert r.exit_code == 0
    for f in (out / "coffee.png.json", out / "detections.jsonl", out / "run.json", out / "detections.csv",
              out / "coffee.png.annotated.png"):
        assert f.stat().st_mode & 0o777 == 0o640, f


def test_run_json_records_device_and_memory_budget(tmp_path, samples):
    out = tmp_path / "o"
    assert _invoke(["run", samples / "coffee.png", "-o", out, "--max-memory", "64M", "-q"]).exit_code == 0
    settings = json.loads((out / "run.json").read_text())["settings"]
    assert settings["device"] == "cpu" and settings["max_memory_mb"] == 64
    r = _invoke(["run", samples / "coffee.png", "-o", out, "--resume", "--max-memory", "128M"])
    assert r.exit_code == 2 and "settings.max_memory_mb: 64 -> 128" in r.stderr


def test_fail_fast_counts_what_was_processed(tmp_path, samples):
    r = _invoke(["run", samples / "coffee.png", tmp_path / "missing.png", samples / "chelsea.png",
                 samples / "astronaut.png", "--fail-fast"])
    assert r.exit_code == 1
    summary = r.stderr.strip().splitlines()[-1]
    assert summary.startswith("1 image(s)") and "1 failed input(s)" in summary and "2 not processed" in summary
    assert len(r.stdout.splitlines()) == 2


def test_coco_on_stdout_names_each_image(samples):
    r = _invoke(["run", samples / "coffee.png", samples / "astronaut.png", "--format", "coco", "-q"])
    assert r.exit_code == 0
    results = json.loads(r.stdout)
    assert results and all(res["file_name"].endswith("astronaut.png") for res in results)
    assert {res["image_id"] for res in results} == {2}


def test_save_maps_and_heatmap_of_a_cascade_are_its_first_stage(tmp_path, samples):
    out = tmp_path / "o"
    r = _invoke(["run", samples / "astronaut.png", "-o", out, "--save-maps", "--heatmap", "-q"])
    assert r.exit_code == 0, r.output
    index = json.loads((out / "astronaut.png.maps" / "index.json").read_text())
    assert index["model"] == "face-pnet" and "first stage" in index["stage"]
    assert index["geometry"]["window"] == 12 and index["levels"][0]["sx"] == 0.5
    first = np.load(out / "astronaut.png.maps" / index["levels"][0]["file"])
    assert list(first.shape) == index["levels"][0]["shape"] and first.shape == (1, 123, 123)  # (256-12)/2+1
    assert first.max() > 2.0  # logits, not probabilities
    heat = cv2.imread(str(out / "astronaut.png.heatmap.png"))
    assert heat.shape[0] == 512 and heat.shape[1] > 512  # the colour scale beside the image
