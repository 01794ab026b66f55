"""Command line: parses options and calls the library API (nothing else lives here).

Exit codes: 0 every input processed; 1 some input failed; 2 usage error; 130 interrupted.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from .version import __version__

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def _err(msg: str, quiet: bool = False) -> None:
    if not quiet:
        click.echo(msg, err=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", prog_name="fcndetect")
def cli() -> None:
    """Sliding-window detection with a classifier made fully convolutional.

    \b
    Exit codes: 0 all inputs processed, 1 some inputs failed, 2 usage error, 130 interrupted.
    """


def _model_config(model: str | None, config: str | None, **options: Any) -> Any:
    """The DetectorConfig a model-level command (inspect, export) works on: MODEL with its own preset, or
    --config; usage errors as one line."""
    from .config import ConfigError
    from .presets import resolve_config

    if model is None and config is None:
        raise click.UsageError("give a MODEL (e.g. face, vgg16, package.module:factory) or --config PRESET")
    if options.get("classes") == ():
        options["classes"] = None
    try:
        return resolve_config(config, model=model, **options)
    except (ConfigError, TypeError) as exc:
        raise click.UsageError(str(exc)) from None


def _model_errors() -> tuple[type[Exception], ...]:
    from .config import ConfigError
    from .convert import ConversionError
    from .geometry import GeometryError
    from .models.torchvision_models import ModelLoadError

    return (ConfigError, ConversionError, GeometryError, ModelLoadError, KeyError)


def _model_error(name: str, exc: Exception) -> None:
    """Report a model that cannot be loaded or converted as one line naming it, and exit 2."""
    msg = " ".join(str(exc.args[0] if isinstance(exc, KeyError) and exc.args else exc).split())
    _err(f"error: {msg}" if msg.startswith(name) else f"error: {name}: {msg}")
    sys.exit(EXIT_USAGE)


def _model_options(f: Any) -> Any:
    """-c/--config and the options of a model given by name (weights, input size, outputs, normalisation)."""
    return click.option("-c", "--config", default=None, help="A preset name or TOML file instead of MODEL.")(
        _checkpoint_options(f))


def _checkpoint_options(f: Any) -> Any:
    for opt in reversed([
        click.option("--weights", default=None, help="Weights: DEFAULT, a weight name, a state-dict PATH, or none."),
        click.option("--input-size", type=int, default=None, help="The classifier's native input side."),
        click.option("--num-classes", type=int, default=None, help="Outputs of a custom checkpoint."),
        click.option("--classes", multiple=True, help="Classes to detect, or the name of every output."),
        click.option("--mean", default=None, help="R,G,B mean (0..1 units)."),
        click.option("--std", default=None, help="R,G,B std (0..1 units)."),
    ]):
        f = opt(f)
    return f


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
@click.option("--rotations", default=None,
              help="Also search rotated copies: angles in degrees, counter-clockwise, e.g. 0,90,180,270.")
@click.option("--regress/--no-regress", default=None, help="Refine boxes with the model's regression head.")
@click.option("--grayscale/--color", "grayscale", default=None,
              help="Convert every image to grayscale before detection (models trained on gray windows).")
@click.option("--device", default=None, help="Torch device: cpu, cuda, cuda:1, mps.")
@click.option("--arch", default=None, help="Alias of --model for a torchvision architecture.")
@click.option("--weights", default=None, help="torchvision models: DEFAULT, a weight name, or a state-dict PATH.")
@click.option("--num-classes", type=int, default=None, help="Outputs of a custom checkpoint (default 1000).")
@click.option("--classes", multiple=True, help="Classes to detect: ImageNet names, indices or groups (cat, dog).")
@click.option("--positive", multiple=True, help="Class index (or indices, comma-separated) to detect.")
@click.option("--input-size", type=int, default=None, help="Native input side of a custom classifier.")
@click.option("--mean", default=None, help="R,G,B mean of a custom classifier (0..1 units).")
@click.option("--std", default=None, help="R,G,B std of a custom classifier (0..1 units).")
@click.option("-o", "--output", "output", type=click.Path(file_okay=False), default=None,
              help="Write <name>.json, an annotated image, detections.jsonl and run.json into DIR.")
@click.option("--heatmap", is_flag=True, help="With -o: also write the score map overlaid on each image.")
@click.option("--save-maps", is_flag=True, help="With -o: also write the raw score maps (.npy per level).")
@click.option("--crops", is_flag=True, help="With -o: also write each detected region as an image.")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "coco", "csv", "fddb", "wider"]), default="jsonl",
              show_default=True, help="One more combined output (with -o), or what stdout gets (without).")
@click.option("--resume", is_flag=True, help="Continue an interrupted run into the same -o DIR.")
@click.option("--overwrite", is_flag=True, help="Allow -o into a non-empty folder (an old run's files go).")
@click.option("--fail-fast", is_flag=True, help="Stop at the first input that fails.")
@click.option("--workers", type=int, default=None, help="Background image-decoding threads (default 1).")
@click.option("--threads", type=int, default=None, help="torch intra-op threads (default: cores / workers).")
@click.option("--batch-size", type=int, default=1, show_default=True, help="Same-size images per network call.")
@click.option("--max-memory", type=str, default=None,
              help="Activation budget per image and call, e.g. 32M, 1G (tiles; default 32M).")
@click.option("--max-pixels", type=int, default=None, help="Refuse larger images (decompression-bomb guard).")
@click.option("--print-config", is_flag=True, help="Print the effective settings (TOML) and exit.")
@click.option("-q", "--quiet", is_flag=True, help="No progress, errors or summary on stderr.")
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="local: this machine; ray: Ray Data actors on a Ray cluster (pip install 'fcndetect[ray]').")
@click.option("--ray-address", default=None, help="With --engine ray: 'auto' or HOST:PORT of a running cluster "
              "(default: a local Ray instance for this run).")
@click.option("--actors", default=None, help="With --engine ray: N actors, or MIN-MAX (default: what the cluster holds).")
@click.option("--cpus-per-actor", type=float, default=None, help="With --engine ray: CPUs each actor reserves.")
@click.option("--gpus-per-actor", type=float, default=0.0, help="With --engine ray: GPUs each actor reserves.")
def run_cmd(sources: tuple[str, ...], config: str | None, output: str | None, heatmap: bool, save_maps: bool,
            crops: bool, fmt: str, resume: bool, overwrite: bool, fail_fast: bool, workers: int | None,
            threads: int | None, batch_size: int, max_memory: str | None, max_pixels: int | None,
            print_config: bool, quiet: bool, engine: str, ray_address: str | None, actors: str | None,
            cpus_per_actor: float | None, gpus_per_actor: float, **options: Any) -> None:
    """Detect objects in images: files, folders (recursive), glob patterns, @list.txt, or - (stdin)."""
    from .config import ConfigError, toml_value
    from .presets import resolve_config

    arch = options.pop("arch")
    if arch is not None:
        if options["model"] is not None and options["model"] != arch:
            raise click.UsageError("--arch and --model name different models")
        options["model"] = arch
    classes = [c for c in options.pop("classes")] + [p for p in options.pop("positive")]
    options["classes"] = classes or None
    if max_memory is not None:
        options["max_memory_mb"] = _parse_mib(max_memory)
    try:
        cfg = resolve_config(config, **options)
    except (ConfigError, TypeError) as exc:
        raise click.UsageError(str(exc)) from None
    if print_config:
        for key, value in cfg.to_dict().items():
            if value is not None:
                click.echo(f"{key} = {toml_value(value)}")
        return
    if not sources:
        raise click.UsageError("no SOURCES given (image files, folders, glob patterns, @list.txt or -)")
    for flag, on in (("--heatmap", heatmap), ("--save-maps", save_maps), ("--crops", crops), ("--resume", resume),
                     ("--overwrite", overwrite)):
        if on and not output:
            raise click.UsageError(f"{flag} needs -o/--output DIR")
    if resume and overwrite:
        raise click.UsageError("--resume and --overwrite exclude each other")
    if batch_size < 1 or (workers is not None and workers < 0) or (threads is not None and threads < 1):
        raise click.UsageError("--batch-size and --threads must be >= 1, --workers >= 0")
    from pathlib import Path

    from .io.images import DEFAULT_MAX_PIXELS
    from .runner import RunOptions

    n_workers = 1 if workers is None else workers
    opts = RunOptions(
        output=Path(output) if output else None, heatmap=heatmap, save_maps=save_maps, crops=crops, format=fmt,
        resume=resume, overwrite=overwrite, fail_fast=fail_fast, workers=n_workers, batch_size=batch_size,
        max_pixels=max_pixels if max_pixels is not None else DEFAULT_MAX_PIXELS, quiet=quiet, engine=engine,
    )
    if engine == "ray":
        opts.ray = _ray_options(ray_address, actors, cpus_per_actor, gpus_per_actor, threads)
    sys.exit(_run(sources, cfg, opts, threads))


def _ray_options(address: str | None, actors: str | None, cpus: float | None, gpus: float,
                 threads: int | None) -> Any:
    """``--engine ray``'s options, checked (``--actors`` is ``N`` or ``MIN-MAX``)."""
    from .engines.ray import RayOptions

    counts = None
    if actors is not None:
        lo, _, hi = actors.partition("-")
        try:
            counts = (int(lo), int(hi or lo))
        except ValueError:
            raise click.UsageError(f"--actors: expected N or MIN-MAX, got {actors!r}") from None
        if not 1 <= counts[0] <= counts[1]:
            raise click.UsageError(f"--actors: expected 1 <= MIN <= MAX, got {actors!r}")
    if (cpus is not None and cpus <= 0) or gpus < 0:
        raise click.UsageError("--cpus-per-actor must be > 0 and --gpus-per-actor >= 0")
    return RayOptions(address=address, actors=counts, cpus_per_actor=cpus, gpus_per_actor=gpus, threads=threads)


