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
