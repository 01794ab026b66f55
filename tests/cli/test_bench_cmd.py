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


def test_bench_pipeline_shows_each_step(samples):
    r = CliRunner().invoke(cli, ["bench", str(samples / "astronaut.png"), "--pipeline", "--repeat", "1", "--json"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    names = [s["step"] for s in res["steps"]]
    assert names[0] == "pyramid plan" and names[1].startswith("resize L0 256x256")  # P-Net: no upsampling
    assert names[2] == "network L0 (face-pnet)" and names[-1].startswith("candidates, face-rnet + face")
    assert list(res["candidates"]) == ["face-pnet", "face-rnet", "face"]
    kept = list(res["candidates"].values())
    assert kept[0] >= kept[1] >= kept[2] >= 1  # each stage prunes, the face survives
    assert res["total_ms"] > 0