def _parse_mib(text: str) -> int:
    """``512``, ``512M``, ``2G``, ``2GiB`` -> MiB."""
    t = text.strip().upper().removesuffix("IB").removesuffix("B")
    mult = {"K": 1 / 1024, "M": 1, "G": 1024, "T": 1024 * 1024}.get(t[-1:], None)
    try:
        value = float(t[:-1]) * mult if mult is not None else float(t)
    except ValueError:
        raise click.UsageError(f"--max-memory: expected a size such as 512M or 2G, got {text!r}") from None
    return max(0, int(value))


def _engine_detector(cfg: Any, engine: str) -> Any:
    """The driver's detector: for ``--engine ray`` built where Ray is checked first (a one-line error without
    it) and on the CPU (the actors detect, on the configured device)."""
    from .detector import Detector

    if engine != "ray":
        return Detector(cfg)
    from .engines.ray import require_ray
    from .runner import driver_detector

    require_ray()
    return driver_detector(cfg)


def _run(sources: tuple[str, ...], cfg: Any, opts: Any, threads: int | None) -> int:
    import torch

    from .engines.ray import RayEngineError
    from .runner import BatchRunner, OutputDirError, read_sources
    from .threads import default_num_threads

    # OpenMP's wait policy was set when the fcndetect package was imported, before torch (fcndetect.threads)
    torch.set_num_threads(threads or default_num_threads(workers=opts.workers))
    try:
        paths = read_sources(sources)
        detector = _engine_detector(cfg, opts.engine)
        runner = BatchRunner(detector, opts)
        summary = runner.run(paths)
    except (OutputDirError, RayEngineError) as exc:
        _err(f"error: {exc}")
        return EXIT_USAGE
    except (FileNotFoundError, KeyError, ValueError) as exc:
        raise click.UsageError(str(exc).strip("'\"")) from None
    if summary.interrupted:
        _err("interrupted: rerun with --resume to finish" if opts.output else "interrupted")
        return EXIT_INTERRUPTED
    _err(
        f"{summary.n_images} image(s), {summary.n_detections} detection(s), {summary.n_failed} failed input(s)"
        + (f", {summary.n_resumed} already done" if summary.n_resumed else "")
        + (f", {summary.n_inputs - len(summary.records)} not processed" if len(summary.records) < summary.n_inputs
           else "")
        + f" in {summary.seconds:.1f} s [model {cfg.chain}, threshold {cfg.threshold}]",
        opts.quiet,
    )
    if summary.n_inputs == 0:
        _err("error: no input images")
        return EXIT_FAILED
    return EXIT_FAILED if summary.n_failed or len(summary.records) < summary.n_inputs else EXIT_OK


