"""`fcndetect train` end to end on a small synthetic task (bright discs against noise): outputs, a preset that
works from any folder, byte-repeatable seeds, resume after an interrupt, and the output-folder rules."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from fcndetect.train import TrainError, TrainOptions, choose_threshold, train


def _disc(rng: np.random.Generator, size: int, gray: bool) -> np.ndarray:
    img = rng.integers(0, 90, (size, size, 3), dtype=np.uint8)
    yy, xx = np.mgrid[:size, :size]
    c = size / 2 + rng.uniform(-1, 1, 2)
    img[(yy - c[0]) ** 2 + (xx - c[1]) ** 2 < (size * 0.35) ** 2] = 230
    return img[..., 0] if gray else img


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("synthetic")
    rng = np.random.default_rng(0)
    for name, gray in (("pos", False), ("pos_gray", True)):
        (root / name).mkdir()
        for k in range(40):
            Image.fromarray(_disc(rng, 20, gray)).save(root / name / f"{k:02d}.png")
    (root / "neg").mkdir()
    for k in range(4):
        Image.fromarray(rng.integers(0, 120, (48, 64, 3), dtype=np.uint8)).save(root / "neg" / f"{k}.png")
    scene = rng.integers(0, 90, (64, 96, 3), dtype=np.uint8)
    scene[20:40, 50:70] = _disc(rng, 20, False)
    Image.fromarray(scene).save(root / "scene.png")
    return {"pos": root / "pos", "pos_gray": root / "pos_gray", "neg": root / "neg", "scene": root / "scene.png"}


def _opts(data: dict[str, Path], out: Path, **kw) -> TrainOptions:
    base = dict(positives=[str(data["pos"])], negatives=[str(data["neg"])], output=str(out), input_size=18,
                epochs=2, batch_size=32, hard_negative_rounds=1, negatives_per_image=20, mined_per_image=5,
                label="blob", seed=7)
    return TrainOptions(**{**base, **kw})


@pytest.fixture(scope="module")
def baseline(data, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run") / "out"
    train(_opts(data, out), progress=False)
    return out


def test_outputs_and_preset_work_from_any_folder(baseline: Path, data, tmp_path, monkeypatch) -> None:
    state = torch.load(baseline / "model.pt", weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    preset = tomllib.loads((baseline / "preset.toml").read_text())
    assert preset["model"] == "tiny" and preset["weights"] == "model.pt" and preset["input_size"] == 18
    assert preset["classes"] == ["background", "blob"] and preset["grayscale"] is False
    assert 0.5 <= preset["threshold"] < 1.0
    rows = [json.loads(line) for line in (baseline / "metrics.jsonl").read_text().splitlines()]
    assert [(r["round"], r["epoch"]) for r in rows[:-1]] == [(1, 1), (1, 2), (2, 1), (2, 2)]
    assert {"loss", "accuracy", "val_precision", "val_recall"} <= set(rows[0]) and "mined" in rows[1]
    assert rows[-1]["final"] and rows[-1]["threshold"] == preset["threshold"]
    monkeypatch.chdir(tmp_path)  # the preset's weights path is relative to the preset, not to the cwd
    from fcndetect import Detector

    det = Detector(str(baseline / "preset.toml"), threshold=0.5)
    found = det(str(data["scene"]))
    assert len(found) >= 1 and set(found.label_names) == {"blob"}
    best = found.boxes[int(np.argmax(found.logits))]
    assert abs((best[0] + best[2]) / 2 - 60) < 8 and abs((best[1] + best[3]) / 2 - 30) < 8  # the disc's centre


def test_seed_repeats_to_the_byte(baseline: Path, data, tmp_path) -> None:
    train(_opts(data, tmp_path / "again"), progress=False)
    assert (tmp_path / "again" / "model.pt").read_bytes() == (baseline / "model.pt").read_bytes()
    train(_opts(data, tmp_path / "other", seed=8), progress=False)
    assert (tmp_path / "other" / "model.pt").read_bytes() != (baseline / "model.pt").read_bytes()


def test_resume_after_interrupt_equals_the_uninterrupted_run(baseline: Path, data, tmp_path) -> None:
    out = tmp_path / "cut"

    def stop(row: dict) -> None:
        if row["done"] == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(_opts(data, out), progress=False, on_epoch=stop)
    assert not (out / "preset.toml").exists() and (out / "checkpoint.pt").is_file()
    assert not list(out.glob("*.tmp"))
    with pytest.raises(TrainError, match="not empty"):
        train(_opts(data, out), progress=False)
    with pytest.raises(TrainError, match="other settings.*epochs"):
        train(_opts(data, out, epochs=3), resume=True, progress=False)
    result = train(_opts(data, out), resume=True, progress=False)
    assert result.resumed_from == 3
    assert (out / "model.pt").read_bytes() == (baseline / "model.pt").read_bytes()
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["done"] for r in rows] == [1, 2, 3, 4, 4]


def test_overwrite_and_grayscale_default(data, tmp_path) -> None:
    out = tmp_path / "g"
    out.mkdir()
    (out / "model.pt").write_text("old")
    train(_opts(data, out, positives=[str(data["pos_gray"])], epochs=1, hard_negative_rounds=0), overwrite=True,
          progress=False)
    assert tomllib.loads((out / "preset.toml").read_text())["grayscale"] is True


@pytest.mark.parametrize("allowed_fp, n_scenes, expected", [(0.1, 10, 2.0), (0.0, 10, 3.0), (1.0, 2, 1.0), (1.0, 10, 0.0)])
def test_choose_threshold_against_counting(allowed_fp: float, n_scenes: int, expected: float) -> None:
    scene = torch.tensor([3.0, 2.0, 1.0, -1.0])
    t = choose_threshold(torch.tensor([5.0, 4.0]), scene, n_scenes, target_fp=allowed_fp)
    assert t == pytest.approx(expected, abs=1e-5)
    assert int((scene >= t).sum()) <= allowed_fp * n_scenes  # plain counting: at most the allowed detections


def _cli(args: list[str]):
    from fcndetect.cli import cli

    return CliRunner().invoke(cli, ["train", *args])


@pytest.mark.parametrize("case, message", [
    ("arch", "--arch nosuchnet: unknown architecture"),
    ("empty", "positives: folder contains no image files"),
    ("negatives", "give --negatives"),
    ("small", "smaller than the 34 px input size"),
    ("annotations", "positives:"),
])
def test_cli_bad_input_is_one_line_before_training(case: str, message: str, data, tmp_path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    args = ["-p", str(data["pos"]), "-n", str(data["neg"]), "-o", str(tmp_path / "out"), "--input-size", "18"]
    if case == "arch":
        args += ["--arch", "nosuchnet"]
    elif case == "empty":
        args[1] = str(empty)
    elif case == "negatives":
        args = args[:2] + args[4:]
    elif case == "small":
        args = args[:-2]  # 20 px crops against tiny's default 34 px input
    else:
        (tmp_path / "gt.xml").write_text("<dataset><images><image file='x.png'><box top='1'")
        args[1] = str(tmp_path / "gt.xml")
    r = _cli(args)
    assert r.exit_code == 2, r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in r.output
    assert not (tmp_path / "out").exists()  # nothing written


def test_cli_interrupt_exits_130(monkeypatch, data, tmp_path) -> None:
    import fcndetect.train as t

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(t, "train", boom)
    r = _cli(["-p", str(data["pos"]), "-n", str(data["neg"]), "-o", str(tmp_path / "o")])
    assert r.exit_code == 130 and "--resume" in r.output


def _wait_for_rows(path: Path, more_than: int, proc, timeout: float = 60.0) -> int:
    import time

    end = time.monotonic() + timeout
    while time.monotonic() < end and proc.poll() is None:
        if path.is_file():
            n = len(path.read_text().splitlines())
            if n > more_than:
                return n
        time.sleep(0.05)
    raise AssertionError(f"no new metrics row in {path} (exit code {proc.poll()})")


@pytest.mark.slow  # a training subprocess interrupted, then resumed
def test_sigint_exits_130_with_the_last_epoch_saved_and_resume_continues(data, tmp_path) -> None:
    import signal
    import subprocess
    import sys

    out = tmp_path / "sig"
    cmd = [sys.executable, "-c", "from fcndetect.cli import main; main()", "train", "-p", str(data["pos"]),
           "-n", str(data["neg"]), "-o", str(out), "--input-size", "18", "--epochs", "5000",
           "--hard-negative-rounds", "0", "--batch-size", "64"]
    for resume in (False, True):
        proc = subprocess.Popen(cmd + (["--resume"] if resume else []), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        before = len((out / "metrics.jsonl").read_text().splitlines()) if resume else 0
        _wait_for_rows(out / "metrics.jsonl", before, proc)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
        assert proc.returncode == 130, stderr
        assert "--resume" in stderr.strip().splitlines()[-1] and "Traceback" not in stderr and stdout == ""
        assert not (out / "preset.toml").exists() and not list(out.glob("*.tmp"))
        state = torch.load(out / "checkpoint.pt", weights_only=True)
        rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
        assert rows[-1]["done"] == int(state["done"]) > before


def test_positives_from_annotations(data, tmp_path) -> None:
    rng = np.random.default_rng(5)
    lines = []
    for k in range(6):
        scene = rng.integers(0, 90, (60, 80, 3), dtype=np.uint8)
        x, y = 10 + 8 * k, 15
        scene[y:y + 24, x:x + 24] = _disc(rng, 24, False)
        Image.fromarray(scene).save(tmp_path / f"s{k}.png")
        lines.append(f"s{k}.png {x} {y} {x + 24} {y + 24}")
    (tmp_path / "gt.txt").write_text("\n".join(lines) + "\n")
    result = train(_opts(data, tmp_path / "out", positives=[str(tmp_path / "gt.txt")], epochs=1,
                         hard_negative_rounds=0), progress=False)
    rows = [json.loads(line) for line in (tmp_path / "out" / "metrics.jsonl").read_text().splitlines()]
    # 6 objects x 8 jittered windows, minus the held-out tenth and the windows that fell below IoU 0.5
    assert 20 <= rows[0]["train_positives"] <= 48 and result.epochs_done == 1
