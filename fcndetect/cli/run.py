"""``fcndetect run``: detect objects in images and write JSON Lines (and, with ``-o``, files)."""

from __future__ import annotations

import errno
import os
import sys
from typing import Any

import click

from ..engines.registry import DEFAULT_ENGINE, engine_names
from .common import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, err, one_line, os_error_line, setting_options

RUN_EPILOG = """\b
Output: one JSON line per image (a video: per processed frame, with "frame" and "time") on stdout:
  {"image", "width", "height", "error",
   "detections": [{"box": [x1, y1, x2, y2], "score", "logit", "label", "landmarks", "angle", "quad"}]}
  box: image pixels with continuous edges ([0, 0, W, H] is the whole image).
  logit: the ranking key, the class's log-odds (never saturates); score = sigmoid(logit), which
    --threshold compares.
  landmarks: only for models with a landmark head (O-Net: the default cascade, face): five [x, y]
    points, left eye, right eye, nose, left and right mouth corner.
  angle, quad: only with --rotations: the rotation (degrees, counter-clockwise) under which the object
    was upright, and the rotated window's four corners [[x, y] x 4]; box is their axis-aligned box.
  error: null, or why this input failed (also one stderr line naming it).
Exit codes: 0 all inputs processed, 1 some inputs failed, 2 usage error, 130 interrupted.
"""


@click.command("run", epilog=RUN_EPILOG)
@click.argument("sources", nargs=-1)
@setting_options("model")
@click.option("--arch", default=None, help="Alias of --model for a torchvision architecture.")
@click.option("--positive", multiple=True, help="Class index (or indices, comma-separated) to detect.")
@click.option("-c", "--config", "config", default=None, help="Preset name or TOML file; flags override it.")
@setting_options("detection", "runtime")
@click.option("-o", "--output", "output", type=click.Path(file_okay=False), default=None,
              help="Write <name>.json, an annotated image, detections.jsonl and run.json into DIR.")
@click.option("--heatmap", is_flag=True, help="With -o: also write the score map overlaid on each image.")
@click.option("--save-maps", is_flag=True, help="With -o: also write the raw score maps (.npy per level).")
@click.option("--crops", is_flag=True, help="With -o: also write each detected region as an image.")
@click.option("--anonymize", type=click.Choice(["blur", "pixelate", "solid"]), default=None,
              help="With -o: also write <name>.anonymized.<ext> (videos: .mp4), every detection's region "
                   "blurred, pixelated or filled.")
@click.option("--anonymize-margin", type=float, default=None,
              help="Grow each anonymised region by this fraction of its box on each side (default 0.3: the "
                   "whole face, forehead and ears, for the face presets).")
@click.option("--anonymize-hold", type=int, default=None,
              help="Videos: keep each face's region anonymised N frames after its last detection and before its "
                   "first (default 8; gaps of up to 2N frames are filled; at most 60).")
@click.option("--vid-stride", type=int, default=1, show_default=True,
              help="Videos: detect in frames 0, N, 2N, ... (the anonymised video covers the frames between where each "
                   "face's track is).")
@click.option("--format", "fmt", multiple=True, metavar="FORMAT[,FORMAT...]",
              help="jsonl, coco, csv, fddb or wider: more combined outputs (with -o; repeat the option or separate "
                   "with commas: --format coco,csv), or what stdout gets (without -o: one format). Default: jsonl.")