@cli.command("eval")
@click.argument("inputs", nargs=-1, required=True)
@click.option("-a", "--annotations", multiple=True, required=True,
              help="Ground truth (repeatable): imglab XML, text, COCO JSON, FDDB, WIDER, VOC XML/folder.")
@click.option("--format", "gt_format", default=None, help="Ground-truth format (default: detected from the file).")
@click.option("--iou", "ious", multiple=True, type=float, help="IoU threshold(s) for a match (default 0.5).")
@click.option("--report", type=click.Path(dir_okay=False), default=None, help="Write the JSON report here.")
@click.option("--plot", type=click.Path(dir_okay=False), default=None, help="Write PR and ROC-style curves (PNG).")
@click.option("-m", "--model", default=None, help="Model, when INPUTS are images.")
@click.option("-c", "--config", "config", default=None, help="Preset name or TOML file, when INPUTS are images.")
@click.option("-t", "--threshold", type=float, default=None, help="Detection threshold, when INPUTS are images.")
@click.option("--min-size", type=float, default=None, help="Smallest object side, when INPUTS are images.")
@_checkpoint_options
@click.option("-q", "--quiet", is_flag=True, help="No table on stderr.")
def eval_cmd(inputs: tuple[str, ...], annotations: tuple[str, ...], gt_format: str | None, ious: tuple[float, ...],
             report: str | None, plot: str | None, quiet: bool, config: str | None, **options: Any) -> None:
    """Score detections against ground truth: an existing detections.jsonl, or a fresh run over images.

    \b
    JSON report on stdout (or --report FILE); a human table on stderr.
    Images are matched to ground truth by relative path, else by file name; an image absent from the
    ground truth has no objects, so its detections are false positives (the report counts these images).
    Detections are ranked by their logit where the records carry one, else by their score; the report
    says which.
    """
    import json

    import numpy as np

    from . import evaluate as ev
    from .io.sinks import atomic_write_text

    gt: dict[str, np.ndarray] = {}
    try:
        for path in annotations:
            gt.update(ev.load_annotations(path, gt_format))
    except (ev.AnnotationError, FileNotFoundError) as exc:
        raise click.UsageError(str(exc)) from None
    if len(inputs) == 1 and inputs[0].endswith((".jsonl", ".json")) and os.path.isfile(inputs[0]):
        try:
            read = ev.read_detections_jsonl(inputs[0])
        except ev.AnnotationError as exc:
            raise click.UsageError(str(exc)) from None
        for image, error in read.errors.items():
            _err(f"warning: {image}: skipped, it failed in the detection run ({error})", quiet)
        dets, ranking = read.detections, read.ranking
    else:
        dets, ranking = _detect_for_eval(inputs, config, options, quiet)
    try:
        keys = ev.match_images(list(dets), list(gt))
        rep = ev.evaluate(dets, gt, iou_thresholds=ious or (0.5,), image_keys=keys, ranking=ranking)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    _err(ev.format_table(rep), quiet)
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


