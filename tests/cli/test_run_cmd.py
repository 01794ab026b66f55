"""`fcndetect run`: JSON Lines contract, presets and precedence, bad inputs, outputs on disk."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from fcndetect.cli import cli


def _run(args, **kw):
    return CliRunner().invoke(cli, args, catch_exceptions=False, **kw)


def _lines(out: str):
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_run_astronaut_json_line(samples):
    r = CliRunner().invoke(cli, ["run", str(samples / "astronaut.png"), "-q"])
    assert r.exit_code == 0
    (rec,) = _lines(r.stdout)
    assert rec["image"] == str(samples / "astronaut.png")
    assert (rec["width"], rec["height"], rec["error"]) == (512, 512, None)
    assert rec["detections"][0]["label"] == "face" and len(rec["detections"][0]["box"]) == 4


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
    assert r.exit_code == 1 and "no image or video files" in r.stderr


def test_heatmap_output(tmp_path, samples):
    r = CliRunner().invoke(cli, ["run", str(samples / "astronaut.png"), "-o", str(tmp_path), "--heatmap", "-q"])
    assert r.exit_code == 0
    assert (tmp_path / "astronaut.png.heatmap.png").stat().st_size > 0


def test_identical_runs_identical_bytes(samples):
    args = ["run", str(samples), "-q"]
    first, second = CliRunner().invoke(cli, args), CliRunner().invoke(cli, args)
    assert first.exit_code == 0 and second.exit_code == 0, (first.output, second.output)
    records = [json.loads(line) for line in first.stdout.splitlines()]
    assert len(records) == 3 and sum(len(r["detections"]) for r in records) >= 1  # something to compare
    assert first.stdout == second.stdout


def test_summary_line_prints_the_threshold_at_six_digits():
    """A trained preset's threshold (a float64 probability) is printed as 0.973457, not 16 digits."""
    from fcndetect.cli.run import summary_line
    from fcndetect.runner import RunSummary

    s = RunSummary(n_inputs=3, n_images=2, n_failed=1, n_detections=4, seconds=1.25, n_records=3, n_inputs_done=3)
    assert summary_line(s, "tiny", 0.9734567891234567) == (
        "2 image(s), 4 detection(s), 1 failed input(s) in 1.2 s [model tiny, threshold 0.973457]")
    s.n_inputs_done = 2
    assert summary_line(s, "face", 0.97).endswith(", 1 not processed in 1.2 s [model face, threshold 0.97]")


@pytest.mark.parametrize("args,message", [
    (["--anonymize", "blur"], "error: --anonymize needs -o/--output DIR"),
    (["-o", "OUT", "--anonymize-margin", "0.5"], "error: --anonymize-margin needs --anonymize"),
    (["-o", "OUT", "--anonymize", "blur", "--anonymize-margin", "-1"],
     "error: --anonymize-margin must be in [0, 10], got -1"),
    (["--vid-stride", "0"], "error: --vid-stride must be in [1, 1000000], got 0"),
    (["-o", "OUT", "--anonymize", "smudge"], "error: Invalid value for '--anonymize'"),
])
def test_video_and_anonymize_usage_errors(tmp_path, samples, args, message):
    args = [str(tmp_path / "out") if a == "OUT" else a for a in args]
    r = CliRunner().invoke(cli, ["run", str(samples / "coffee.png"), *args])
    assert r.exit_code == 2 and r.stderr.startswith(message) and len(r.stderr.splitlines()) == 1, r.stderr
    assert not (tmp_path / "out").exists()


def test_anonymized_image_beside_the_annotated_one(tmp_path, samples):
    r = CliRunner().invoke(cli, ["run", str(samples / "astronaut.png"), "-o", str(tmp_path / "o"), "--anonymize",
                                 "pixelate", "--anonymize-margin", "0.5", "-q"])
    assert r.exit_code == 0
    assert (tmp_path / "o" / "astronaut.png.anonymized.png").is_file()
    run = json.loads((tmp_path / "o" / "run.json").read_text())
    assert run["outputs"]["anonymize"] == "pixelate" and run["outputs"]["anonymize_margin"] == 0.5
    r = CliRunner().invoke(cli, ["run", str(samples / "astronaut.png"), "-o", str(tmp_path / "o"), "--resume",
                                 "--anonymize", "blur", "--anonymize-margin", "0.5"])
    assert r.exit_code == 2 and 'outputs.anonymize: "pixelate" -> "blur"' in r.stderr
