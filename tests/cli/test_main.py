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


@pytest.mark.slow  # the console script in a subprocess
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



def test_settings_answers_come_before_torch(samples, tmp_path):
    """`models`, `run --print-config` and every settings error answer without importing torch (each error one
    `error:` line, exit 2): they wait for nothing but the settings."""
    bad_toml = tmp_path / "bad.toml"
    bad_toml.write_text("threshold = 'high'\n")
    image = str(samples / "astronaut.png")
    cases = [
        (["models"], 0), (["run", "--print-config"], 0), (["run", "-m", "face-rnet", "--print-config"], 0),
        (["run"], 2), (["run", image, "--threshold", "2"], 2), (["run", image, "-m", "no-such-model"], 2),
        (["run", image, "--config", str(bad_toml)], 2), (["run", image, "--config", "no-such-preset"], 2),
        (["run", image, "--scale-factor", "1.5"], 2), (["run", image, "--max-memory", "lots"], 2),
        (["run", image, "--heatmap"], 2), (["run", image, "-m", "mobilenet_v2", "--print-config"], 0),
        (["run", image, "--weights", "x.pth"], 2), (["run", image, "--classes", "cat"], 2),
    ]
    code = ("import json, sys\nfrom click.testing import CliRunner\nfrom fcndetect.cli import cli\nout = []\n"
            "for args in json.loads(sys.argv[1]):\n"
            "    r = CliRunner().invoke(cli, args)\n"
            "    out.append([r.exit_code, r.stderr.splitlines(), 'torch' in sys.modules])\n"
            "print(json.dumps(out))\n")
    import json

    p = subprocess.run([sys.executable, "-c", code, json.dumps([a for a, _ in cases])], capture_output=True,
                       text=True)
    assert p.returncode == 0, p.stderr
    for (args, want), (got, stderr, torch_loaded) in zip(cases, json.loads(p.stdout), strict=True):
        assert got == want, (args, stderr)
        assert not torch_loaded, f"{args} imported torch"
        if want == 2:
            assert len(stderr) == 1 and stderr[0].startswith("error: "), (args, stderr)


def test_help_tells_the_truth():
    """-m's default is the cascade preset, --max-memory names the presets' real budgets, and the epilog's
    schema lists every field a record can carry."""
    from fcndetect.config import DetectorConfig
    from fcndetect.presets import DEFAULT_PRESET, resolve_config

    def squashed(text: str) -> str:  # help is wrapped at any width, also after a hyphen
        return "".join(text.split())

    text = squashed(_run(["run", "--help"]).output)
    assert DEFAULT_PRESET == "face-cascade" and resolve_config().chain == "face-pnet > face-rnet > face"
    assert squashed("Default: the three-stage face cascade preset face-cascade") in text
    assert squashed("`face` is the dense O-Net alone") in text and DetectorConfig().chain == resolve_config().chain
    assert resolve_config(model="face").max_memory_mb == 32 and resolve_config(model="vgg16").max_memory_mb == 1024
    assert squashed("32 MiB for the face presets, 1 GiB for torchvision presets") in text
    for field in ('"logit"', '"landmarks"', '"angle"', '"quad"', '"error"'):
        assert field in text
    assert squashed("--overwrite Replace an existing OUTPUT file") in squashed(_run(["export", "--help"]).output)


def test_cli_package_layout():
    """One module per command, none over 500 lines; a command module never imports the package's
    `__init__` (the package registers the commands)."""
    import ast
    from pathlib import Path

    import fcndetect.cli as pkg

    root = Path(pkg.__file__).parent
    modules = {p.stem: p for p in root.glob("*.py")}
    assert {"run", "eval", "bench", "models", "train", "inspect", "export", "common"} <= set(modules)
    for name, path in modules.items():
        text = path.read_text()
        assert len(text.splitlines()) <= 500, name
        if name == "__init__":
            continue
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ImportFrom):
                target = node.module or ""
                assert not (node.level == 1 and target == ""), f"{name} imports fcndetect.cli"
                assert not (node.level == 0 and target == "fcndetect.cli"), f"{name} imports fcndetect.cli"
            elif isinstance(node, ast.Import):
                assert all(a.name != "fcndetect.cli" for a in node.names), name
    assert sorted(pkg.cli.commands) == ["bench", "eval", "export", "inspect", "models", "run", "train"]


@pytest.mark.slow  # the console script in a subprocess
def test_stdout_closed_early_ends_quietly(samples):
    """`fcndetect run ... | head -0`: the reader is gone before the first record (start-up takes seconds);
    exit 1, no error line, no traceback, no Python `Exception ignored` message."""
    proc = subprocess.Popen([sys.executable, "-c", "from fcndetect.cli import main; main()", "run", str(samples),
                             "-q"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 1
    assert stderr == ""
