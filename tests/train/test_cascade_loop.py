"""``fcndetect train --recipe``: a two-stage recipe (P-Net > R-Net) on a handful of photos trains in seconds;
its preset works from any folder; seeds repeat byte for byte; an interrupted run resumes to the same bytes;
bad recipes are one line each."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from fcndetect.train import TrainError
from fcndetect.train import cascade_loop
from fcndetect.train.cascade_loop import train_recipe
from fcndetect.train.recipe import read_recipe

FACE = (181, 62, 268, 172)  # the astronaut's face, x1 y1 x2 y2


@pytest.fixture(scope="module")
def recipe_file(tmp_path_factory, samples: Path) -> Path:
    root = tmp_path_factory.mktemp("recipe")
    astro = np.asarray(Image.open(samples / "astronaut.png").convert("RGB"))
    x1, y1, x2, y2 = FACE
    lines = []
    variants = {"a.png": (astro, FACE), "b.png": (astro[:, ::-1], (512 - x2, y1, 512 - x1, y2))}
    small = np.asarray(Image.fromarray(astro).resize((320, 320)))
    variants["c.png"] = (small, tuple(v * 320 / 512 for v in FACE))
    variants["d.png"] = (small[:, ::-1], (320 - x2 * 0.625, y1 * 0.625, 320 - x1 * 0.625, y2 * 0.625))
    for name, (img, box) in variants.items():
        Image.fromarray(np.ascontiguousarray(img)).save(root / name)
        lines += [name, "1", f"{box[0]} {box[1]} {box[2] - box[0]} {box[3] - box[1]} 0 0 0 0 0 0 "]
    (root / "gt.txt").write_text("\n".join(lines) + "\n")
    (root / "scenes").mkdir()
    for name in ("chelsea.png", "coffee.png"):
        shutil.copy(samples / name, root / "scenes" / name)
    (root / "tiny.toml").write_text(f"""
