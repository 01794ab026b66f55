"""Every output option works with every detection setting: --heatmap, --save-maps, --crops and each --format,
across --rotations, a cascade and a single-stage preset, and two batch sizes, on two small images."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from fcndetect.cli import cli

FORMAT_FILES = {"jsonl": [], "coco": ["detections.json", "images.json"], "csv": ["detections.csv"],
                "fddb": ["detections.fddb.txt"], "wider": ["wider/astronaut.txt", "wider/turned.txt"]}
ROTATIONS = [None, "90,180", "0,90"]
PRESETS = ["face-cascade", "face-pnet"]


@pytest.fixture(scope="module")
def images(tmp_path_factory, samples) -> Path:
    """The astronaut scaled down (a face of about 30 px), upright and turned clockwise (upright at angle 90)."""
    root = tmp_path_factory.mktemp("opts")
    face = Image.open(samples / "astronaut.png").convert("RGB").resize((160, 160))
    face.save(root / "astronaut.png")
    face.crop((0, 0, 160, 112)).transpose(Image.Transpose.ROTATE_270).save(root / "turned.png")
    return root


def _run(images: Path, out: Path, preset: str, rotations: str | None, batch: int, fmt: str):
    args = ["run", str(images), "-o", str(out), "-c", preset, "--min-size", "20", "--heatmap", "--save-maps",
            "--crops", "--format", fmt, "--batch-size", str(batch), "-q"]
    if rotations:
        args += ["--rotations", rotations]
    return CliRunner().invoke(cli, args, catch_exceptions=False)


# every format once per (preset, rotations), the batch size alternating: 2 x 3 x 5 = 30 runs
CASES = [(p, r, fmt, 1 + (k % 2)) for p in PRESETS for r in ROTATIONS for k, fmt in enumerate(FORMAT_FILES)]


@pytest.mark.parametrize("preset,rotations,fmt,batch", CASES)
def test_every_output_flag_with_every_setting(images, tmp_path, preset, rotations, fmt, batch):
    out = tmp_path / "out"
    r = _run(images, out, preset, rotations, batch, fmt)
    assert r.exit_code == 0, r.stderr
    assert r.stderr == ""
    angles = [float(a) for a in rotations.split(",")] if rotations else [0.0]
    records = [json.loads(line) for line in (out / "detections.jsonl").read_text().splitlines()]
    assert [Path(rec["image"]).name for rec in records] == ["astronaut.png", "turned.png"]
    for rec in records:
        name = Path(rec["image"]).name
        assert rec["error"] is None
        image = cv2.imread(str(images / name))
        heat = cv2.imread(str(out / f"{name}.heatmap.png"))
        assert heat.shape[0] == image.shape[0] and heat.shape[1] > image.shape[1]
        index = json.loads((out / f"{name}.maps" / "index.json").read_text())
        files = sorted(p.name for p in (out / f"{name}.maps").glob("*.npy"))
        assert files == [level["file"] for level in index["levels"]]
        per_angle = [sum(1 for lv in index["levels"] if lv["angle"] == a) for a in angles]
        assert min(per_angle) >= 1 and sorted({lv["angle"] for lv in index["levels"]}) == sorted(angles)
        assert index["model"] == "face-pnet" and index["image_size"] == [image.shape[1], image.shape[0]]
        for level in index["levels"]:
            assert list(np.load(out / f"{name}.maps" / level["file"]).shape) == level["shape"]
        crops = sorted((out / f"{name}.crops").glob("*.png")) if (out / f"{name}.crops").exists() else []
        assert len(crops) == len(rec["detections"])
        assert ("angle" in rec["detections"][0]) == bool(rotations) if rec["detections"] else True
    assert any(rec["detections"] for rec in records)  # the face is found: crops are checked for real
    for rel in FORMAT_FILES[fmt]:
        assert (out / rel).is_file(), rel


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("rotations", ROTATIONS[1:])
def test_results_do_not_depend_on_the_batch_size(images, tmp_path, preset, rotations):
    outs = []
    for batch in (1, 2):
        out = tmp_path / f"b{batch}"
        assert _run(images, out, preset, rotations, batch, "jsonl").exit_code == 0
        outs.append({p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*"))
                     if p.is_file() and p.name != "run.json"})
    assert outs[0] == outs[1]