def _detect_for_eval(
    inputs: tuple[str, ...], config: str | None, options: dict[str, Any], quiet: bool
) -> tuple[dict[str, tuple[Any, Any]], str | None]:
    """Detect on ``inputs`` for ``eval``: image -> ``(boxes [D, 4] float64 [x1, y1, x2, y2], ranking keys [D]
    float64)``, and the ranking key's name (``"logit"``, ``"score"``, or None without any detection).

    The arrays hold exactly the numbers a saved record holds (``Detections.to_records()``: its rounded
    ``box``, and its ``logit`` where present, else its ``score``), read by the same code as a saved
    ``detections.jsonl``, so a fresh run and its saved file evaluate identically.
    """
    import numpy as np

    from .config import ConfigError

    from .presets import resolve_config
    from .detector import Detector
    from .evaluate import detections_from_records

    try:
        cfg = resolve_config(config, **{**options, "classes": options.get("classes") or None})
        detector = Detector(cfg)
    except (ConfigError, ValueError, KeyError, FileNotFoundError) as exc:
        raise click.UsageError(str(exc)) from None
    dets: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    ranking: str | None = None
    for result in detector.run(inputs):  # images are matched to ground truth by path suffix, then name
        if result.error is not None:
            _err(f"error: {result.image}: {result.error}", quiet=False)
        elif result.detections is not None:
            boxes, keys, ranking = detections_from_records(result.detections.to_records(), ranking=ranking)
            dets[result.image] = (boxes, keys)
    _err(f"detected with model {cfg.chain}, threshold {cfg.threshold}, "
         f"min_size {cfg.min_size}", quiet)
    return dets, ranking


