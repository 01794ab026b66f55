"""Presentation of an :class:`~fcndetect.evaluate.metrics.EvalReport`: a fixed-width table and curve plots
(matplotlib, imported only when plotting)."""

from __future__ import annotations

import math
import os

import numpy as np

from .metrics import EvalReport


def format_table(report: EvalReport) -> str:
    """Fixed-width table, one row per IoU threshold: AP, max recall, recall at each FP count, n_gt, n_det, n_fp;
    then the notes of :func:`_notes`, one per line."""
    fp_cols = list(report.results[0].recall_at_fp) if report.results else []
    header = ["IoU", "AP", "MaxRecall", *(f"R@{n}FP" for n in fp_cols), "n_gt", "n_det", "n_fp"]

    def num(x: float) -> str:
        return "-" if math.isnan(x) else f"{x:.4f}"

    rows = [
        [f"{r.iou:g}", num(r.ap), num(r.max_recall), *(num(r.recall_at_fp[n]) for n in fp_cols),
         str(r.n_gt), str(r.n_det), str(r.n_fp)]
        for r in report.results
    ]  # fmt: skip
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in [header, *rows]]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:], *_notes(report)])


def _notes(report: EvalReport) -> list[str]:
    """What the numbers rest on, one line each: the ranking key (when known) and how many images had no
    ground truth and were scored as negatives."""
    notes = [] if report.ranking is None else [f"ranked by: {report.ranking}"]
    return [*notes, f"images without ground truth, scored as negatives (every detection a false positive): "
                    f"{report.n_images_without_gt}"]  # fmt: skip


def plot_curves(report: EvalReport, path: str | os.PathLike[str], *, fp_scale: str = "log") -> None:
    """Save precision-recall (left) and detection rate vs number of false positives (right) curves.

    One line per IoU threshold. ``fp_scale`` is ``"log"`` (symmetric log, so 0 FP stays visible) or
    ``"linear"``. The file type follows ``path``'s extension (``.png``, ``.pdf``, ``.svg``...).

    Raises:
        RuntimeError: matplotlib is not installed.
    """
    if fp_scale not in ("log", "linear"):
        raise ValueError(f"fp_scale must be 'log' or 'linear', got {fp_scale!r}")
    try:
        from matplotlib.figure import Figure
    except ImportError as e:
        raise RuntimeError("matplotlib is needed for --plot: pip install 'fcndetect[plot]'") from e
    fig = Figure(figsize=(11, 4.5), layout="constrained")
    ax_pr, ax_fp = fig.subplots(1, 2)
    for r in report.results:
        label = f"IoU {r.iou:g}, AP {r.ap:.3f}" if not math.isnan(r.ap) else f"IoU {r.iou:g}"
        ax_pr.plot(np.r_[0.0, r.recall], np.r_[1.0, r.precision], drawstyle="steps-post", label=label)
        ax_fp.plot(r.cum_fp, r.recall, drawstyle="steps-post", label=label)
    ax_pr.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02), title="Precision-recall")
    ax_fp.set(xlabel="false positives", ylabel="detection rate (recall)", ylim=(0, 1.02),
              title="Detection rate vs false positives")  # fmt: skip
    if fp_scale == "log":
        ax_fp.set_xscale("symlog", linthresh=1)
    ax_fp.set_xlim(left=0)  # false positives are never negative
    for ax in (ax_pr, ax_fp):
        ax.grid(True, alpha=0.3)
        ax.legend(loc="lower left" if ax is ax_pr else "lower right")
    fig.savefig(os.fspath(path))