@click.option("--resume", is_flag=True, help="Continue an interrupted run into the same -o DIR.")
@click.option("--overwrite", is_flag=True, help="Allow -o into a non-empty folder (an old run's files go).")
@click.option("--fail-fast", is_flag=True, help="Stop at the first input that fails.")
@click.option("--workers", type=int, default=None, help="Background image-decoding threads (default 1).")
@click.option("--threads", type=int, default=None, help="torch intra-op threads (default: cores / workers).")
@click.option("--batch-size", type=int, default=1, show_default=True, help="Same-size images per network call.")
@click.option("--max-pixels", type=int, default=None, help="Refuse larger images (decompression-bomb guard).")
@click.option("--print-config", is_flag=True, help="Print the effective settings (TOML) and exit.")
@click.option("-q", "--quiet", is_flag=True, help="No progress, errors or summary on stderr.")
@click.option("--engine", type=click.Choice(engine_names()), default=DEFAULT_ENGINE, show_default=True,
              help="local: this machine; ray: Ray Data actors on a Ray cluster (pip install 'fcndetect[ray]').")
@click.option("--ray-address", default=None, help="With --engine ray: 'auto' or HOST:PORT of a running cluster "
              "(default: a local Ray instance for this run).")
@click.option("--actors", default=None, help="With --engine ray: N actors, or MIN-MAX (default: what the cluster holds).")
@click.option("--cpus-per-actor", type=float, default=None, help="With --engine ray: CPUs each actor reserves.")
@click.option("--gpus-per-actor", type=float, default=0.0, help="With --engine ray: GPUs each actor reserves.")
def run_cmd(sources: tuple[str, ...], config: str | None, output: str | None, heatmap: bool, save_maps: bool,
            crops: bool, anonymize: str | None, anonymize_margin: float | None, anonymize_hold: int | None,
            vid_stride: int, fmt: tuple[str, ...], resume: bool, overwrite: bool, fail_fast: bool, workers: int | None,
            threads: int | None, batch_size: int, max_pixels: int | None,
            print_config: bool, quiet: bool, engine: str, ray_address: str | None, actors: str | None,
            cpus_per_actor: float | None, gpus_per_actor: float, **options: Any) -> None:
    """Detect objects in images and videos: files, folders (recursive), glob patterns, @list.txt, or - (stdin)."""
    from ..config import ConfigError, toml_value
    from ..presets import resolve_config

    arch = options.pop("arch")
    if arch is not None:
        if options["model"] is not None and options["model"] != arch:
            raise click.UsageError("--arch and --model name different models")
        options["model"] = arch
    classes = [*(options.pop("classes") or ()), *options.pop("positive")]
    options["classes"] = classes or None
    try:
        cfg = resolve_config(config, **options)
    except (ConfigError, TypeError) as exc:
        raise click.UsageError(str(exc)) from None
    if print_config:
        click.echo(f"# models: {cfg.chain}")
        for key, value in cfg.to_dict().items():
            if value is not None:
                click.echo(f"{key} = {toml_value(value)}")
        return
    formats = parse_formats(fmt, output is not None)
    from ..io.combined import sink_names

    for src in sources:  # `--format coco csv`: csv would be read as an input
        if src in sink_names() and not os.path.lexists(src):
            raise click.UsageError(f"{src!r} is a format name, not a file: to ask for several formats, write "
                                   f"--format coco,csv or --format coco --format csv")
    if not sources:
        raise click.UsageError("no SOURCES given (image files, folders, glob patterns, @list.txt or -)")
    for flag, on in (("--heatmap", heatmap), ("--save-maps", save_maps), ("--crops", crops), ("--resume", resume),
                     ("--overwrite", overwrite), ("--anonymize", anonymize), ("--anonymize-margin",
                                                                              anonymize_margin is not None)):
        if on and not output:
            raise click.UsageError(f"{flag} needs -o/--output DIR")
    if resume and overwrite:
        raise click.UsageError("--resume and --overwrite exclude each other")
    check_run_limits({"--batch-size": batch_size, "--workers": workers, "--threads": threads,
                      "--vid-stride": vid_stride, "--max-pixels": max_pixels, "--anonymize-margin": anonymize_margin,
                      "--anonymize-hold": anonymize_hold, "--cpus-per-actor": cpus_per_actor,
                      "--gpus-per-actor": gpus_per_actor})
    if anonymize_margin is not None and anonymize is None:
        raise click.UsageError("--anonymize-margin needs --anonymize")
    if anonymize_hold is not None and anonymize is None:
        raise click.UsageError("--anonymize-hold needs --anonymize")
    from pathlib import Path

    from ..io.images import DEFAULT_MAX_PIXELS
    from ..runner import RunOptions

    n_workers = 1 if workers is None else workers
    opts = RunOptions(
        output=Path(output) if output else None, heatmap=heatmap, save_maps=save_maps, crops=crops, format=formats,
        resume=resume, overwrite=overwrite, fail_fast=fail_fast, workers=n_workers, batch_size=batch_size,
        max_pixels=max_pixels if max_pixels is not None else DEFAULT_MAX_PIXELS, quiet=quiet, engine=engine,
        anonymize=anonymize, vid_stride=vid_stride,
    )
    if anonymize_margin is not None:
        opts.anonymize_margin = anonymize_margin
    if anonymize_hold is not None:
        opts.anonymize_hold = anonymize_hold
    opts.ray = _ray_options(ray_address, actors, cpus_per_actor, gpus_per_actor, threads)  # other engines ignore it
    sys.exit(_locked_run(sources, cfg, opts, threads))


