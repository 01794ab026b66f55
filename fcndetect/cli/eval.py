"""``fcndetect eval``: score detections (a saved detections.jsonl, or a fresh run) against ground truth."""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from .common import EXIT_FAILED, bounded, checkpoint_options, err, one_line


@click.command("eval")
@click.argument("inputs", nargs=-1, required=True)
@click.option("-a", "--annotations", multiple=True, required=True,
              help="Ground truth (repeatable): imglab XML, text, COCO JSON, FDDB, WIDER, VOC XML/folder.")
@click.option("--format", "gt_format", default=None, help="Ground-truth format (default: detected from the file).")
@click.option("--iou", "ious", multiple=True, type=float, callback=bounded(0, 1), help="IoU threshold(s) for a match (default 0.5).")
@click.option("--report", type=click.Path(dir_okay=False), default=None, help="Write the JSON report here.")
@click.option("--plot", type=click.Path(dir_okay=False), default=None, help="Write PR and ROC-style curves (PNG).")
@click.option("-m", "--model", default=None, help="Model, when INPUTS are images (default: the default preset).")
@click.option("-c", "--config", "config", default=None, help="Preset name or TOML file, when INPUTS are images.")
@click.option("-t", "--threshold", type=float, default=None, help="Detection threshold, when INPUTS are images.")
@click.option("--min-size", type=float, default=None, help="Smallest object side, when INPUTS are images.")
@checkpoint_options
@click.option("--allow-missing", is_flag=True,
              help="Score even when no annotated image has a detection record (every object then counts as missed).")
@click.option("-q", "--quiet", is_flag=True, help="No table on stderr.")
def eval_cmd(inputs: tuple[str, ...], annotations: tuple[str, ...], gt_format: str | None, ious: tuple[float, ...],
             report: str | None, plot: str | None, allow_missing: bool, quiet: bool, config: str | None,
             **options: Any) -> None:
    """Score detections against ground truth: an existing detections.jsonl, or a fresh run over images.

    \b
    JSON report on stdout (or --report FILE); a human table on stderr.
    Images are matched to ground truth by relative path, else by file name; an image absent from the
    ground truth has no objects, so its detections are false positives (the report counts these images).
    Detections are ranked by their logit where the records carry one, else by their score; the report
    says which.
    An annotated image without a detection record has its objects counted as missed (stderr says how many);
    when none has one (detections of other images), eval stops with exit 2 unless --allow-missing.
    Exit codes: 0 scored, 1 some images could not be read (each named on stderr; the report covers the
    others), 2 usage error (a missing or malformed annotation or detections file, a bad setting, no
    annotated image among the detections).
    """
    import json

    import numpy as np

    from .. import evaluate as ev
    from ..io.sinks import atomic_write_text

    gt: dict[str, np.ndarray] = {}
    try:
        for path in annotations:
            gt.update(ev.load_annotations(path, gt_format))
    except (ev.AnnotationError, FileNotFoundError) as exc:
        raise click.UsageError(_no_such_file(exc)) from None
    saved = len(inputs) == 1 and inputs[0].endswith((".jsonl", ".json")) and os.path.isfile(inputs[0])
    if saved:
        try:
            read = ev.read_detections_jsonl(inputs[0])
        except ev.AnnotationError as exc:
            raise click.UsageError(str(exc)) from None
        for image, error in read.errors.items():
            err(f"warning: {image}: skipped, it failed in the detection run ({one_line(error)})", quiet)
    else:
        read = _detect(inputs, config, options, quiet)
    try:
        keys = ev.match_images(list(read.detections), list(gt))
        # a fresh run whose every input failed has said so (exit 1); otherwise no match at all is a usage error
        _check_coverage(gt, keys, inputs[0] if saved else "the detections",
                        allow_missing or not (saved or read.detections), quiet)
        rep = ev.evaluate(read.detections, gt, iou_thresholds=ious or (0.5,), image_keys=keys, ranking=read.ranking)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    err(ev.format_table(rep), quiet)
    text = json.dumps(rep.to_json())
    if report:
        atomic_write_text(report, text + "\n")
    else:
        click.echo(text)
    if plot:
        try:
            ev.plot_curves(rep, plot)
        except RuntimeError as exc:
            raise click.UsageError(str(exc)) from None
    if not saved and read.errors:
        sys.exit(EXIT_FAILED)  # the report covers the images that were read; each failed one had its line


def _check_coverage(gt: dict[str, Any], keys: dict[str, str | None], source: str, allow_missing: bool,
                    quiet: bool) -> None:
    """Say in one line how many annotated images have no detection record; a usage error when none has one
    (unless ``allow_missing``)."""
    matched = {k for k in keys.values() if k is not None}
    missing = [g for g in gt if g not in matched]
    if not missing:
        return
    if not matched and gt and not allow_missing:
        raise click.UsageError(
            f"none of the {len(gt)} annotated images has a detection record in {source} (were the detections "
            f"made for other images?); --allow-missing scores them anyway, every object missed")
    err(f"warning: {len(missing)} of {len(gt)} annotated images have no detection record (e.g. "
        f"{one_line(missing[0])}); their objects count as missed", quiet)


def _no_such_file(exc: Exception) -> str:
    """An annotation error as one line; a missing file as ``PATH: no such file``."""
    if isinstance(exc, FileNotFoundError) and exc.filename is not None:
        return f"{exc.filename}: no such file"
    return str(exc).strip("'\"")


def _detect(inputs: tuple[str, ...], config: str | None, options: dict[str, Any], quiet: bool) -> Any:
    """A fresh run over ``inputs`` for ``eval`` (:func:`fcndetect.eval_detect.detect_for_eval`); each failed
    input is one ``error:`` line."""
    from ..config import ConfigError
    from ..detector import Detector
    from ..eval_detect import detect_for_eval
    from ..presets import resolve_config

    try:
        cfg = resolve_config(config, **{**options, "classes": options.get("classes") or None})
        detector = Detector(cfg)
    except (ConfigError, ValueError, KeyError, FileNotFoundError) as exc:
        raise click.UsageError(str(exc).strip("'\"")) from None
    read = detect_for_eval(detector, inputs, on_error=lambda image, reason: err(f"error: {image}: {one_line(reason)}"))
    err(f"detected with model {cfg.chain}, threshold {cfg.threshold:.6g}, min_size {cfg.min_size}", quiet)
    return read
