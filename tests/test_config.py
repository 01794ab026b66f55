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


def test_default_config_is_the_default_preset():
    """``DetectorConfig()`` and ``Detector()`` (via resolve_config) are the same default preset."""
    from fcndetect.presets import DEFAULT_PRESET, resolve_config

    assert DetectorConfig() == resolve_config()
    assert DetectorConfig() == resolve_config(DEFAULT_PRESET)
    # a named model still starts from neutral single-stage values, not the cascade's
    single = resolve_config(model="face")
    assert single.stages == () and single.model == "face"
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
