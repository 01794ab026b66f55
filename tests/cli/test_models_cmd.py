"""`fcndetect models`: the catalogue of models and cascade presets."""

from __future__ import annotations

from click.testing import CliRunner

from fcndetect.cli import cli


def _run(args, **kw):
    return CliRunner().invoke(cli, args, catch_exceptions=False, **kw)


def test_models_lists_window_and_stride():
    r = _run(["models"])
    assert r.exit_code == 0
    rows = {line.split()[0]: line.split() for line in r.output.splitlines()[1:] if line.strip()}
    assert rows["face"][1:3] == ["48", "8"] and rows["face-rnet"][1:3] == ["24", "4"]
    assert rows["mobilenet_v2"][1] == "224" and rows["inception_v3"][1] == "299"
    assert "vit_b_16" in r.output.splitlines()[-1]
    assert rows["face-pnet"][1:3] == ["12", "2"]
    assert "* face-cascade: face-pnet > face-rnet > face, thresholds [0.4, 0.4, 0.99]" in r.output


def test_models_prints_the_library_catalogue():
    """The command prints :func:`fcndetect.models.listing.catalogue`, nothing of its own."""
    from fcndetect.models.listing import catalogue

    assert _run(["models"]).output == catalogue() + "\n"
