"""Command line: parses options and calls the library API (nothing else lives here).

Exit codes: 0 every input processed; 1 some input failed; 2 usage error; 130 interrupted.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

import click

from . import __version__

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def _err(msg: str, quiet: bool = False) -> None:
    if not quiet:
        click.echo(msg, err=True)


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(v)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", prog_name="fcndetect")
def cli() -> None:
    """Sliding-window detection with a classifier made fully convolutional.

    \b
    Exit codes: 0 all inputs processed, 1 some inputs failed, 2 usage error, 130 interrupted.
    """


_RUN_EPILOG = """\b
Output: one JSON line per image on stdout:
  {"image", "width", "height", "detections": [{"box": [x1, y1, x2, y2], "score", "label"}], "error"}
Boxes are in image pixels with continuous edges ([0, 0, W, H] is the whole image).
Exit codes: 0 all inputs processed, 1 some inputs failed, 2 usage error, 130 interrupted.
"""


@cli.command("run", epilog=_RUN_EPILOG)
@click.argument("sources", nargs=-1)
@click.option("-m", "--model", default=None, help="Model name (see `fcndetect models`). Default: face.")
@click.option("-c", "--config", "config", default=None, help="Preset name or TOML file; flags override it.")
@click.option("-t", "--threshold", type=float, default=None, help="Minimum class probability of a window.")
@click.option("--nms", type=click.Choice(["max", "avg"]), default=None, help="NMS-max or NMS-avg (DDFD).")
@click.option("--nms-iou", type=float, default=None, help="IoU that groups/suppresses boxes.")
@click.option("--min-size", type=float, default=None, help="Smallest object side in pixels.")
@click.option("--max-size", type=float, default=None, help="Largest object side in pixels (default: image).")
@click.option("--scale-factor", type=float, default=None, help="Ratio between pyramid scales (0..1).")
@click.option("--max-det", type=int, default=None, help="At most this many detections per image.")
@click.option("--min-neighbors", type=int, default=None, help="NMS-avg: drop clusters of fewer windows.")
@click.option("--regress/--no-regress", default=None, help="Refine boxes with the model's regression head.")
@click.option("--device", default=None, help="Torch device: cpu, cuda, cuda:1, mps.")
@click.option("-o", "--output", "output", type=click.Path(file_okay=False), default=None,
              help="Write <name>.json and an annotated image per input, and detections.jsonl, into DIR.")
@click.option("--heatmap", is_flag=True, help="With -o: also write the score map overlaid on each image.")
@click.option("--print-config", is_flag=True, help="Print the effective settings (TOML) and exit.")
@click.option("-q", "--quiet", is_flag=True, help="No progress or summary on stderr.")
def run_cmd(sources: tuple[str, ...], config: str | None, output: str | None, heatmap: bool,
            print_config: bool, quiet: bool, **options: Any) -> None:
    """Detect objects in images: files, folders (recursive) and glob patterns."""
    from .config import ConfigError, resolve_config

    try:
        cfg = resolve_config(config, **options)
    except (ConfigError, TypeError) as exc:
        raise click.UsageError(str(exc)) from None
    if print_config:
        for key, value in cfg.to_dict().items():
            if value is not None:
                click.echo(f"{key} = {_toml_value(value)}")
        return
    if not sources:
        raise click.UsageError("no SOURCES given (image files, folders or glob patterns)")
    if heatmap and not output:
        raise click.UsageError("--heatmap needs -o/--output DIR")
    code = _run(sources, cfg, output, heatmap, quiet)
    sys.exit(code)


def _run(sources: tuple[str, ...], cfg: Any, output: str | None, heatmap: bool, quiet: bool) -> int:
    import torch

    from .detector import Detector
    from .io.draw import draw_detections, encode_image, heatmap_overlay
    from .io.images import ImageLoadError, load_image
    from .io.sinks import OutputDir, dumps_record, output_name, result_record
    from .io.sources import expand_sources

    if cfg.device.startswith("cuda") and not torch.cuda.is_available():
        raise click.UsageError(f"--device {cfg.device}: CUDA is not available on this machine")
    try:
        detector = Detector(cfg)
    except (FileNotFoundError, KeyError, ValueError) as exc:
        raise click.UsageError(str(exc)) from None
    out = OutputDir(output) if output else None
    n_images = n_failed = n_dets = 0
    start = time.perf_counter()
    try:
        for item in expand_sources(sources):
            if item.error is not None:
                n_failed += 1
                _err(f"error: {item.path}: {item.error}", quiet)
                line = dumps_record(result_record(item.path, None, item.error))
                click.echo(line)
                if out:
                    out.add_record(line)
                continue
            n_images += 1
            try:
                image = load_image(item.path)
                dets = detector.detect_array(image, return_maps=heatmap)
            except ImageLoadError as exc:
                n_failed += 1
                _err(f"error: {exc}", quiet)
                line = dumps_record(result_record(item.path, None, exc.reason))
                click.echo(line)
                if out:
                    out.add_record(line)
                continue
            record = result_record(item.path, dets, None)
            line = dumps_record(record)
            if out:
                name = out.unique(output_name(item.path, item.relative, item.root))
                ext = os.path.splitext(name)[1]
                annotated = encode_image(draw_detections(image, dets), ext)
                heat = (
                    encode_image(heatmap_overlay(image, dets, detector.model.dense.geometry), ext)
                    if heatmap else None
                )
                out.write_image(name, record, annotated, heat)
                out.add_record(line)
            click.echo(line)
            n_dets += len(dets)
    except KeyboardInterrupt:
        _err("interrupted", quiet=False)
        return EXIT_INTERRUPTED
    finally:
        if out:
            out.close()
    elapsed = time.perf_counter() - start
    _err(
        f"{n_images} image(s), {n_dets} detection(s), {n_failed} failed input(s) in {elapsed:.1f} s "
        f"[model {cfg.model}, threshold {cfg.threshold}]",
        quiet,
    )
    if n_images == 0 and n_failed == 0:
        _err("error: no input images", quiet=False)
        return EXIT_FAILED
    return EXIT_FAILED if n_failed else EXIT_OK


@cli.command("models")
def models_cmd() -> None:
    """List the available models with their window, stride and weights source."""
    from .models import list_models, load_model

    rows = []
    for spec in list_models():
        try:
            g = load_model(spec.name).dense.geometry
            stride, rf = str(g.stride), str(g.receptive_field)
        except Exception as exc:  # noqa: BLE001 - listing must not fail on one missing weight file
            stride, rf = "?", f"unavailable: {exc}"
        rows.append((spec.name, str(spec.window), stride, rf, spec.preset, spec.source, spec.description))
    header = ("name", "window", "stride", "rf", "preset", "weights", "description")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]
    for r in [header, *rows]:
        click.echo("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1])


def main() -> None:
    """Console-script entry point."""
    try:
        cli.main(prog_name="fcndetect", standalone_mode=True)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)


if __name__ == "__main__":  # pragma: no cover
    main()
