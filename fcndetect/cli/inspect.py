"""``fcndetect inspect``: what a classifier becomes as a dense network (:mod:`fcndetect.inspection`)."""

from __future__ import annotations

from typing import Any

import click

from .common import model_config, model_error, model_errors, model_options


@click.command("inspect")
@click.argument("model", required=False)
@model_options
@click.option("--image-size", default="640x480", show_default=True, help="WxH of the photo whose pyramid is costed.")
@click.option("--json", "as_json", is_flag=True, help="One JSON document instead of the tables.")
def inspect_cmd(model: str | None, config: str | None, image_size: str, as_json: bool, **options: Any) -> None:
    """What a classifier becomes as a dense network: every layer's shape, stride, receptive field and cost,
    each fully-connected layer's in_features and the convolution it became, and the pyramid's cost."""
    import json

    from ..inspection import format_report, inspect_config

    try:
        w, h = (int(v) for v in image_size.lower().split("x"))
        if w < 1 or h < 1:
            raise ValueError
    except ValueError:
        raise click.UsageError(f"--image-size must be WxH, e.g. 640x480, got {image_size!r}") from None
    cfg = model_config(model, config, **options)
    try:
        doc = inspect_config(cfg, (w, h))
    except model_errors() as exc:
        model_error(cfg.chain, exc)
    click.echo(json.dumps(doc) if as_json else format_report(doc))