@cli.command("bench")
@click.argument("image", type=click.Path(dir_okay=False))
@click.option("-m", "--model", default="face", show_default=True,
              help="Model name, torchvision architecture or package.module:factory.")
@_checkpoint_options
@click.option("--scales", default="1", show_default=True, help="Comma-separated pyramid scales.")
@click.option("--batch-size", type=int, default=256, show_default=True, help="Crops per classifier call.")
@click.option("--repeat", type=int, default=3, show_default=True, help="Best of this many timings.")
@click.option("--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
@click.option("--pipeline", is_flag=True,
              help="Instead: where a detection's time goes, step by step (default preset, or --config).")
@click.option("-c", "--config", "config", default=None, help="With --pipeline: the preset or TOML file to time.")
def bench_cmd(image: str, model: str, scales: str, batch_size: int, repeat: int, threads: int | None,
              as_json: bool, pipeline: bool, config: str | None, **checkpoint: Any) -> None:
    """Dense evaluation vs the classifier on every window cropped one by one: speed-up, FLOP ratio,
    GFLOP/s and the largest score difference. With --pipeline: the time of each step of a detection
    (pyramid, resize and network per level, post-processing or a cascade's later stages)."""
    import json

    import torch

    from .bench import bench_dense_vs_crops
    from .io.images import ImageLoadError, load_image
    from .models import load_model

    if threads:
        torch.set_num_threads(threads)
    try:
        scale_list = [float(s) for s in scales.split(",") if s.strip()]
    except ValueError:
        raise click.UsageError(f"--scales: expected comma-separated numbers, got {scales!r}") from None
    try:
        arr = load_image(image)
    except ImageLoadError as exc:
        _err(f"error: {exc}")
        sys.exit(EXIT_FAILED)
    if pipeline:
        _bench_pipeline(arr, config, repeat, as_json)
        return
    try:
        from .config import DetectorConfig

        loaded = load_model(model, **DetectorConfig(model=model, **{**checkpoint, "classes": checkpoint["classes"] or None})
                            .model_options())
        res = bench_dense_vs_crops(loaded, arr, scale_list, batch_size=batch_size, repeat=repeat)
    except (ValueError, KeyError, FileNotFoundError) as exc:
        raise click.UsageError(str(exc).strip("'\"")) from None
    if as_json:
        click.echo(json.dumps(res.to_json()))
        return
    g = loaded.dense.geometry
    click.echo(f"model {res.model}: window {g.window}, stride {g.stride}, image {res.image_size[0]}x{res.image_size[1]}, "
               f"scales {res.scales}, {res.windows} windows, {res.threads} threads")
    click.echo(f"  dense       {res.dense_seconds * 1000:10.1f} ms  {res.dense_flops / 1e9:9.2f} GFLOP  "
               f"{res.dense_gflops_per_s:7.1f} GFLOP/s")
    click.echo(f"  crop-by-crop{res.crops_seconds * 1000:10.1f} ms  {res.crops_flops / 1e9:9.2f} GFLOP  "
               f"{res.crops_gflops_per_s:7.1f} GFLOP/s")
    click.echo(f"  speed-up {res.speedup:.2f}x   FLOP ratio {res.flop_ratio:.2f}x   "
               f"matmul {res.matmul_gflops_per_s:.1f} GFLOP/s (dense reaches {res.dense_gflops_per_s / res.matmul_gflops_per_s:.0%})")
    click.echo(f"  max |score difference| over all windows: {res.max_abs_diff:.2e}")
    if res.max_abs_diff_rf_crops is not None:
        click.echo(f"  ... with {g.receptive_field}px receptive-field crops instead of {g.window}px windows: "
                   f"{res.max_abs_diff_rf_crops:.2e} (the rest is the ceil-mode pooling border of a window crop)")
    elif g.rf_offset < 0:
        click.echo("  (padding: a crop sees zeros at its border where the dense net sees the neighbouring pixels)")


def _bench_pipeline(image: Any, config: str | None, repeat: int, as_json: bool) -> None:
    import json

    from .bench import time_pipeline
    from .config import ConfigError
    from .detector import Detector

    try:
        detector = Detector(config)
    except (ConfigError, ValueError, KeyError, FileNotFoundError) as exc:
        raise click.UsageError(str(exc)) from None
    times = time_pipeline(detector, image, repeat)
    if as_json:
        click.echo(json.dumps(times.to_json()))
        return
    cfg = detector.config
    click.echo(f"pipeline of {cfg.chain}: image {image.shape[1]}x{image.shape[0]}, best of {repeat}")
    for name, seconds in times.steps:
        click.echo(f"  {name:<48s}{seconds * 1000:9.2f} ms")
    click.echo(f"  {'sum of the steps':<48s}{sum(s for _, s in times.steps) * 1000:9.2f} ms")
    click.echo(f"  {'whole detection':<48s}{times.total * 1000:9.2f} ms")
    if times.candidates:
        click.echo("  windows kept: " + ", ".join(f"{n} {k}" for n, k in times.candidates))


@cli.command("models")
@click.option("--geometry", is_flag=True, help="Also build each torchvision architecture to show its stride.")
def models_cmd(geometry: bool) -> None:
    """List the models: built-in face models, and torchvision architectures usable with --model."""
    from .models import list_models, load_model
    from .models.torchvision_models import list_architectures

    rows = []
    for spec in list_models():
        try:
            g = load_model(spec.name).dense.geometry
            stride, rf = str(g.stride), str(g.receptive_field)
        except Exception as exc:  # noqa: BLE001 - listing must not fail on one missing weight file
            stride, rf = "?", f"unavailable: {exc}"
        rows.append((spec.name, str(spec.window), stride, rf, spec.preset, spec.source))
    from .models.custom import BUILTIN_ARCHS

    for name in BUILTIN_ARCHS:
        g = load_model(name, weights="none").dense.geometry
        rows.append((name, str(g.window), str(g.stride), str(g.receptive_field), "custom",
                     "--weights OUT/model.pt from `fcndetect train` (or --config OUT/preset.toml)"))
    for arch in list_architectures():
        stride = rf = "-"
        if geometry:
            try:
                g = load_model(arch.name, weights="none").dense.geometry
                stride, rf = str(g.stride), str(g.receptive_field)
            except Exception as exc:  # noqa: BLE001
                stride, rf = "?", str(exc)
        weights = f"DEFAULT cached: {arch.default_file}" if arch.cached else f"DEFAULT not cached ({arch.default_file})"
        rows.append((arch.name, str(arch.input_size), stride, rf, "imagenet", weights if arch.default_file else "-"))
    header = ("name", "window", "stride", "rf", "preset", "weights")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]
    for r in [header, *rows]:
        click.echo("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1])
    from .config import DetectorConfig, load_preset, preset_names
    from .presets import DEFAULT_PRESET

    cascades = [(name, load_preset(name)) for name in preset_names()]
    cascades = [(name, values) for name, values in cascades if values.get("stages")]
    if cascades:
        click.echo("\ncascade presets (--config NAME; the default is marked *):")
        for name, values in cascades:
            chain = DetectorConfig(**values).chain
            thresholds = [*values.get("stage_thresholds", []), values.get("threshold")]
            mark = "*" if name == DEFAULT_PRESET else " "
            click.echo(f"{mark} {name}: {chain}, thresholds {thresholds}")
    from .convert import UNSUPPORTED_ARCHS

    if UNSUPPORTED_ARCHS:
        click.echo("\nnot convertible: " + ", ".join(sorted(UNSUPPORTED_ARCHS)) + " (see --model NAME for why)")


@cli.command("inspect")
@click.argument("model", required=False)
@_model_options
@click.option("--image-size", default="640x480", show_default=True, help="WxH of the photo whose pyramid is costed.")
@click.option("--json", "as_json", is_flag=True, help="One JSON document instead of the tables.")
def inspect_cmd(model: str | None, config: str | None, image_size: str, as_json: bool, **options: Any) -> None:
    """What a classifier becomes as a dense network: every layer's shape, stride, receptive field and cost,
    each fully-connected layer's in_features and the convolution it became, and the pyramid's cost."""
    import json

    from .inspection import format_report, inspect_config

    try:
        w, h = (int(v) for v in image_size.lower().split("x"))
        if w < 1 or h < 1:
            raise ValueError
    except ValueError:
        raise click.UsageError(f"--image-size must be WxH, e.g. 640x480, got {image_size!r}") from None
    cfg = _model_config(model, config, **options)
    try:
        doc = inspect_config(cfg, (w, h))
    except _model_errors() as exc:
        _model_error(cfg.chain, exc)
    click.echo(json.dumps(doc) if as_json else format_report(doc))


#: detection settings an exported file carries (the network's own settings are in the file already)
_EXPORTED_SETTINGS = ("threshold", "nms", "nms_iou", "min_size", "max_size", "scale_factor", "max_det",
                      "min_neighbors", "regress", "clip", "containment", "rotations", "grayscale")


@cli.command("export")
@click.argument("model", required=False)
@_model_options
@click.option("--format", "fmt", type=click.Choice(["onnx", "torchscript"]), required=True)
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="The file to write.")
def export_cmd(model: str | None, config: str | None, fmt: str, output: str, **options: Any) -> None:
    """Write the dense network (any input size >= the window) as ONNX or TorchScript, with its geometry, class
    names, normalisation and preset in the file's metadata; `run --model FILE.onnx` detects with it."""
    from .export import ExportError, export_metadata, export_model
    from .models import load_model

    cfg = _model_config(model, config, **options)
    if cfg.stages:
        raise click.UsageError(f"{cfg.chain} is a cascade of several networks: export each by name")
    try:
        loaded = load_model(cfg.model, "cpu", **cfg.model_options())
        settings = {k: v for k, v in cfg.to_dict().items() if k in _EXPORTED_SETTINGS and v is not None}
        path = export_model(loaded, output, fmt, settings)
    except (*_model_errors(), ExportError) as exc:
        _model_error(cfg.chain, exc)
    g = loaded.dense.geometry
    _err(f"wrote {path}: {cfg.model} dense network, window {g.window}, stride {g.stride}, outputs "
         f"{', '.join(export_metadata(loaded)['outputs'])}")


