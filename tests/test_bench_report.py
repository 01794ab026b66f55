"""bench_report: the text of bench's figures (every figure where it belongs, the notes where they apply)."""

from __future__ import annotations

from types import SimpleNamespace

from fcndetect.bench import BenchResult, PipelineTimes
from fcndetect.bench_report import format_dense_vs_crops, format_pipeline


def _result(rf_diff):
    return BenchResult(model="m", image_size=(160, 120), scales=[1.0], windows=875, dense_seconds=0.002,
                       crops_seconds=0.05, speedup=25.0, dense_flops=2e9, crops_flops=3e10, flop_ratio=15.0,
                       dense_gflops_per_s=100.0, crops_gflops_per_s=60.0, matmul_gflops_per_s=200.0,
                       max_abs_diff=1.5e-3, max_abs_diff_rf_crops=rf_diff, threads=2)


def test_dense_vs_crops_lines():
    g = SimpleNamespace(window=24, stride=4, receptive_field=26, rf_offset=-1)
    lines = format_dense_vs_crops(_result(2e-7), g).splitlines()
    assert lines[0] == "model m: window 24, stride 4, image 160x120, scales [1.0], 875 windows, 2 threads"
    assert lines[1].split() == ["dense", "2.0", "ms", "2.00", "GFLOP", "100.0", "GFLOP/s"]
    assert lines[2].split() == ["crop-by-crop", "50.0", "ms", "30.00", "GFLOP", "60.0", "GFLOP/s"]
    assert "speed-up 25.00x" in lines[3] and "FLOP ratio 15.00x" in lines[3] and "(dense reaches 50%)" in lines[3]
    assert lines[4].endswith("1.50e-03") and "26px receptive-field crops" in lines[5] and "2.00e-07" in lines[5]
    padded = format_dense_vs_crops(_result(None), g).splitlines()
    assert len(padded) == 6 and padded[5].startswith("  (padding:")
    assert len(format_dense_vs_crops(_result(None), SimpleNamespace(**{**vars(g), "rf_offset": 0})).splitlines()) == 5


def test_pipeline_lines():
    times = PipelineTimes(steps=[("pyramid plan", 0.001), ("network L0 (a)", 0.004)], total=0.006,
                          candidates=[("a", 12), ("b", 3)])
    lines = format_pipeline(times, "a > b", (640, 480), 3).splitlines()
    assert lines[0] == "pipeline of a > b: image 640x480, best of 3"
    assert [line.split()[-2] for line in lines[1:5]] == ["1.00", "4.00", "5.00", "6.00"]
    assert lines[5] == "  windows kept: a 12, b 3"
    assert len(format_pipeline(PipelineTimes([("x", 0.0)], 0.0, []), "a", (1, 1), 1).splitlines()) == 4
