"""`fcndetect eval` end to end on small inputs."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

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


@pytest.mark.slow  # dev_faces, run and evaluated twice
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


def test_eval_with_a_failed_image_exits_1(samples, gt, tmp_path):
    """The report still covers the images read; the failed one is one line, and the exit code says so."""
    missing = tmp_path / "missing.png"
    r = CliRunner().invoke(cli, ["eval", "-a", str(gt), str(samples / "astronaut.png"), str(missing), "-q"])
    assert r.exit_code == 1
    assert r.stderr.splitlines() == [f"error: {missing}: no such file or folder"]
    assert json.loads(r.stdout)["results"][0]["n_tp"] == 1
