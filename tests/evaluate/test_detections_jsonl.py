"""Tests of fcndetect.evaluate.detections_jsonl: detection files, ranked by logit where records carry one."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fcndetect.evaluate import (
    AnnotationError,
    detections_from_records,
    evaluate,
    load_annotations,
    load_detections_jsonl,
    load_detections_jsonl_with_errors,
    read_detections_jsonl,
)

FIXTURES = Path(__file__).parents[1] / "fixtures" / "annotations"


def write_jsonl(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_load_detections_jsonl(tmp_path):
    p = write_jsonl(tmp_path / "dets.jsonl", [
        {"image": "imgs/a.jpg", "detections": [{"box": [0, 0, 10, 10], "score": -2.5, "label": "face"},
                                                {"box": [1, 2, 3, 4], "score": 7, "label": "person"}]},
        "",
        {"image": "imgs/b.jpg", "detections": [], "error": None},
        {"image": "imgs/c.jpg", "error": "cannot decode image"},
    ])  # fmt: skip
    dets, errors = load_detections_jsonl_with_errors(p)
    assert list(dets) == ["imgs/a.jpg", "imgs/b.jpg"]
    assert dets["imgs/a.jpg"][0].tolist() == [[0, 0, 10, 10], [1, 2, 3, 4]]
    assert dets["imgs/a.jpg"][1].tolist() == [-2.5, 7.0]
    assert dets["imgs/b.jpg"][0].shape == (0, 4) and dets["imgs/b.jpg"][1].shape == (0,)
    assert errors == {"imgs/c.jpg": "cannot decode image"}
    with pytest.warns(UserWarning, match="skipped 1 image"):
        assert list(load_detections_jsonl(p)) == ["imgs/a.jpg", "imgs/b.jpg"]
    faces, _ = load_detections_jsonl_with_errors(p, labels={"face"})
    assert faces["imgs/a.jpg"][1].tolist() == [-2.5]
    assert read_detections_jsonl(p).ranking == "score"


@pytest.mark.parametrize(
    "bad, reason",
    [
        ("{not json", "invalid JSON"),
        ('{"detections": []}', "'image'"),
        ('{"image": "x.jpg"}', "'detections' list"),
        ('{"image": "x.jpg", "detections": [{"box": [0, 0, 1], "score": 1}]}', "'box'"),
        ('{"image": "x.jpg", "detections": [{"box": [0, 0, 1, 1], "score": "high"}]}', "'score'"),
        ('{"image": "x.jpg", "detections": [{"box": [5, 0, 1, 1], "score": 1}]}', "negative width"),
        ('{"image": "a.jpg", "detections": []}', "listed twice"),
        ('{"image": "x.jpg", "detections": [{"box": [0, 0, 1, 1], "score": 1, "logit": "big"}]}', "'logit'"),
        ('{"image": "x.jpg", "detections": [{"box": [0, 0, 1, 1], "score": 1, "logit": true}]}', "'logit'"),
    ],
)
def test_load_detections_jsonl_malformed(tmp_path, bad, reason):
    p = write_jsonl(tmp_path / "out.jsonl", ['{"image": "a.jpg", "detections": []}', "", bad])
    with pytest.raises(AnnotationError) as info:
        load_detections_jsonl(p)
    assert str(info.value).startswith(f"{p}:3: ") and reason in str(info.value)


def test_end_to_end_from_files(tmp_path):
    gt = load_annotations(FIXTURES / "FDDB-fold-01-ellipseList.txt")
    p = write_jsonl(tmp_path / "out.jsonl", [
        {"image": "/data/fddb/2002/07/19/big/img_423.jpg",
         "detections": [{"box": [80, 40, 120, 60], "score": -1.0}, {"box": [30, 30, 70, 90], "score": -2.0},
                        {"box": [500, 500, 520, 520], "score": -1.5}]},
        {"image": "/data/fddb/extra/img_999.jpg", "detections": [{"box": [0, 0, 5, 5], "score": 3.0}]},
    ])  # fmt: skip
    report = evaluate(load_detections_jsonl(p), gt, fp_points=(0, 1, 2))
    r = report.results[0]
    # ranks: FP (img_999, 3.0), TP (-1.0), FP (-1.5), TP (-2.0); n_gt = 1 + 2 + 3 = 6
    assert (r.n_gt, r.n_det, r.n_tp, r.n_fp) == (6, 4, 2, 2)
    assert r.recall_at_fp == pytest.approx({0: 0.0, 1: 1 / 6, 2: 2 / 6})
    assert r.ap == pytest.approx(1 / 6 * 1 / 2 + 1 / 6 * 1 / 2)
    assert [im.gt_key for im in report.images] == [
        "2002/07/19/big/img_423", None, "2002/08/11/big/img_591", "2002/08/26/big/img_265"
    ]


# ----------------------------------------------------------------------------------------------------------
# Ranking key: the logit where a record has one, else the score

# O-Net-like output: every probability is written as 1.0, only the logits tell the detections apart.
SATURATED = [
    {"image": "a.jpg", "detections": [{"box": [50, 50, 60, 60], "score": 1.0, "logit": 11.2, "label": "face"},
                                      {"box": [0, 0, 10, 10], "score": 1.0, "logit": 14.7, "label": "face"}]},
    {"image": "b.jpg", "detections": [{"box": [30, 30, 40, 40], "score": 1.0, "logit": 12.9, "label": "face"},
                                      {"box": [0, 0, 10, 10], "score": 1.0, "logit": 9.8, "label": "face"}]},
]  # fmt: skip
SATURATED_GT = {"a.jpg": np.array([[0, 0, 10, 10]], float), "b.jpg": np.array([[0, 0, 10, 10]], float)}


def without_logits(rows):
    return [dict(r, detections=[{k: v for k, v in d.items() if k != "logit"} for d in r["detections"]]) for r in rows]


def test_saturated_scores_rank_by_logit(tmp_path):
    read = read_detections_jsonl(write_jsonl(tmp_path / "d.jsonl", SATURATED))
    assert read.ranking == "logit"
    assert read.detections["a.jpg"][1].tolist() == [11.2, 14.7]
    assert read.detections["a.jpg"][1].dtype == np.float64
    # by logit: TP(14.7) FP(12.9) FP(11.2) TP(9.8) -> AP = 1/2 * 1 + 1/2 * 1/2
    report = evaluate(read.detections, SATURATED_GT, ranking=read.ranking)
    assert report.results[0].ap == pytest.approx(0.75)
    assert report.to_json()["ranking"] == "logit"
    # the same detections ranked by their tied scores keep file order: FP TP FP TP -> AP = 1/2 * 1/2 + 1/2 * 1/2
    by_score = read_detections_jsonl(write_jsonl(tmp_path / "s.jsonl", without_logits(SATURATED)))
    assert by_score.ranking == "score"
    assert evaluate(by_score.detections, SATURATED_GT).results[0].ap == pytest.approx(0.5)


def test_records_without_logit_rank_by_score(tmp_path):
    rows = [{"image": "a.jpg", "detections": [{"box": [0, 0, 1, 1], "score": 0.25, "logit": None},
                                              {"box": [0, 0, 2, 2], "score": -3.0}]}]  # fmt: skip
    read = read_detections_jsonl(write_jsonl(tmp_path / "d.jsonl", rows))
    assert read.ranking == "score"
    assert read.detections["a.jpg"][1].tolist() == [0.25, -3.0]
    assert load_detections_jsonl(tmp_path / "d.jsonl")["a.jpg"][1].tolist() == [0.25, -3.0]


def test_a_file_holding_no_detection_has_no_ranking_key(tmp_path):
    read = read_detections_jsonl(write_jsonl(tmp_path / "d.jsonl", [{"image": "a.jpg", "detections": []}]))
    assert (read.ranking, list(read.detections)) == (None, ["a.jpg"])


@pytest.mark.parametrize("logits_first", [True, False])
def test_logits_and_scores_are_not_mixed(tmp_path, logits_first):
    bare = without_logits(SATURATED)
    rows = [SATURATED[0], bare[1]] if logits_first else [bare[0], SATURATED[1]]
    with pytest.raises(AnnotationError) as info:
        read_detections_jsonl(write_jsonl(tmp_path / "d.jsonl", rows))
    assert str(info.value).startswith(f"{tmp_path / 'd.jsonl'}:2: detections[0]: ranks by its")
    assert "'logit'" in str(info.value) and "'score'" in str(info.value)


def test_detections_from_records():
    records = SATURATED[1]["detections"]
    boxes, keys, ranking = detections_from_records(records)
    assert boxes.tolist() == [[30, 30, 40, 40], [0, 0, 10, 10]] and boxes.dtype == np.float64
    assert (keys.tolist(), ranking) == ([12.9, 9.8], "logit")
    boxes, keys, ranking = detections_from_records(without_logits([SATURATED[1]])[0]["detections"])
    assert (keys.tolist(), ranking) == ([1.0, 1.0], "score")
    boxes, keys, ranking = detections_from_records(records, labels={"person"}, ranking="logit")
    assert (boxes.shape, keys.shape, ranking) == ((0, 4), (0,), "logit")
    with pytest.raises(AnnotationError, match=r"^detections\[0\]: ranks by its 'logit'"):
        detections_from_records(records, ranking="score")
