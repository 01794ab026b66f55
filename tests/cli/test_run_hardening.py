"""`fcndetect run` against what a user can name or set: bounded settings, the run's own files kept, one-line
errors, the output folder's lock, several formats, the default model, and `eval` without matching records."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from fcndetect.cli import cli
from fcndetect.io.outdir import LOCK_NAME, SCRATCH_NAME, OutputLock

LONG = "x" * 246 + ".png"  # 250 bytes


def _run(args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def _one_error_line(stderr: str, *fragments: str) -> str:
    lines = stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    for fragment in fragments:
        assert fragment in lines[0], stderr
    return lines[0]


@pytest.fixture(scope="module")
def small(samples, tmp_path_factory) -> Path:
    """A 96 px copy of the astronaut photo (one face), PNG bytes."""
    path = tmp_path_factory.mktemp("small") / "small.png"
    Image.open(samples / "astronaut.png").convert("RGB").resize((96, 96)).save(path)
    return path


@pytest.mark.parametrize("args, fragment", [
    (["--scale-factor", "0.9999999999"], "scale_factor must be in (0, 0.978572] (at most 32 pyramid levels"),
    (["--rotations", "1e300"], "rotations must be in [-360, 360]"),
    (["--max-det", "0"], "max_det must be in [1, 1000000]"),
    (["--workers", "100000"], "--workers must be in [0, 256]"),
    (["--max-memory", "inf"], "--max-memory: expected a size >= 0"),
])
def test_out_of_bound_settings_are_refused_in_one_line(small, tmp_path, args, fragment):
    r = _run(["run", small, "-o", tmp_path / "out", *args])
    assert r.exit_code == 2
    _one_error_line(r.stderr, fragment)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("text, fragment", [("scale_factor = 0.9999999999", "scale_factor must be in"),
                                            ("rotations = [1e300]", "rotations must be in [-360, 360]"),
                                            ("min_size = nan", "min_size must be in")])
def test_out_of_bound_settings_in_a_file_name_the_file(small, tmp_path, text, fragment):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(text + "\n")
    r = _run(["run", small, "-c", cfg])
    assert r.exit_code == 2
    _one_error_line(r.stderr, f"{cfg}: ", fragment)


def test_inputs_named_like_the_run_files_keep_them_intact_through_resume(small, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    names = ["run", "detections", "images", ".a.tmp", LONG]
    for name in names:
        (folder / name).write_bytes(small.read_bytes())
    inputs = [folder / n for n in names]
    out = tmp_path / "out"
    r = _run(["run", *inputs, "-o", out, "--format", "coco", "csv"])  # csv would be read as an input
    assert r.exit_code == 2
    _one_error_line(r.stderr, "'csv' is a format name", "--format coco,csv")
    r = _run(["run", *inputs, "-o", out, "--format", "coco", "--format", "csv", "-q"])
    assert r.exit_code == 0, r.stderr
    records = [json.loads(line) for line in r.stdout.splitlines()]
    assert [rec["image"] for rec in records] == [str(p) for p in inputs]
    assert all(rec["error"] is None and rec["detections"] for rec in records)

    def state():
        return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}

    first = state()
    info = json.loads(first["run.json"])
    assert info["outputs"]["format"] == "coco,csv" and info["settings"]["model"] == "face"
    assert [json.loads(line) for line in first["detections.jsonl"].splitlines()] == records
    coco_images = json.loads(first["images.json"])["images"]
    assert len(coco_images) == 5 and len(json.loads(first["detections.json"])) >= 5
    assert len(first["detections.csv"].decode().splitlines()) >= 6
    for rec in records:  # every input's record is in its own file, named after it
        matches = [k for k, v in first.items() if k.endswith(".json") and v.decode().strip() == json.dumps(
            rec, ensure_ascii=False, separators=(", ", ": "))]
        assert len(matches) == 1, rec["image"]
    assert {"run~2.json", "detections~2.json", "images~2.json", ".a.tmp.json"} <= set(first)
    assert all(len(k.encode()) < 200 for k in first)
    assert not (out / SCRATCH_NAME).exists() and not (out / LOCK_NAME).exists()
    r = _run(["run", *inputs, "-o", out, "--format", "coco,csv", "--resume", "-q"])
    assert r.exit_code == 0, r.stderr
    assert [json.loads(line) for line in r.stdout.splitlines()] == records
    assert state() == first  # nothing lost, nothing rewritten differently


def test_a_folder_in_use_is_refused_before_the_model_loads(small, tmp_path, monkeypatch):
    import fcndetect.detector

    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(fcndetect.detector.Detector, "__init__", no_model)
    out = tmp_path / "out"
    with OutputLock(out):
        r = _run(["run", small, "-o", out])
        assert r.exit_code == 2
        _one_error_line(r.stderr, f"{out}: output folder in use by process {os.getpid()}")
        assert sorted(p.name for p in out.iterdir()) == [LOCK_NAME]


def test_a_write_error_of_a_combined_file_names_it(small, tmp_path, monkeypatch):
    import errno

    from fcndetect.io import combined

    real = combined._Named.write

    def full_disk(self, text):
        if str(self.target).endswith("detections.csv"):
            self.fh.write = None
            raise combined.named(OSError(errno.ENOSPC, "No space left on device"), self.target)
        return real(self, text)

    monkeypatch.setattr(combined._Named, "write", full_disk)
    r = _run(["run", small, "-o", tmp_path / "out", "--format", "csv", "-q"])
    assert r.exit_code == 2
    _one_error_line(r.stderr, f"cannot write {tmp_path / 'out' / 'detections.csv'}: No space left on device")


def test_names_with_control_characters_stay_on_one_line(small, tmp_path):
    good = tmp_path / "a\nb\x1b.png"
    good.write_bytes(small.read_bytes())
    missing = tmp_path / "gone\r\nx.png"
    r = _run(["run", good, missing, "-o", tmp_path / "out"])
    assert r.exit_code == 1
    lines = [line for line in r.stderr.splitlines() if not line.startswith("progress: ")]
    assert lines[0] == f"error: {tmp_path}/gone\\r\\nx.png: no such file or folder", r.stderr
    assert len(lines) == 2 and lines[1].startswith("1 image(s)"), r.stderr
    assert json.loads((tmp_path / "out" / "a\nb\x1b.png.json").read_text())["image"] == str(good)


def test_formats_repeatable_and_comma_separated(small, tmp_path):
    a = _run(["run", small, "-o", tmp_path / "a", "--format", "coco,csv,fddb", "-q"])
    b = _run(["run", small, "-o", tmp_path / "b", "--format", "fddb", "--format", "csv,coco", "-q"])
    assert a.exit_code == b.exit_code == 0
    for name in ("detections.json", "images.json", "detections.csv", "detections.fddb.txt"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    r = _run(["run", small, "--format", "coco,csv"])
    assert r.exit_code == 2
    _one_error_line(r.stderr, "stdout takes one format")
    r = _run(["run", small, "--format", "yaml"])
    assert r.exit_code == 2
    _one_error_line(r.stderr, "unknown format 'yaml'")


def test_a_settings_file_without_model_keeps_the_default_model(tmp_path):
    cfg = tmp_path / "t.toml"
    cfg.write_text("threshold = 0.95\n")
    default = _run(["run", "--print-config"]).stdout
    r = _run(["run", "--print-config", "-c", cfg])
    assert r.stdout.splitlines()[0] == "# models: face-pnet > face-rnet > face"
    assert r.stdout.replace("threshold = 0.95", "threshold = 0.99") == default
    named = _run(["run", "--print-config", "-c", cfg, "-m", "face"]).stdout
    assert named.splitlines()[0] == "# models: face" and "threshold = 0.95" in named


@pytest.mark.parametrize("weights, fragment", [("{dir}", "is a folder, not a file"),
                                               ("/dev/zero", "is a device, pipe or socket")])
def test_weights_that_are_not_files_say_so(small, tmp_path, weights, fragment):
    path = weights.format(dir=tmp_path)
    r = _run(["run", small, "--model", "mobilenet_v2", "--weights", path])
    assert r.exit_code == 2
    _one_error_line(r.stderr, path, fragment)


def test_eval_of_detections_made_for_other_images(small, tmp_path):
    r = _run(["run", small, "-o", tmp_path / "out", "-q"])
    assert r.exit_code == 0
    gt = tmp_path / "gt.txt"
    gt.write_text("other.jpg 10 10 50 50\nthird.jpg 1 1 30 30\n")
    r = _run(["eval", tmp_path / "out" / "detections.jsonl", "-a", gt])
    assert r.exit_code == 2
    _one_error_line(r.stderr, "none of the 2 annotated images has a detection record", "--allow-missing")
    r = _run(["eval", tmp_path / "out" / "detections.jsonl", "-a", gt, "--allow-missing"])
    assert r.exit_code == 0
    assert "warning: 2 of 2 annotated images have no detection record" in r.stderr
    gt.write_text("small.png 30 20 60 60\nthird.jpg 1 1 30 30\n")
    r = _run(["eval", tmp_path / "out" / "detections.jsonl", "-a", gt])
    assert r.exit_code == 0 and "warning: 1 of 2 annotated images have no detection record" in r.stderr


N_BUSY = 150


@pytest.mark.slow
def test_two_runs_on_one_folder_the_second_is_refused_the_first_completes(samples, tmp_path):
    import subprocess
    import sys
    import time

    folder = tmp_path / "in"
    folder.mkdir()
    for k in range(N_BUSY):  # long enough for the second run to start while the first works
        (folder / f"{k:03d}.png").write_bytes((samples / "astronaut.png").read_bytes())
    out = tmp_path / "out"
    entry = [sys.executable, "-c", "from fcndetect.cli import main; main()", "run", str(folder), "-o", str(out), "-q"]
    first = subprocess.Popen(entry, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not (out / LOCK_NAME).exists():
        assert first.poll() is None and time.time() < deadline
        time.sleep(0.01)
    second = subprocess.run(entry + ["--resume"], check=False, capture_output=True, text=True, timeout=120)
    assert first.wait(timeout=300) == 0, first.stderr.read()
    assert second.returncode == 2
    _one_error_line(second.stderr, f"{out}: output folder in use by process {first.pid}")
    assert len((out / "detections.jsonl").read_text().splitlines()) == N_BUSY
    assert not (out / LOCK_NAME).exists() and not (out / SCRATCH_NAME).exists()
