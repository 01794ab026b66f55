from __future__ import annotations

from pathlib import Path

import pytest

from fcndetect.config import ConfigError, DetectorConfig, load_preset, preset_names

from fcndetect.presets import resolve_config


def test_shipped_presets_load():
    names = preset_names()
    assert {"face", "face-rnet"} <= set(names)
    for name in names:
        cfg = resolve_config(name)
        assert isinstance(cfg, DetectorConfig)


def test_precedence_flags_over_file_over_preset(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text("threshold = 0.4\nnms = 'max'\n")
    base = load_preset("face")
    cfg = resolve_config(str(f), nms="avg")
    assert cfg.threshold == 0.4 and cfg.nms == "avg" and cfg.min_size == base["min_size"]


@pytest.mark.parametrize("text, msg", [("thresold = 0.4", "unknown setting"), ("threshold = [", "invalid TOML"),
                                        ("threshold = 1.5", "threshold")])
def test_bad_config_files(tmp_path, text, msg):
    f = tmp_path / "bad.toml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=msg) as err:
        resolve_config(str(f))
    if "unknown" in msg or "TOML" in msg:
        assert str(f) in str(err.value)


def test_missing_config_file():
    with pytest.raises(ConfigError, match="not found"):
        resolve_config("nope/missing.toml")


@pytest.mark.parametrize("text, key", [("threshold = 'high'", "threshold"), ("max_det = 1.5", "max_det"),
                                       ("regress = 1", "regress"), ("nms = 3", "nms"), ("min_size = true", "min_size"),
                                       ("classes = 5", "classes")])
def test_wrong_value_type_names_the_key_and_file(tmp_path, text, key):
    f = tmp_path / "typed.toml"
    f.write_text(text)
    with pytest.raises(ConfigError) as err:
        resolve_config(str(f))
    msg = str(err.value)
    assert f"setting '{key}' must be" in msg and str(f) in msg and "\n" not in msg


def test_ints_are_fine_where_numbers_are_expected(tmp_path):
    f = tmp_path / "ok.toml"
    f.write_text("min_size = 30\nthreshold = 1\nclasses = ['face']\n")
    cfg = resolve_config(str(f))
    assert cfg.min_size == 30.0 and cfg.threshold == 1.0


def test_relative_weights_resolve_against_the_config_folder(tmp_path, monkeypatch):
    from fcndetect.config import read_config_file

    sub = tmp_path / "run1"
    sub.mkdir()
    (sub / "preset.toml").write_text('model = "tiny"\nweights = "model.pt"\n')
    (sub / "abs.toml").write_text(f'weights = "{tmp_path / "w.pth"}"\n')
    (sub / "named.toml").write_text('model = "mobilenet_v2"\nweights = "IMAGENET1K_V1"\n')
    (sub / "up.toml").write_text('weights = "../w/x.pth"\n')
    monkeypatch.chdir(tmp_path)
    assert read_config_file(sub / "preset.toml")["weights"] == str(sub / "model.pt")
    assert read_config_file(sub / "abs.toml")["weights"] == str(tmp_path / "w.pth")
    assert read_config_file(sub / "named.toml")["weights"] == "IMAGENET1K_V1"
    assert read_config_file("run1/up.toml")["weights"] == str(Path("run1") / "../w/x.pth")


def test_grayscale_is_a_typed_setting(tmp_path):
    from fcndetect.config import ConfigError
    from fcndetect.presets import resolve_config

    (tmp_path / "g.toml").write_text('grayscale = "yes"\n')
    with pytest.raises(ConfigError, match="grayscale"):
        resolve_config(str(tmp_path / "g.toml"))
    assert resolve_config("face", grayscale=True).grayscale is True
    assert resolve_config("face").grayscale is False


def test_default_preset_is_a_toml_file_and_the_defaults_are_neutral():
    """The default preset lives in its TOML file only; ``DetectorConfig``'s declared defaults are neutral
    single-stage values, so a named model needs no special constructor."""
    from fcndetect.presets import DEFAULT_PRESET, resolve_config

    assert resolve_config() == resolve_config(DEFAULT_PRESET) == DetectorConfig(**load_preset(DEFAULT_PRESET))
    assert resolve_config().chain == "face-pnet > face-rnet > face"
    plain = DetectorConfig(model="mobilenet_v2")
    assert plain.stages == () and plain.stage_thresholds == () and plain.containment is None and not plain.flip
    # a named model starts from the neutral values and its own preset, not the cascade's
    single = resolve_config(model="face")
    assert single.stages == () and single.model == "face" and single.threshold == load_preset("face")["threshold"]
    assert resolve_config(model="face-rnet").containment is None


@pytest.mark.parametrize("key, value, fragment", [
    ("scale_factor", 0.9999999999, "scale_factor must be in (0, 0.978572] (at most 32 pyramid levels per octave)"),
    ("rotations", [1e300], "rotations must be in [-360, 360]"),
    ("rotations", [0, 361], "rotations must be in [-360, 360]"),
    ("rotations", list(range(361)), "rotations takes at most 360 values"),
    ("min_size", float("inf"), "min_size must be in (0, 1000000]"),
    ("max_size", float("nan"), "max_size must be in (0, 1000000]"),
    ("threshold", float("nan"), "threshold must be in [0, 1]"),
    ("max_det", 10 ** 30, "max_det must be in [1, 1000000]"),
    ("max_det", 0, "max_det must be in [1, 1000000]"),
    ("min_neighbors", -1, "min_neighbors must be in [1, 1000000]"),
    ("max_memory_mb", 1 << 40, "max_memory_mb must be in [0, 16777216]"),
    ("num_classes", 10 ** 12, "num_classes must be in [1, 1000000]"),
    ("input_size", 10 ** 9, "input_size must be in [1, 16384]"),
    ("std", [0.2, float("inf"), 0.2], "std must be in (0, 1000000]"),
    ("containment", 0.0, "containment must be in (0, 1]"),
])
def test_every_numeric_setting_is_bounded_in_files_and_in_code(tmp_path, key, value, fragment):
    from fcndetect.config import toml_value

    cfg = tmp_path / "bad.toml"
    text = toml_value(value).replace("inf", "inf").replace("nan", "nan")
    cfg.write_text(f"{key} = {text}\n")
    with pytest.raises(ConfigError) as info:
        resolve_config(str(cfg))
    msg = str(info.value)
    assert msg.startswith(f"{cfg}: ") and fragment in msg and "\n" not in msg
    with pytest.raises(ConfigError, match=key):
        DetectorConfig(**{key: value})


def test_bounds_accept_their_edges():
    DetectorConfig(rotations=(-360, 0, 360), scale_factor=2 ** (-1 / 32), threshold=1.0, max_det=1_000_000)


def test_every_numeric_setting_declares_its_bounds():
    """A new numeric setting cannot be added without bounds: its declaration (the field) carries them, and
    files, flags and code are all checked against them."""
    from dataclasses import fields

    from fcndetect.config import _BOUNDS, _TYPES

    numeric = {f.name for f in fields(DetectorConfig)
               if (float in _TYPES[f.name] or int in _TYPES[f.name]) and bool not in _TYPES[f.name]}
    numeric |= {"rotations", "stage_thresholds", "mean", "std"}  # lists of numbers
    assert numeric == set(_BOUNDS)


def test_every_setting_is_a_run_option_with_its_declared_help():
    from fcndetect.cli import cli
    from fcndetect.config import SETTINGS

    params = {p.name: p for p in cli.commands["run"].params}
    for name, info in SETTINGS.items():
        assert info.help.strip(), name
        assert name in params, f"setting {name} has no run option"
        assert params[name].default is None and params[name].help.startswith(info.help)
        declared = {flag for decl in info.flags for flag in decl.split("/")}
        assert declared <= {*params[name].opts, *params[name].secondary_opts}, name


def test_detector_keywords_mirror_the_declarations():
    """``Detector(...)``'s typed keywords (``Settings``) name every setting, with its declared type or None."""
    from collections.abc import Sequence
    from typing import get_args, get_type_hints

    from fcndetect.config import SETTINGS, Settings

    hints = get_type_hints(Settings)
    assert list(hints) == list(SETTINGS), "config.Settings must list every setting, in order (Detector's keywords)"
    declared = get_type_hints(DetectorConfig)
    for name, hint in hints.items():
        assert type(None) in get_args(hint), name  # None: "from the preset"
        if SETTINGS[name].is_list:  # a sequence of the declared element type, or "a, b" as a flag gives it
            assert Sequence[SETTINGS[name].kind] in get_args(hint) and str in get_args(hint), name
        else:
            assert hint == declared[name] | None, name


NEW_SETTING = '    min_box: float = setting(0.0, "Drop detections whose shorter side is below this.", Bounds(0.0, 1e6))\n'


def test_a_setting_is_one_declaration(tmp_path):
    """One line added to ``DetectorConfig`` (in a copy of the package) is a TOML setting, written by
    --print-config and read back, validated in files and flags, a `run` option with its help, and a keyword."""
    import subprocess
    import sys

    import fcndetect

    src = Path(fcndetect.__file__).parent
    pkg = tmp_path / "fcndetect"
    pkg.mkdir()
    for entry in src.iterdir():
        if entry.name not in ("config.py", "__pycache__"):
            (pkg / entry.name).symlink_to(entry)
    text = (src / "config.py").read_text()
    anchor = "    # runtime: where it runs"
    assert anchor in text
    (pkg / "config.py").write_text(text.replace(anchor, NEW_SETTING + anchor, 1))
    (tmp_path / "bad.toml").write_text("min_box = -1\n")
    (tmp_path / "typed.toml").write_text("min_box = 'big'\n")
    code = f"""
import json, sys
from click.testing import CliRunner
from fcndetect.cli import cli
from fcndetect.config import ConfigError
from fcndetect.presets import resolve_config
out = {{}}
r = CliRunner().invoke(cli, ["run", "--help"])
out["help"] = " ".join(r.output.split())
r = CliRunner().invoke(cli, ["run", "--print-config", "--min-box", "2.5"])
out["printed"] = r.output
open({str(tmp_path / "printed.toml")!r}, "w").write(r.output)
out["reread"] = resolve_config({str(tmp_path / "printed.toml")!r}).min_box
out["keyword"] = resolve_config(min_box=3).min_box
r = CliRunner().invoke(cli, ["run", "x.png", "--min-box", "-3"])
out["flag_error"] = [r.exit_code, r.stderr]
for name in ("bad", "typed"):
    try:
        resolve_config({str(tmp_path)!r} + "/" + name + ".toml")
    except ConfigError as exc:
        out[name] = str(exc)
out["torch"] = "torch" in sys.modules
print(json.dumps(out))
"""
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                       env={**__import__("os").environ, "PYTHONPATH": str(tmp_path)})
    assert p.returncode == 0, p.stderr
    import json

    out = json.loads(p.stdout)
    assert "--min-box FLOAT Drop detections whose shorter side is below this." in out["help"]
    assert "min_box = 2.5\n" in out["printed"] and out["reread"] == 2.5 and out["keyword"] == 3.0
    assert out["flag_error"] == [2, "error: min_box must be in [0, 1000000], got -3.0\n"]
    assert out["bad"] == f"{tmp_path / 'bad.toml'}: min_box must be in [0, 1000000], got -1"
    assert out["typed"].startswith(f"{tmp_path / 'typed.toml'}: setting 'min_box' must be a number")
    assert out["torch"] is False


