"""Tests of fcndetect.evaluate.report: the table and the curve plots."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from fcndetect.evaluate import EvalReport, ImageResult, ThresholdResult, format_table, plot_curves


def threshold_result(iou: float, ap: float, recall_at_fp: dict[int, float], tp: list[int]) -> ThresholdResult:
    """A result over 3 ground-truth boxes whose ranked detections are true positives where ``tp`` is 1."""
    flags = np.array(tp, bool)
    cum_tp = np.cumsum(flags)
    return ThresholdResult(
        iou=iou, ap=ap, recall_at_fp=recall_at_fp, recall_at_precision={}, max_recall=cum_tp[-1] / 3,
        n_gt=3, n_det=len(flags), n_tp=int(flags.sum()), n_fp=int((~flags).sum()),
        scores=np.linspace(2.0, -2.0, len(flags)), recall=cum_tp / 3, precision=cum_tp / np.arange(1, len(flags) + 1),
        cum_fp=np.cumsum(~flags),
    )  # fmt: skip


def hand_report(ranking: str | None = "logit") -> EvalReport:
    """The hand-computed example of test_metrics (IoU 0.5, 0.3, 0.95), plus one image without ground truth."""
    return EvalReport(
        results=[
            threshold_result(0.5, 2.2 / 3, {0: 1 / 3, 1: 1 / 3, 2: 1.0}, [1, 0, 0, 1, 1]),
            threshold_result(0.3, (1 + 2 / 3 + 0.6) / 3, {0: 1 / 3, 1: 2 / 3, 2: 1.0}, [1, 0, 1, 0, 1]),
            threshold_result(0.95, 1.4 / 3, {0: 1 / 3, 1: 1 / 3, 2: 1 / 3}, [1, 0, 0, 0, 1]),
        ],
        images=[ImageResult("a.jpg", "a.jpg", 2, 3, {}, {}), ImageResult("b.jpg", "b.jpg", 1, 2, {}, {}),
                ImageResult("c.jpg", None, 0, 0, {}, {}), ImageResult(None, "d.jpg", 1, 0, {}, {})],
        ranking=ranking,
    )  # fmt: skip


NO_GT_NOTE = "images without ground truth, scored as negatives (every detection a false positive): 1"


def test_format_table():
    lines = format_table(hand_report()).splitlines()
    table = lines[:5]
    assert table[0].split() == ["IoU", "AP", "MaxRecall", "R@0FP", "R@1FP", "R@2FP", "n_gt", "n_det", "n_fp"]
    assert table[2].split() == ["0.5", "0.7333", "1.0000", "0.3333", "0.3333", "1.0000", "3", "5", "2"]
    assert table[4].split() == ["0.95", "0.4667", "0.6667", "0.3333", "0.3333", "0.3333", "3", "5", "3"]
    assert len({len(line) for line in table}) == 1
    assert lines[5:] == ["ranked by: logit", NO_GT_NOTE]


def test_format_table_without_a_known_ranking_key():
    lines = format_table(hand_report(ranking=None)).splitlines()
    assert lines[5:] == [NO_GT_NOTE]


def test_plot_curves_without_matplotlib(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(RuntimeError, match=r"pip install 'fcndetect\[plot\]'"):
        plot_curves(hand_report(), tmp_path / "curves.png")


def test_plot_curves_with_matplotlib(tmp_path):
    pytest.importorskip("matplotlib")
    plot_curves(hand_report(), tmp_path / "curves.png")
    assert (tmp_path / "curves.png").stat().st_size > 0
