"""The command group and its entry points: version, the console script, start-up cost."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
from click.testing import CliRunner

from fcndetect import __version__
from fcndetect.cli import cli


def _run(args, **kw):
    return CliRunner().invoke(cli, args, catch_exceptions=False, **kw)


def test_version():
    r = _run(["--version"])
    assert r.exit_code == 0 and __version__ in r.output


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