def test_generated_flags_reach_the_settings():
    """Flags that existed only in TOML before (stages, fusion, flip, clip, containment) now reach the settings,
    a list as comma-separated or repeated values."""
    from click.testing import CliRunner

    from fcndetect.cli import cli

    r = CliRunner().invoke(cli, ["run", "--print-config", "-m", "face", "--stages", "face-pnet", "--stages",
                                 "face-rnet", "--stage-thresholds", "0.3,0.6", "--fusion", "sum", "--no-flip",
                                 "--no-clip", "--containment", "0.5", "--max-memory", "1G", "--color"])
    assert r.exit_code == 0, r.output
    lines = set(r.output.splitlines())
    assert {"# models: face-pnet > face-rnet > face", 'stages = ["face-pnet", "face-rnet"]',
            "stage_thresholds = [0.3, 0.6]", 'fusion = "sum"', "flip = false", "clip = false",
            "containment = 0.5", "max_memory_mb = 1024", "grayscale = false"} <= lines
    r = CliRunner().invoke(cli, ["run", "x.png", "--fusion", "max"])
    assert r.exit_code == 2 and "'max' is not one of 'last', 'sum'" in r.stderr


def test_every_setting_is_documented():
    text = (Path(__file__).parents[1] / "docs" / "settings.md").read_text()
    from fcndetect.config import SETTINGS

    assert [name for name in SETTINGS if f"`{name}`" not in text] == []
