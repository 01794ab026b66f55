"""`fcndetect bench`: dense vs crop-by-crop figures, and a detection's steps timed."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from PIL import Image

from fcndetect.cli import cli


def test_bench_json(samples, tmp_path):
    small = tmp_path / "small.png"
    Image.open(samples / "astronaut.png").convert("RGB").resize((160, 120)).save(small)
    r = CliRunner().invoke(cli, ["bench", str(small), "--model", "face-rnet", "--json", "--repeat", "1"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    for key in ("speedup", "flop_ratio", "max_abs_diff", "windows", "dense_seconds", "crops_seconds",
                "dense_gflops_per_s", "matmul_gflops_per_s"):
        assert key in res
    assert res["windows"] == 35 * 25  # ((160 - 24) / 4 + 1) x ((120 - 24) / 4 + 1)
    assert res["flop_ratio"] > 5
    # with receptive-field crops the dense cells are exact; window-sized crops miss R-Net's ceil-mode border
    # pixel, so they differ measurably (the bench reports both, and tells them apart)
    assert res["max_abs_diff_rf_crops"] < 1e-4
    assert res["max_abs_diff"] > 100 * max(res["max_abs_diff_rf_crops"], 1e-7)


@pytest.fixture()
def small(samples, tmp_path):
    path = tmp_path / "small.png"
    Image.open(samples / "astronaut.png").convert("RGB").resize((96, 72)).save(path)
    return path


def test_bench_honours_config_without_pipeline(small, tmp_path):
    """--config names the network benched (a preset, or a TOML file's model), as --model does."""
    args = ["bench", str(small), "--json", "--repeat", "1"]
    by_preset = CliRunner().invoke(cli, [*args, "--config", "face-pnet"])
    assert by_preset.exit_code == 0, by_preset.output
    assert json.loads(by_preset.stdout)["model"] == "face-pnet"
    toml = tmp_path / "mine.toml"
    toml.write_text('model = "face-rnet"\n')
    by_file = CliRunner().invoke(cli, [*args, "--config", str(toml)])
    assert by_file.exit_code == 0, by_file.output
    assert json.loads(by_file.stdout)["model"] == "face-rnet"
    default = CliRunner().invoke(cli, args)
    assert json.loads(default.stdout)["model"] == "face"


def test_bench_pipeline_honours_model(small):
    r = CliRunner().invoke(cli, ["bench", str(small), "--pipeline", "--model", "face-rnet", "--json", "--repeat", "1"])
    assert r.exit_code == 0, r.output
    names = [s["step"] for s in json.loads(r.stdout)["steps"]]
    assert "network L0 (face-rnet)" in names and not any("face-pnet" in n for n in names)


def test_bench_text_is_the_library_report(small):
    """The table is :func:`fcndetect.bench_report.format_pipeline` of the same figures' layout."""
    r = CliRunner().invoke(cli, ["bench", str(small), "--pipeline", "--config", "face-pnet", "--repeat", "1"])
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert lines[0] == "pipeline of face-pnet: image 96x72, best of 1"
    assert lines[-2].lstrip().startswith("sum of the steps") and lines[-1].lstrip().startswith("whole detection")


def test_bench_pipeline_shows_each_step(samples):
    r = CliRunner().invoke(cli, ["bench", str(samples / "astronaut.png"), "--pipeline", "--repeat", "1", "--json"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    names = [s["step"] for s in res["steps"]]
    assert names[0] == "pyramid plan" and names[1].startswith("resize L0 256x256")  # P-Net: no upsampling
    assert names[2] == "network L0 (face-pnet)" and names[-1] == "final NMS, clipping, sorting"
    assert list(res["candidates"]) == ["face-pnet", "face-rnet", "face"]
    kept = list(res["candidates"].values())
    # the cascade's later part step by step: candidates, then per stage crops, network (flip), NMS
    later = names[names.index(f"face-pnet candidates (threshold, NMS): {kept[0]}"):]
    assert later == [f"face-pnet candidates (threshold, NMS): {kept[0]}",
                     f"face-rnet crops ({kept[0]} x 25 px)", f"face-rnet network on {kept[0]} crops",
                     f"face-rnet threshold, regression, NMS: {kept[1]} kept",
                     f"face crops ({kept[1]} x 49 px)", f"face network on {kept[1]} crops",
                     "face mirrored crops (flip)", f"face threshold, regression, NMS: {kept[2]} kept",
                     "final NMS, clipping, sorting"]
    assert kept[0] >= kept[1] >= kept[2] >= 1  # each stage prunes, the face survives
    assert res["total_ms"] > 0