@cli.command("train")
@click.option("--positives", "-p", multiple=True, required=True,
              help="Folder of object crops (each image one positive), or an annotation file (any `eval` format). "
                   "Repeatable.")
@click.option("--negatives", "-n", multiple=True, help="Folder, file or glob of images without the object. Repeatable.")
@click.option("-o", "--output", required=True, help="Output folder: model.pt, preset.toml, metrics.jsonl.")
@click.option("--arch", default="tiny", show_default=True, help="tiny, or a torchvision architecture.")
@click.option("--input-size", type=int, default=None, help="Classifier input side (tiny: 34).")
@click.option("--weights", default=None, help="Initial weights: an earlier model.pt (tiny) or an ImageNet state dict.")
@click.option("--epochs", type=int, default=10, show_default=True, help="Epochs per round.")
@click.option("--batch-size", type=int, default=128, show_default=True)
@click.option("--lr", type=float, default=2e-3, show_default=True, help="Adam learning rate (halved each round).")
@click.option("--hard-negative-rounds", type=int, default=2, show_default=True,
              help="Rounds of hard-negative mining after the first round.")
@click.option("--seed", type=int, default=0, show_default=True, help="Same seed and thread count: same model.pt bytes.")
@click.option("--device", default="cpu", show_default=True)
@click.option("--grayscale/--color", "grayscale", default=None,
              help="Train on grayscale windows (default: when any positive is single-channel); the preset then "
                   "converts every input image.")
