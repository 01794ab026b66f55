"""The command line: JSON Lines contract, presets and precedence, bad inputs, outputs on disk."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from fcndetect import __version__
from fcndetect.cli import cli


def _run(args, **kw):
    return CliRunner().invoke(cli, args, catch_exceptions=False, **kw)


def _lines(out: str):
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_version():
    r = _run(["--version"])
    assert r.exit_code == 0 and __version__ in r.output


def test_run_astronaut_json_line(samples):
    r = CliRunner().invoke(cli, ["run", str(samples / "astronaut.png"), "-q"])
    assert r.exit_code == 0
    (rec,) = _lines(r.stdout)
    assert rec["image"] == str(samples / "astronaut.png")
    assert (rec["width"], rec["height"], rec["error"]) == (512, 512, None)
    assert rec["detections"][0]["label"] == "face" and len(rec["detections"][0]["box"]) == 4


def test_models_lists_window_and_stride():
    r = _run(["models"])
    assert r.exit_code == 0
    rows = {line.split()[0]: line.split() for line in r.output.splitlines()[1:] if line.strip()}
    assert rows["face"][1:3] == ["48", "8"] and rows["face-rnet"][1:3] == ["24", "4"]
    assert rows["mobilenet_v2"][1] == "224" and rows["inception_v3"][1] == "299"
    assert "vit_b_16" in r.output.splitlines()[-1]
    assert rows["face-pnet"][1:3] == ["12", "2"]
    assert "* face-cascade: face-pnet > face-rnet > face, thresholds [0.4, 0.4, 0.99]" in r.output


def test_print_config_precedence(tmp_path):
    cfg = tmp_path / "my.toml"
    cfg.write_text('threshold = 0.5\nmin_size = 40\n')
    r = _run(["run", "--print-config", "--config", str(cfg), "--min-size", "30"])
    assert r.exit_code == 0
    assert "threshold = 0.5" in r.output and "min_size = 30.0" in r.output
    # the printed settings are a valid config file
    out = tmp_path / "eff.toml"
    out.write_text(r.output)
    assert _run(["run", "--print-config", "--config", str(out)]).output == r.output


def test_each_model_gets_its_own_preset():
    face = _run(["run", "--print-config"]).output
    rnet = _run(["run", "--print-config", "--model", "face-rnet"]).output
    assert 'model = "face"' in face and 'model = "face-rnet"' in rnet
    from fcndetect.config import load_preset

    assert f"threshold = {load_preset('face-rnet')['threshold']}" in rnet


@pytest.mark.parametrize(
    "args, message",
    [
        (["run", "x.jpg", "--config", "nope"], "unknown preset"),
        (["run", "x.jpg", "--threshold", "2"], "threshold"),
        (["run", "x.jpg", "--model", "nope"], "unknown model"),
        (["run", "x.jpg", "--heatmap"], "--heatmap needs"),
        (["run"], "no SOURCES"),
    ],
)
def test_usage_errors_exit_2(args, message):
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 2 and message in r.output


def _bad_inputs(folder: Path, samples: Path) -> dict[str, str]:
    """Good images mixed with broken ones; returns name -> expected error fragment (None = good)."""
    folder.mkdir()
    shutil.copy(samples / "astronaut.png", folder / "good.png")
    data = (samples / "coffee.png").read_bytes()
    (folder / "truncated.png").write_bytes(data[: len(data) // 3])
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "text.jpg").write_text("this is not an image\n")
    (folder / "notes.xml").write_text("<x/>")  # not an image extension: skipped silently
    return {"good.png": None, "truncated.png": "corrupt or truncated", "empty.jpg": "empty file",
            "text.jpg": "not a recognised image"}


def test_bad_inputs_do_not_stop_the_run(tmp_path, samples):
    folder = tmp_path / "in"
    expected = _bad_inputs(folder, samples)
    out = tmp_path / "out"
    r = CliRunner().invoke(cli, ["run", str(folder), str(tmp_path / "missing.jpg"), "-o", str(out)])
    assert r.exit_code == 1
    recs = {Path(rec["image"]).name: rec for rec in _lines(r.stdout)}
    assert set(recs) == set(expected) | {"missing.jpg"}
    for name, err in expected.items():
        rec = recs[name]
        assert rec["image"] == str(folder / name)  # a usable path, not a bare basename
        if err is None:
            assert rec["error"] is None and rec["detections"]
        else:
            assert err in rec["error"]
            assert f"{folder / name}: " in r.stderr  # one line naming the file
    assert "no such file" in recs["missing.jpg"]["error"]
    assert "Traceback" not in r.stderr
    # outputs: the good image complete, nothing for the bad ones, no temporary files
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert files == ["detections.jsonl", "good.png.annotated.png", "good.png.json", "run.json"]
    assert json.loads((out / "good.png.json").read_text()) == recs["good.png"]
    assert len((out / "detections.jsonl").read_text().splitlines()) == len(recs)


def test_empty_folder_is_an_error(tmp_path):
    (tmp_path / "empty").mkdir()
    r = CliRunner().invoke(cli, ["run", str(tmp_path / "empty")])
    assert r.exit_code == 1 and "no image files" in r.stderr


def test_heatmap_output(tmp_path, samples):
    r = CliRunner().invoke(cli, ["run", str(samples / "astronaut.png"), "-o", str(tmp_path), "--heatmap", "-q"])
    assert r.exit_code == 0
    assert (tmp_path / "astronaut.png.heatmap.png").stat().st_size > 0


def test_identical_runs_identical_bytes(samples):
    args = ["run", str(samples), "-q"]
    assert CliRunner().invoke(cli, args).stdout == CliRunner().invoke(cli, args).stdout


def test_console_script_entry_point(samples):
    exe = shutil.which("fcndetect") or os.path.join(os.path.dirname(sys.executable), "fcndetect")
    if not os.path.exists(exe):
        pytest.skip("console script not installed")
    p = subprocess.run([exe, "run", str(samples / "does-not-exist.png")], capture_output=True, text=True)
    assert p.returncode == 1
    assert p.stderr.strip().splitlines()[0] == f"error: {samples / 'does-not-exist.png'}: no such file or folder"
    assert "Traceback" not in p.stderr


def test_help_and_evaluate_import_do_not_load_torch():
    """`fcndetect --help` and `import fcndetect.evaluate` stay fast: torch is never imported."""
    import subprocess
    import sys

    code = ("import sys\nfrom click.testing import CliRunner\nfrom fcndetect.cli import cli\n"
            "for args in (['--help'], ['run', '--help'], ['eval', '--help'], ['bench', '--help']):\n"
            "    assert CliRunner().invoke(cli, args).exit_code == 0\n"
            "import fcndetect, fcndetect.evaluate, fcndetect.config, fcndetect.detections\n"
            "print('torch' in sys.modules)\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "False"
