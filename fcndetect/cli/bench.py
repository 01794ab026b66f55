"""``fcndetect bench``: dense evaluation against crop-by-crop classification, or a detection's steps timed."""

from __future__ import annotations

from typing import Any

import click

from .common import (
    EXIT_FAILED,
    bounded,
    checkpoint_options,
    fail,
    model_config,
    model_error,
    model_errors,
)


@click.command("bench")
@click.argument("image", type=click.Path(dir_okay=False))
@click.option("-m", "--model", default=None,
              help="Model name, torchvision architecture or package.module:factory (default: face; with "
                   "--pipeline, the default preset).")
@checkpoint_options
@click.option("--scales", default="1", show_default=True, help="Comma-separated pyramid scales.")
@click.option("--batch-size", type=int, default=256, show_default=True, callback=bounded(1, 65536),
              help="Crops per classifier call.")
@click.option("--repeat", type=int, default=3, show_default=True, callback=bounded(1, 1000),
              help="Best of this many timings.")
@click.option("--threads", type=int, default=None, callback=bounded(1, 1024),
              help="torch intra-op threads (default: torch's choice).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
@click.option("--pipeline", is_flag=True,
              help="Instead: where a detection's time goes, step by step (default preset, or --config/--model).")
@click.option("-c", "--config", "config", default=None,
              help="Preset name or TOML file: its network (a single one; flags override its settings), or with "
                   "--pipeline its whole detection.")
def bench_cmd(image: str, model: str | None, scales: str, batch_size: int, repeat: int, threads: int | None,
              as_json: bool, pipeline: bool, config: str | None, **checkpoint: Any) -> None:
    """Dense evaluation vs the classifier on every window cropped one by one: speed-up, FLOP ratio,
    GFLOP/s and the largest score difference. With --pipeline: the time of each step of a detection
    (pyramid, resize and network per level, post-processing or a cascade's later stages)."""
    import torch

    from ..io.images import ImageLoadError, load_image

    if threads is not None and threads < 1:
        raise click.UsageError("--threads must be >= 1")
    if repeat < 1 or batch_size < 1:
        raise click.UsageError("--repeat and --batch-size must be >= 1")
    try:
        scale_list = [float(s) for s in scales.split(",") if s.strip()]
    except ValueError:
        raise click.UsageError(f"--scales: expected comma-separated numbers, got {scales!r}") from None
    if threads:
        torch.set_num_threads(threads)
    checkpoint["classes"] = checkpoint["classes"] or None
    if pipeline:
        from ..presets import resolve_config

        try:
            cfg = resolve_config(config, model=model, **checkpoint)
        except (ValueError, TypeError) as exc:
            raise click.UsageError(str(exc)) from None
    else:
        cfg = model_config(model if model or config else "face", config, **checkpoint)
        if cfg.stages:
            raise click.UsageError(f"{cfg.chain} is a cascade of several networks: bench one with --model NAME, "
                                   "or time the whole detection with --pipeline")
    try:
        arr = load_image(image)
    except ImageLoadError as exc:
        fail(str(exc), EXIT_FAILED)
    if pipeline:
        _bench_pipeline(arr, cfg, repeat, as_json)
    else:
        _bench_dense(arr, cfg, scale_list, batch_size, repeat, as_json)


def _bench_dense(image: Any, cfg: Any, scales: list[float], batch_size: int, repeat: int, as_json: bool) -> None:
    import json

    from ..bench import bench_dense_vs_crops
    from ..bench_report import format_dense_vs_crops
    from ..models import load_model

    try:
        loaded = load_model(cfg.model, **cfg.model_options())
    except model_errors() as exc:
        model_error(cfg.chain, exc)
    try:
        res = bench_dense_vs_crops(loaded, image, scales, batch_size=batch_size, repeat=repeat)
    except (ValueError, KeyError) as exc:
        raise click.UsageError(str(exc).strip("'\"")) from None
    click.echo(json.dumps(res.to_json()) if as_json else format_dense_vs_crops(res, loaded.dense.geometry))


def _bench_pipeline(image: Any, cfg: Any, repeat: int, as_json: bool) -> None:
    import json

    from ..bench import time_pipeline
    from ..bench_report import format_pipeline
    from ..detector import Detector

    errors: tuple[type[Exception], ...] = (*model_errors(), ValueError)
    try:
        detector = Detector(cfg)
    except errors as exc:
        model_error(cfg.chain, exc)
    times = time_pipeline(detector, image, repeat)
    click.echo(json.dumps(times.to_json()) if as_json
               else format_pipeline(times, detector.config.chain, (image.shape[1], image.shape[0]), repeat))
