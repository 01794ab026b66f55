"""Every error a user must act on is exactly one stderr line starting `error: `, with exit 2 (usage,
settings) or 1 (inputs failed), in every command; never click's three-line usage block, never a traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest
from click.testing import CliRunner

from fcndetect.cli import cli

ENTRY = [sys.executable, "-c", "from fcndetect.cli import main; main()"]


def _one_error_line(stderr: str, fragment: str) -> None:
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ") and fragment in lines[0], stderr
    assert "Usage:" not in stderr and "Traceback" not in stderr


@pytest.fixture()
def files(tmp_path, samples):
    """Paths for the bad inputs below: a malformed annotation file, a detections file, an existing file."""
    bad_txt = tmp_path / "bad.txt"
    bad_txt.write_text("astronaut.png 1 2 3 4\nastronaut.png 1 two 3 4\n")
    bad_jsonl = tmp_path / "dets.jsonl"
    bad_jsonl.write_text('{"image": "a.png", "detections": [{"box": [1, 2]}]}\n')
    gt = tmp_path / "gt.txt"
    gt.write_text("astronaut.png 181 62 268 172\n")
    existing = tmp_path / "exists.pt"
    existing.write_bytes(b"keep me")
    empty = tmp_path / "empty"
    empty.mkdir()
    return {"bad_txt": str(bad_txt), "bad_jsonl": str(bad_jsonl), "gt": str(gt), "existing": str(existing),
            "empty": str(empty), "out": str(tmp_path / "out"), "image": str(samples / "astronaut.png"),
            "missing": str(tmp_path / "missing.png")}


USAGE_ERRORS = [
    # run: settings
    (["run", "{image}", "--min-size", "1"], "the smallest min_size is"),
    (["run", "{image}", "--threshold", "2"], "threshold must be in [0, 1]"),
    (["run", "{image}", "--config", "nosuch"], "unknown preset 'nosuch'"),
    (["run", "{image}", "--model", "nope"], "unknown model"),
    (["run", "{image}", "--heatmap"], "--heatmap needs -o/--output DIR"),
    (["run", "{image}", "-o", "{out}", "--resume", "--overwrite"], "exclude each other"),
    (["run", "{image}", "--max-memory", "lots"], "--max-memory: expected a size"),
    (["run", "{image}", "--batch-size", "0"], "--batch-size must be in [1, 4096], got 0"),
    (["run", "{image}", "--engine", "ray", "--actors", "3-1"], "--actors"),
    (["run", "{image}", "-t", "x"], "'x' is not a valid float"),
    (["run", "{image}", "--nms", "median"], "'median' is not one of"),
    (["run", "{image}", "--thresold", "0.5"], "No such option"),
    (["run"], "no SOURCES given"),
    (["run", "{image}", "-o", "{existing}/out"], "exists.pt/out: cannot use as the output folder (Not a directory"),
    (["run", "{image}", "-o", "{existing}"], "is a file"),
    # eval
    (["eval", "-a", "missing.xml", "{image}"], "missing.xml"),
    (["eval", "-a", "{bad_txt}", "{image}"], "bad.txt:2"),
    (["eval", "-a", "{gt}", "{bad_jsonl}"], "dets.jsonl"),
    (["eval", "{image}"], "Missing option '-a' / '--annotations'"),
    (["eval", "-a", "{gt}"], "Missing argument 'INPUTS...'"),
    # bench
    (["bench", "{image}", "--scales", "1,x"], "--scales"),
    (["bench", "{image}", "--model", "nope"], "nope"),
    (["bench", "{image}", "--config", "face-cascade"], "cascade of several networks"),
    (["bench"], "Missing argument 'IMAGE'"),
    # models, inspect, export, train
    (["models", "--geometri"], "No such option"),
    (["inspect"], "give a MODEL"),
    (["inspect", "face", "--image-size", "big"], "--image-size must be WxH"),
    (["inspect", "nope"], "nope"),
    (["export", "face", "--format", "onnx"], "Missing option '-o' / '--output'"),
    (["export", "face-cascade", "--format", "torchscript", "-o", "{out}"], "unknown model"),
    (["export", "--config", "face-cascade", "--format", "torchscript", "-o", "{out}"], "cascade"),
    (["export", "face-pnet", "--format", "torchscript", "-o", "{existing}"], "give --overwrite"),
    (["train", "-o", "{out}"], "Missing option '--positives'"),
    (["train", "-p", "{empty}", "-o", "{out}", "--epochs", "1"], "empty"),
    (["nosuchcommand"], "No such command"),
]


@pytest.mark.parametrize("args, fragment", USAGE_ERRORS, ids=[" ".join(a[:3]) for a, _ in USAGE_ERRORS])
def test_usage_and_settings_errors_are_one_line_exit_2(files, args, fragment):
    r = CliRunner().invoke(cli, [a.format(**files) for a in args])
    assert r.exit_code == 2, (r.exit_code, r.stderr, r.exception)
    _one_error_line(r.stderr, fragment)
    assert r.stdout == ""


INPUT_ERRORS = [
    (["run", "{missing}"], "{missing}: no such file or folder"),
    (["eval", "-a", "{gt}", "{missing}"], "{missing}: no such file or folder"),
    (["bench", "{missing}"], "{missing}"),
]


@pytest.mark.parametrize("args, fragment", INPUT_ERRORS, ids=[a[0] for a, _ in INPUT_ERRORS])
def test_input_errors_are_one_line_exit_1(files, args, fragment):
    """A failed input: one `error:` line naming it (besides run's and eval's summaries), exit 1."""
    r = CliRunner().invoke(cli, [a.format(**files) for a in args])
    assert r.exit_code == 1, (r.exit_code, r.stderr, r.exception)
    errors = [line for line in r.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [errors[0]] and fragment.format(**files) in errors[0], r.stderr
    assert "Traceback" not in r.stderr and "Usage:" not in r.stderr


def test_export_overwrite_replaces_an_existing_file(files):
    r = CliRunner().invoke(cli, ["export", "face-pnet", "--format", "torchscript", "-o", files["existing"]])
    assert r.exit_code == 2
    with open(files["existing"], "rb") as f:
        assert f.read() == b"keep me"  # refused: untouched
    r = CliRunner().invoke(cli, ["export", "face-pnet", "--format", "torchscript", "-o", files["existing"],
                                 "--overwrite"])
    assert r.exit_code == 0, r.stderr
    with open(files["existing"], "rb") as f:
        assert f.read() != b"keep me"


@pytest.mark.parametrize("args", [["run", "--min-size", "1"], ["run", "--threshold", "2"],
                                  ["run", "--config", "nosuch"], ["eval", "-a", "missing.xml"]])
@pytest.mark.slow  # the console script in a subprocess
def test_the_console_entry_point_prints_one_line(args, samples):
    """The issue's cases, through the console entry point: exit 2, exactly one stderr line."""
    p = subprocess.run([*ENTRY, *args, str(samples / "astronaut.png")], capture_output=True, text=True)
    assert p.returncode == 2, p.stderr
    _one_error_line(p.stderr, "")