def _locked_run(sources: tuple[str, ...], cfg: Any, opts: Any, threads: int | None) -> int:
    """:func:`_run` holding the output folder's lock, taken before the model loads: a second run on a folder
    in use is refused in one line naming the process that holds it (exit 2)."""
    if opts.output is None:
        return _run(sources, cfg, opts, threads)
    from ..io.outdir import FolderInUse, OutputLock

    lock = OutputLock(opts.output)
    try:
        lock.acquire()
    except FolderInUse as exc:
        err(f"error: {one_line(str(exc))}")
        return EXIT_USAGE
    except OSError as exc:
        culprit = f": {exc.filename}" if exc.filename and str(exc.filename) != str(opts.output) else ""
        err(f"error: {one_line(f'{opts.output}: cannot use as the output folder ({exc.strerror or exc}{culprit})')}")
        return EXIT_USAGE
    try:
        if lock.stale:
            err(f"note: {one_line(f'{opts.output}: took over the lock of process {lock.stale}, which ended without releasing it')}",
                opts.quiet)
        return _run(sources, cfg, opts, threads)
    finally:
        lock.release()


def parse_formats(values: tuple[str, ...], to_folder: bool) -> str:
    """``--format`` values (repeated, comma-separated) as one canonical string: registered formats
    (:data:`fcndetect.io.sinks.SINKS`), each once, in registration order, ``jsonl`` dropped beside others
    (with ``-o`` it is always written). Without an output folder, stdout takes one format: several are a
    usage error."""
    from ..io.combined import sink_names

    known = sink_names()
    names = [v.strip() for value in values for v in value.split(",") if v.strip()] or ["jsonl"]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise click.UsageError(f"--format: unknown format {unknown[0]!r}; choose from {', '.join(known)}")
    chosen = [f for f in known if f in names]
    if len(chosen) > 1 and not to_folder:
        raise click.UsageError(f"--format: stdout takes one format, got {', '.join(chosen)}; several need -o DIR")
    return ",".join(f for f in chosen if f != "jsonl" or len(chosen) == 1)


def _ray_options(address: str | None, actors: str | None, cpus: float | None, gpus: float,
                 threads: int | None) -> Any:
    """``--engine ray``'s options, checked (``--actors`` is ``N`` or ``MIN-MAX``)."""
    from ..engines.ray import RayOptions

    counts = None
    if actors is not None:
        lo, _, hi = actors.partition("-")
        try:
            counts = (int(lo), int(hi or lo))
        except ValueError:
            raise click.UsageError(f"--actors: expected N or MIN-MAX, got {actors!r}") from None
        if not 1 <= counts[0] <= counts[1]:
            raise click.UsageError(f"--actors: expected 1 <= MIN <= MAX, got {actors!r}")
    return RayOptions(address=address, actors=counts, cpus_per_actor=cpus, gpus_per_actor=gpus, threads=threads)