seed = 3
[data]
annotations = ["{root / 'gt.txt'}"]
negatives = ["{root / 'scenes'}"]
val_fraction = 0.25
[detector]
stage_thresholds = [0.4]
min_size = 40
[[stages]]
name = "p"
net = "pnet"
epochs = 2
batch_size = 64
positives_per_face = 4
negatives_per_photo = 10
mined_per_photo = 10
scene_negatives_per_photo = 10
[[stages]]
name = "r"
net = "rnet"
epochs = 2
batch_size = 64
positives_per_face = 4
negatives_per_photo = 10
mined_per_photo = 10
scene_negatives_per_photo = 10
""")
    return root / "tiny.toml"


@pytest.fixture(scope="module")
def trained(recipe_file: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run") / "out"
    train_recipe(read_recipe(recipe_file), out, progress=False)
    return out


def test_outputs_metrics_and_preset(trained: Path, samples: Path, tmp_path: Path, monkeypatch) -> None:
    for name in ("p.pt", "r.pt"):
        state = torch.load(trained / name, weights_only=True)
        assert all(isinstance(v, torch.Tensor) for v in state.values())
    rows = [json.loads(line) for line in (trained / "metrics.jsonl").read_text().splitlines()]
    epochs = [(r["stage"], r["epoch"]) for r in rows if "epoch" in r]
    assert epochs == [("p", 1), ("p", 2), ("r", 1), ("r", 2)]
    assert all("val_recall" in r and "val_negatives_passed" in r for r in rows if "epoch" in r)
    assert rows[-1]["final"] and set(rows[-1]["stage_seconds"]) == {"p", "r"}
    assert len((trained / "validation.txt").read_text().split()) == 1
    assert not (trained / "checkpoint.pt").exists()
    # the preset, used from another folder: the cascade of the trained stages, found relative to the preset
    monkeypatch.chdir(tmp_path)
    from fcndetect import Detector

    det = Detector(str(trained / "preset.toml"), threshold=0.05)
    assert [m.spec.name for m in det.stage_models] == [str(trained / "p.pt")]
    assert det.model.spec.name == str(trained / "r.pt")
    found = det(str(samples / "astronaut.png"))
    assert len(found.boxes) >= 1


def test_seeded_runs_repeat_and_resume_gives_the_same_bytes(recipe_file: Path, trained: Path, tmp_path: Path,
                                                             monkeypatch) -> None:
    recipe = read_recipe(recipe_file)
    out = tmp_path / "out"
    calls = {"n": 0}
    real = cascade_loop._val_metrics

    def interrupt_at_stage_r_epoch_2(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:  # p epochs 1, 2; r epoch 1; then Ctrl-C during r's second epoch
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(cascade_loop, "_val_metrics", interrupt_at_stage_r_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        train_recipe(recipe, out, progress=False)
    assert torch.load(out / "checkpoint.pt", weights_only=True)["epoch"] == 1
    monkeypatch.setattr(cascade_loop, "_val_metrics", real)
    with pytest.raises(TrainError, match="not empty"):
        train_recipe(recipe, out, progress=False)
    train_recipe(recipe, out, resume=True, progress=False)
    for name in ("p.pt", "r.pt"):
        assert (out / name).read_bytes() == (trained / name).read_bytes()


def test_resume_refuses_another_recipe(recipe_file: Path, trained: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.toml"
    other.write_text(recipe_file.read_text().replace("seed = 3", "seed = 4"))
    with pytest.raises(TrainError, match="another recipe"):
        train_recipe(read_recipe(other), trained, resume=True, progress=False)


@pytest.mark.parametrize("text, message", [
    ("[data]\nannotations = []\n[[stages]]\nname='p'\nnet='pnet'\n", "at least one annotation"),
    ("[data]\nannotations = ['x']\n", "at least one \\[\\[stages\\]\\]"),
    ("[data]\nannotations = ['x']\n[[stages]]\nname='p'\nnet='vgg'\n", "net 'vgg'"),
    ("[data]\nannotations = ['x']\n[[stages]]\nname='p'\nnet='pnet'\ninput_size=24\n", "12 px"),
    ("[data]\nannotations = ['x']\n[[stages]]\nname='p'\nnet='pnet'\nepoch=2\n", "unknown key"),
    ("[data]\nannotations = ['x']\n[detector]\nstage_thresholds=[0.4]\n[[stages]]\nname='p'\nnet='pnet'\n",
     "one value per stage"),
    ("[data]\nannotations = ['x']\n[detector]\nthreshold='high'\n[[stages]]\nname='p'\nnet='pnet'\n", "threshold"),
])
def test_bad_recipes_are_one_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "r.toml"
    path.write_text(text)
    with pytest.raises(TrainError, match=message) as info:
        read_recipe(path)
    assert "\n" not in str(info.value)


def test_cli_reports_a_bad_recipe_in_one_line(tmp_path: Path) -> None:
    from fcndetect.cli import cli

    result = CliRunner().invoke(cli, ["train", "--recipe", str(tmp_path / "missing.toml"), "-o", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "recipe not found" in result.output and "Traceback" not in result.output
    result = CliRunner().invoke(cli, ["train", "-o", str(tmp_path / "o")])
    assert result.exit_code == 2 and "Missing option '--positives'" in result.output


@pytest.mark.parametrize("net, size", [("rnet", 24), ("onet", 48)])
def test_calibration_raises_recall_to_the_target_and_keeps_the_ranking(net: str, size: int) -> None:
    from fcndetect.models.mtcnn import load_mtcnn
    from fcndetect.train.augment import to_float
    from fcndetect.train.cascade_loop import calibrate_bias
    from fcndetect.train.windows import StageWindows

    gen = torch.Generator().manual_seed(0)
    windows = torch.randint(0, 256, (200, size, size, 3), dtype=torch.uint8, generator=gen)
    val = StageWindows(windows, torch.ones(200, dtype=torch.long), torch.zeros(200, 4))
    model = load_mtcnn(net)

    def logits() -> torch.Tensor:
        with torch.no_grad():
            lg = model.heads((to_float(windows) - 127.5) / 128)[0]
        return lg[:, 1] - lg[:, 0]

    before = logits()
    shift = calibrate_bias(model, net, val, 0.5, 0.9)
    after = logits()
    assert shift > 0 and int((after > 0).sum()) >= 180
    torch.testing.assert_close(after - before, torch.full_like(before, shift), atol=1e-4, rtol=0)
    assert calibrate_bias(model, net, val, 0.5, 0.5) == 0.0  # already above the target: unchanged
