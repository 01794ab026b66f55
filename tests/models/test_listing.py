"""The model catalogue: rows from the registry and the architectures, cascade presets, the text table."""

from __future__ import annotations

from fcndetect.config import load_preset, preset_names
from fcndetect.models import list_models, load_model
from fcndetect.models.listing import CascadePreset, ModelRow, cascade_presets, format_catalogue, model_rows


def test_rows_carry_each_registered_models_geometry():
    rows = {r.name: r for r in model_rows()}
    for spec in list_models():
        g = load_model(spec.name).dense.geometry
        assert (rows[spec.name].window, rows[spec.name].stride, rows[spec.name].rf) == (
            str(spec.window), str(g.stride), str(g.receptive_field))
    assert rows["tiny"].preset == "custom"
    assert rows["mobilenet_v2"].stride == "-"  # torchvision architectures are built only with geometry=True


def test_cascade_presets_are_the_presets_with_stages():
    names = {c.name for c in cascade_presets()}
    assert names == {n for n in preset_names() if load_preset(n).get("stages")}
    (default,) = [c for c in cascade_presets() if c.default]
    assert default.name == "face-cascade" and default.chain == "face-pnet > face-rnet > face"
    assert default.thresholds == [*load_preset("face-cascade")["stage_thresholds"],
                                  load_preset("face-cascade")["threshold"]]


def test_format_aligns_columns_and_marks_the_default():
    rows = [ModelRow("a", "12", "2", "12", "face", "w1"), ModelRow("longer-name", "224", "32", "-", "x", "w2")]
    text = format_catalogue(rows, [CascadePreset("c", "a > b", [0.5, 0.9], True)], ["z", "y"])
    lines = text.splitlines()
    assert lines[0] == "name         window  stride  rf  preset  weights"
    assert lines[1] == "a            12      2       12  face    w1"
    assert lines[2] == "longer-name  224     32      -   x       w2"
    assert lines[3:] == ["", "cascade presets (--config NAME; the default is marked *):",
                         "* c: a > b, thresholds [0.5, 0.9]", "", "not convertible: y, z (see --model NAME for why)"]
