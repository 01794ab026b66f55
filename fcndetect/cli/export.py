"""``fcndetect export``: write a dense network as ONNX or TorchScript (:mod:`fcndetect.export`)."""

from __future__ import annotations

import os
from typing import Any

import click

from .common import err, model_config, model_error, model_errors, model_options

#: detection settings an exported file carries (the network's own settings are in the file already)
EXPORTED_SETTINGS = ("threshold", "nms", "nms_iou", "min_size", "max_size", "scale_factor", "max_det",
                     "min_neighbors", "regress", "clip", "containment", "rotations", "grayscale")


@click.command("export")
@click.argument("model", required=False)
@model_options
@click.option("--format", "fmt", type=click.Choice(["onnx", "torchscript"]), required=True)
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="The file to write.")
@click.option("--overwrite", is_flag=True, help="Replace an existing OUTPUT file.")
def export_cmd(model: str | None, config: str | None, fmt: str, output: str, overwrite: bool,
               **options: Any) -> None:
    """Write the dense network (any input size >= the window) as ONNX or TorchScript, with its geometry, class
    names, normalisation and preset in the file's metadata; `run --model FILE.onnx` detects with it.

    \b
    Exit codes: 0 written, 2 usage error (a bad model or setting, an existing OUTPUT without --overwrite).
    """
    from ..export import ExportError, export_metadata, export_model
    from ..models import load_model

    cfg = model_config(model, config, **options)
    if cfg.stages:
        raise click.UsageError(f"{cfg.chain} is a cascade of several networks: export each by name")
    if os.path.isdir(output):
        raise click.UsageError(f"{output}: is a folder, not a file")
    if os.path.lexists(output) and not overwrite:
        raise click.UsageError(f"{output}: exists; give --overwrite to replace it")
    errors: tuple[type[Exception], ...] = (*model_errors(), ExportError)
    try:
        loaded = load_model(cfg.model, "cpu", **cfg.model_options())
        settings = {k: v for k, v in cfg.to_dict().items() if k in EXPORTED_SETTINGS and v is not None}
        path = export_model(loaded, output, fmt, settings)
    except errors as exc:
        model_error(cfg.chain, exc)
    g = loaded.dense.geometry
    err(f"wrote {path}: {cfg.model} dense network, window {g.window}, stride {g.stride}, outputs "
        f"{', '.join(export_metadata(loaded)['outputs'])}")