#: The run options' accepted values (inclusive): each bounds the threads, memory or work a run may take.
RUN_LIMITS: dict[str, tuple[float, float]] = {
    "--batch-size": (1, 4096), "--workers": (0, 256), "--threads": (1, 1024), "--vid-stride": (1, 1_000_000),
    "--max-pixels": (1, 1 << 40), "--anonymize-margin": (0, 10), "--anonymize-hold": (0, 60),
    "--cpus-per-actor": (1e-4, 1 << 16),
    "--gpus-per-actor": (0, 1 << 10),
}


def check_run_limits(values: dict[str, float | None]) -> None:
    """A usage error (one line naming the option) for any given value outside :data:`RUN_LIMITS`."""
    import math

    for flag, value in values.items():
        if value is None:
            continue
        lo, hi = RUN_LIMITS[flag]
        if not (math.isfinite(value) and lo <= value <= hi):
            raise click.UsageError(f"{flag} must be in [{_num(lo)}, {_num(hi)}], got {value:g}")


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:g}"




def summary_line(summary: Any, chain: str, threshold: float) -> str:
    """The run's one-line summary for stderr (``summary``: a :class:`fcndetect.runner.RunSummary`)."""
    not_done = summary.n_inputs - summary.n_inputs_done
    return (f"{summary.n_images} image(s), "
            + (f"{summary.n_frames} video frame(s), " if summary.n_frames else "")
            + f"{summary.n_detections} detection(s), {summary.n_failed} failed input(s)"
            + (f", {summary.n_resumed} already done" if summary.n_resumed else "")
            + (f", {not_done} not processed" if not_done > 0 else "")
            + f" in {summary.seconds:.1f} s [model {chain}, threshold {threshold:.6g}]")


def _run(sources: tuple[str, ...], cfg: Any, opts: Any, threads: int | None) -> int:
    import torch

    from ..engines.ray import RayEngineError
    from ..runner import BatchRunner, OutputDirError, engine_detector, read_sources
    from ..threads import default_num_threads

    # OpenMP's wait policy was set when the fcndetect package was imported, before torch (fcndetect.threads)
    torch.set_num_threads(threads or default_num_threads(workers=opts.workers))
    try:
        paths = read_sources(sources)
        detector = engine_detector(cfg, opts.make_engine())
        runner = BatchRunner(detector, opts)
        summary = runner.run(paths)
    except (OutputDirError, RayEngineError) as exc:
        err(f"error: {one_line(str(exc))}")
        return EXIT_USAGE
    except (FileNotFoundError, KeyError, ValueError) as exc:
        raise click.UsageError(str(exc).strip("'\"")) from None
    except OSError as exc:  # the output folder or a combined file cannot be written: the whole run stops
        if exc.errno == errno.EPIPE:
            raise  # stdout closed early (`| head`): the group ends quietly
        err(f"error: {os_error_line(exc)}")
        return EXIT_USAGE
    if summary.interrupted:
        err("interrupted: rerun with --resume to finish" if opts.output else "interrupted")
        return EXIT_INTERRUPTED
    err(summary_line(summary, cfg.chain, cfg.threshold), opts.quiet)
    if summary.n_inputs == 0:
        err("error: no input images")
        return EXIT_FAILED
    return EXIT_FAILED if summary.n_failed or summary.n_records < summary.n_inputs else EXIT_OK


def ray_stopped_an_instance() -> bool:
    """Whether this process started and stopped a local Ray instance (the engine's module says so)."""
    return any(getattr(module, "STOPPED_AN_INSTANCE", False)
               for name, module in list(sys.modules.items())
               if name == "fcndetect.engines.ray" or name.startswith("fcndetect.engines.ray."))
