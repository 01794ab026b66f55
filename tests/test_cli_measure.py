"""`fcndetect eval` and `fcndetect bench` end to end on small inputs."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner
from PIL import Image

from fcndetect.cli import cli

IMGLAB = """<?xml version='1.0' encoding='ISO-8859-1'?>
<dataset><images>
  <image file='astronaut.png'><box top='62' left='181' width='87' height='110'/></image>
  <image file='coffee.png'></image>
</images></dataset>
"""


@pytest.fixture()
def gt(tmp_path):
    path = tmp_path / "gt.xml"
    path.write_text(IMGLAB)
    return path


def test_eval_fresh_run(samples, gt):
    r = CliRunner().invoke(cli, ["eval", "-a", str(gt), str(samples), "--iou", "0.4", "--iou", "0.5"])
    assert r.exit_code == 0, r.output
    rep = json.loads(r.stdout)
    assert [x["iou"] for x in rep["results"]] == [0.4, 0.5]
    res = rep["results"][0]
    assert (res["n_gt"], res["n_tp"], res["ap"]) == (1, 1, 1.0)
    # images are reported by the path the run gives them (folder joined with the name), as in detections.jsonl
    assert {im["image"] for im in rep["images"]} >= {str(samples / n) for n in ("astronaut.png", "coffee.png",
                                                                                "chelsea.png")}
    assert {im["gt_key"] for im in rep["images"]} == {"astronaut.png", "coffee.png", None}
    assert "AP" in r.stderr  # the human table


def test_eval_detections_file(tmp_path, gt):
    dets = tmp_path / "d.jsonl"
    lines = [
        {"image": "x/astronaut.png", "detections": [{"box": [181, 62, 268, 172], "score": -1.5},
                                                     {"box": [0, 0, 50, 50], "score": -3.0}], "error": None},
        {"image": "x/other.png", "detections": [{"box": [0, 0, 5, 5], "score": -2.0}], "error": None},
    ]
    dets.write_text("".join(json.dumps(x) + "\n" for x in lines))
    report = tmp_path / "r.json"
    r = CliRunner().invoke(cli, ["eval", "-a", str(gt), str(dets), "--report", str(report), "-q"])
    assert r.exit_code == 0, r.output
    res = json.loads(report.read_text())["results"][0]
    # scores of any range: the true positive ranks first, then two false positives
    assert (res["n_det"], res["n_tp"], res["n_fp"], res["ap"]) == (3, 1, 2, 1.0)


def test_eval_malformed_annotations(tmp_path, samples):
    bad = tmp_path / "bad.txt"
    bad.write_text("astronaut.png 1 2 3 4\nastronaut.png 1 two 3 4\n")
    r = CliRunner().invoke(cli, ["eval", "-a", str(bad), str(samples)])
    assert r.exit_code == 2 and "bad.txt:2" in r.output


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


def test_sigint_exits_130_with_one_line(tmp_path, samples):
    folder = tmp_path / "in"
    folder.mkdir()
    photo = Image.open(samples / "astronaut.png").convert("RGB")
    for k in range(30):
        photo.rotate(k).save(folder / f"{k:02d}.png")
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-c", "from fcndetect.cli import main; main()", "run", str(folder),
                             "-o", str(out), "-q"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and len(list(out.glob("*.json"))) < 2:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert stderr.strip().splitlines() == ["interrupted: rerun with --resume to finish"]
    assert "Traceback" not in stderr
    assert all(json.loads(line)["error"] is None for line in stdout.splitlines())
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]


def test_eval_of_saved_detections_equals_eval_of_a_fresh_run(dev_faces, tmp_path):
    """The saved detections.jsonl ranks exactly as the run did (logits do not saturate): the two reports
    are identical to the last digit, at the threshold where many probabilities are written as 1.0."""
    annotations = ["-a", str(dev_faces / "training.xml"), "-a", str(dev_faces / "testing.xml")]
    args = ["--threshold", "0.5", "--iou", "0.5", "--iou", "0.4"]
    fresh = CliRunner().invoke(cli, ["eval", *annotations, str(dev_faces), *args])
    assert fresh.exit_code == 0, fresh.output
    out = tmp_path / "out"
    run = CliRunner().invoke(cli, ["run", str(dev_faces), "-o", str(out), "--threshold", "0.5", "-q"])
    assert run.exit_code == 0, run.output
    saved_jsonl = (out / "detections.jsonl").read_text()
    assert saved_jsonl.count('"score": 1.0,') >= 5  # saturated probabilities (9 with the default of issue 18): the file must rank by logit
    saved = CliRunner().invoke(cli, ["eval", *annotations, str(out / "detections.jsonl"), "--iou", "0.5",
                                     "--iou", "0.4"])
    assert saved.exit_code == 0, saved.output
    assert json.loads(saved.stdout) == json.loads(fresh.stdout)
    assert json.loads(saved.stdout)["ranking"] == "logit"
    table = [line for line in saved.stderr.splitlines() if "detected with" not in line]
    assert table == [line for line in fresh.stderr.splitlines() if "detected with" not in line]


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
