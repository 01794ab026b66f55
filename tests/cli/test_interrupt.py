"""Ctrl-C (SIGINT) at any moment, start-up included: exit 130, one line, no traceback, no partial file."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from fcndetect.cli import cli

pytestmark = pytest.mark.slow  # subprocesses interrupted seconds into their run

ENTRY = [sys.executable, "-c", "from fcndetect.cli import main; main()"]


def _console_script() -> str | None:
    exe = shutil.which("fcndetect") or os.path.join(os.path.dirname(sys.executable), "fcndetect")
    return exe if os.path.exists(exe) else None


@pytest.fixture(scope="module")
def folder(tmp_path_factory, samples) -> Path:
    """Enough photos that a run is still busy 2.5 s after it starts on a quiet machine too (6 distinct ones,
    hard-linked 150 times: no disk cost)."""
    path = tmp_path_factory.mktemp("sigint") / "in"
    path.mkdir()
    photo = Image.open(samples / "astronaut.png").convert("RGB")
    for k in range(6):
        photo.rotate(10 * k).save(path / f"{k:02d}.png")
    for k in range(6, 150):
        os.link(path / f"{k % 6:02d}.png", path / f"{k:03d}.png")
    return path


def _interrupt(cmd: list[str], delay: float) -> subprocess.CompletedProcess:
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr)


def _check_interrupted(p: subprocess.CompletedProcess) -> None:
    """Exit 130 and at most one stderr line besides progress, an ``interrupted`` one; or, where the run
    finished first on a fast machine, exit 0. Never a traceback, never click's ``Aborted!``."""
    assert "Traceback" not in p.stderr and "Aborted" not in p.stderr, p.stderr
    lines = [line for line in p.stderr.splitlines() if line.strip() and not line.startswith("progress: ")]
    if p.returncode == 0:  # every image was done before the signal came: the run's summary line
        assert len(lines) == 1 and "image(s)" in lines[0], p.stderr
        return
    assert p.returncode == 130, (p.returncode, p.stderr)
    assert len(lines) == 1 and lines[0].startswith("interrupted"), p.stderr
    assert all(json.loads(line)["error"] is None for line in p.stdout.splitlines())


@pytest.mark.parametrize("delay", [0.3, 2.5])
def test_sigint_during_start_up_or_run(folder, delay):
    """0.3 s is usually while torch is imported, 2.5 s while the model loads or the first images run."""
    _check_interrupted(_interrupt([*ENTRY, "run", str(folder)], delay))


@pytest.mark.parametrize("delay", [0.3, 2.5])
def test_sigint_console_script(folder, delay):
    exe = _console_script()
    if exe is None:
        pytest.skip("console script not installed")
    _check_interrupted(_interrupt([exe, "run", str(folder)], delay))


def test_sigint_during_a_run_with_output(tmp_path, samples):
    """Interrupted while writing: one line that says how to finish, the finished images' records, no
    temporary file left."""
    folder = tmp_path / "in"
    folder.mkdir()
    photo = Image.open(samples / "astronaut.png").convert("RGB")
    for k in range(150):  # enough that a busy machine cannot finish them before the signal comes
        photo.rotate(k % 30).save(folder / f"{k:03d}.jpg", quality=90)
    out = tmp_path / "out"
    proc = subprocess.Popen([*ENTRY, "run", str(folder), "-o", str(out), "-q"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and len(list(out.glob("*.json"))) < 2:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert stderr.strip().splitlines() == ["interrupted: rerun with --resume to finish"]
    assert "Traceback" not in stderr
    assert all(json.loads(line)["error"] is None for line in stdout.splitlines())
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]


def test_keyboard_interrupt_in_a_command_is_one_line(monkeypatch, samples):
    """In process (CliRunner): an interrupt outside the runner's own handling, e.g. while the detector is
    built, is `interrupted` and exit 130, never click's `Aborted!` and exit 1."""
    import fcndetect.runner

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(fcndetect.runner, "Detector", interrupted)  # where the run builds its detector
    r = CliRunner().invoke(cli, ["run", str(samples / "astronaut.png")])
    assert r.exit_code == 130
    assert r.stderr.splitlines() == ["interrupted"]