@click.option("--label", default="object", show_default=True, help="Class name of the detections.")
@click.option("--resume", is_flag=True, help="Continue an interrupted run in OUTPUT from its last completed epoch.")
@click.option("--overwrite", is_flag=True, help="Replace an earlier run's files in OUTPUT.")
def train_cmd(positives: tuple[str, ...], negatives: tuple[str, ...], output: str, arch: str, input_size: int | None,
              weights: str | None, epochs: int, batch_size: int, lr: float, hard_negative_rounds: int, seed: int,
              device: str, grayscale: bool | None, label: str, resume: bool, overwrite: bool) -> None:
    """Train a detector from examples (DDFD's recipe): a classifier on object and background windows, with
    hard-negative mining, written as a preset that `run --config OUT/preset.toml` uses.

    \b
    Exit codes: 0 trained, 2 bad input (nothing trained), 130 interrupted (the last completed epoch is saved;
    --resume continues).
    """
    from .detector import DeviceError
    from .models.torchvision_models import ModelLoadError
    from .train import TrainDataError, TrainError, TrainOptions, train

    opts = TrainOptions(
        positives=list(positives), negatives=list(negatives), output=output, arch=arch, input_size=input_size,
        weights=weights, epochs=epochs, batch_size=batch_size, lr=lr, hard_negative_rounds=hard_negative_rounds,
        seed=seed, device=device, grayscale=grayscale, label=label,
    )
    try:
        train(opts, resume=resume, overwrite=overwrite)
    except (TrainError, TrainDataError, ModelLoadError, DeviceError) as exc:
        _err(f"error: {exc}")
        sys.exit(EXIT_USAGE)
    except KeyboardInterrupt:
        _err(f"interrupted: {output} holds the last completed epoch; continue with --resume")
        sys.exit(EXIT_INTERRUPTED)


def main() -> None:
    """Console-script entry point."""
    try:
        cli.main(prog_name="fcndetect", standalone_mode=True)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except SystemExit as exc:
        engine = sys.modules.get("fcndetect.engines.ray")
        if engine is not None and getattr(engine, "STOPPED_AN_INSTANCE", False):
            # Ray is stopped and every output written: end here, so the exit code is fcndetect's. At interpreter
            # exit, Ray's leftover threads and handlers can replace it (seen: 1 instead of 130 after Ctrl-C).
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        raise


if __name__ == "__main__":  # pragma: no cover
    main()
