"""Batch runs: inputs decoded in background workers, same-size images batched, outputs written atomically,
interrupted runs resumable with identical final outputs.

Output folder layout (``-o DIR``), for an input ``<name>`` (its path inside its source folder, or its file
name; the image's extension is kept, so ``a/x.jpg`` and ``a/x.png`` never collide):

* ``DIR/<name>.json``: the image's record (written last: its presence marks the image complete);
* ``DIR/<name>.annotated<ext>``, and with ``--heatmap`` ``DIR/<name>.heatmap<ext>``;
* ``--save-maps``: ``DIR/<name>.maps/NN.npy`` (``[G, H', W']`` float32 log-odds per pyramid level, per angle of
  ``--rotations``) + ``index.json``;
* ``--crops``: ``DIR/<name>.crops/NNN_<label>.png``;
* ``DIR/detections.jsonl``: every record, in input order; ``--format``: one more combined file;
* ``DIR/run.json``: version, model, weights hash and effective settings; ``--resume`` refuses other settings.

Names (:mod:`fcndetect.io.outdir`): an input whose outputs would land on a run's own file gets ``~2`` (``run``
-> ``run~2.json``), as does a second input of the same name; an over-long name part is shortened with a hash.
Files being written live in ``DIR/.fcndetect.tmp/`` (all a run deletes of what it did not finish), and
``DIR/.fcndetect.lock`` keeps a second run out (the command line takes it before the model loads).

A video gives one record per processed frame and its own files (:mod:`fcndetect.video_runner`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import os
import shutil
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from ._version import __version__
from .detector import Detector, remote_detect_batch
from .engines.base import DetectorWork, Engine, EngineOptions, ItemResult, error_reason
from .engines.registry import DEFAULT_ENGINE, make_engine
from .io.anonymize import DEFAULT_HOLD, DEFAULT_MARGIN
from .io.combined import CombinedOutputs, run_files
from .io.images import DEFAULT_MAX_PIXELS
from .io.outdir import OWN_ENTRIES, FolderInUse, OutputLock, clear_scratch, output_names, scratch_dir
from .io.progress import Progress, printable
from .io.render import RenderOptions, render_image_outputs
from .io.sinks import SINKS, atomic_write_bytes, atomic_write_text, dumps_record, output_name, result_record
from .io.sources import SourceItem, expand_sources
from .io.video import is_video_path
from .video_runner import VideoJob, completed_video, input_records, video_refusal

if TYPE_CHECKING:
    from .config import DetectorConfig
    from .engines.ray import RayOptions

__all__ = ["RunOptions", "RunSummary", "BatchRunner", "OutputDirError", "read_sources", "driver_detector", "engine_detector",
           "maps_info",
           "FORMATS"]

FORMATS = tuple(SINKS)  # the built-in formats (fcndetect.io.combined registers them): the registry's names


class _WriteError(Exception):
    """Writing one output file failed: ``cannot write PATH: REASON`` (the path the run meant to write, and
    the file the system complained about when it is another one, e.g. a file ``out/sub`` for ``out/sub/x``)."""

    def __init__(self, path: Path, exc: OSError) -> None:
        reason = exc.strerror or type(exc).__name__
        culprit = exc.filename if isinstance(exc.filename, str) else None
        if culprit and os.path.basename(culprit).endswith(".tmp"):
            culprit = None  # the temporary file: the target names it well enough
        detail = f" ({culprit})" if culprit and os.path.abspath(culprit) != os.path.abspath(path) else ""
        super().__init__(" ".join(f"cannot write {path}: {reason}{detail}".split()))


class OutputDirError(Exception):
    """The output folder cannot be used as asked (non-empty without --resume/--overwrite, other settings)."""


def read_sources(args: Iterable[str], stdin: TextIO | None = None) -> list[str]:
    """Expand ``@list.txt`` (one path a line; blank lines and ``#`` comments skipped) and ``-`` (paths on
    stdin) among the command-line sources; other arguments are kept as they are."""
    out: list[str] = []
    for a in args:
        if a == "-":
            stream = stdin if stdin is not None else sys.stdin
            out.extend(line.rstrip("\r\n") for line in stream if line.strip())
        elif a.startswith("@") and len(a) > 1:
            path = Path(a[1:])
            try:
                lines = path.read_text(encoding="utf-8").splitlines()
            except OSError as exc:
                raise OutputDirError(f"{path}: cannot read list file ({exc.strerror or exc})") from None
            out.extend(line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#"))
        else:
            out.append(a)
    return out


@dataclass
class RunOptions:
    """Options of a batch run (see ``fcndetect run --help``)."""

    output: Path | None = None
    heatmap: bool = False
    save_maps: bool = False
    crops: bool = False
    format: str = "jsonl"
    resume: bool = False
    overwrite: bool = False
    fail_fast: bool = False
    workers: int = 1
    batch_size: int = 1
    max_pixels: int | None = DEFAULT_MAX_PIXELS
    quiet: bool = False
    progress: bool | None = None  # None: a bar when stderr is a terminal
    engine: str = DEFAULT_ENGINE  # a name of fcndetect.engines.registry (recorded in run.json; --resume ignores it)
    ray: "RayOptions | None" = None  # the Ray engine: where and how wide (None: its defaults)
    anonymize: str | None = None  # "blur", "pixelate" or "solid": also <name>.anonymized<ext> (videos: .mp4)
    anonymize_margin: float = DEFAULT_MARGIN
    anonymize_hold: int = DEFAULT_HOLD  # videos: frames a track's region is held before and after it
    vid_stride: int = 1  # videos: detect in frames 0, N, 2N, ...

    def make_engine(self) -> Engine:
        """The engine :attr:`engine` names (:func:`fcndetect.engines.registry.make_engine`)."""
        return make_engine(self.engine, self.ray)

    def render_options(self, detector: Any) -> RenderOptions:
        """What each image's files are, for :func:`~fcndetect.io.render.render_image_outputs`."""
        return RenderOptions(heatmap=self.heatmap, save_maps=self.save_maps, crops=self.crops,
                             maps_info=maps_info(detector) if self.save_maps else {}, anonymize=self.anonymize,
                             anonymize_margin=self.anonymize_margin, anonymize_hold=self.anonymize_hold)

    def output_settings(self) -> dict[str, Any]:
        """The options that change what is written (recorded in run.json, checked by --resume); video and
        anonymisation options only when set (a folder written before they existed still resumes)."""
        out = {"heatmap": self.heatmap, "save_maps": self.save_maps, "crops": self.crops, "format": self.format,
               "max_pixels": self.max_pixels}
        if self.anonymize is not None:
            out.update(anonymize=self.anonymize, anonymize_margin=self.anonymize_margin)
            if self.anonymize_hold != DEFAULT_HOLD:
                out["anonymize_hold"] = self.anonymize_hold
        if self.vid_stride != 1:
            out["vid_stride"] = self.vid_stride
        return out


@dataclass
class RunSummary:
    n_inputs: int = 0
    n_images: int = 0
    n_failed: int = 0
    n_detections: int = 0
    n_resumed: int = 0
    seconds: float = 0.0
    interrupted: bool = False
    #: records written (stdout, detections.jsonl), resumed ones included (a video gives one per frame)
    n_records: int = 0
    #: inputs whose records are all out, resumed ones included; fewer than ``n_inputs`` when the run stopped
    #: early (--fail-fast, Ctrl-C)
    n_inputs_done: int = 0
    #: video frame records without error (``n_images`` counts images only)
    n_frames: int = 0


class BatchRunner:
    """Runs a :class:`~fcndetect.detector.Detector` over many inputs and writes every output.

    Args:
        detector: the detector.
        options: output and throughput options.
        out: where JSON Lines (or ``--format`` text without ``-o``) go (stdout).
        err: where progress, per-input errors and the summary go (stderr).
    """

    def __init__(self, detector: Any, options: RunOptions, out: TextIO | None = None, err: TextIO | None = None):
        self.detector = detector
        self.opt = options
        self.out = out if out is not None else sys.stdout
        self.err = err if err is not None else sys.stderr

    # -- output folder -----------------------------------------------------------------------------
    def run_info(self) -> dict[str, Any]:
        cfg = self.detector.config
        return {
            "fcndetect": __version__,
            "model": cfg.model,
            "weights_sha256": self.detector.weights_fingerprint(),
            "classes": list(self.detector.class_names),
            # every setting, device and memory budget included: both can change the last printed digits
            "settings": cfg.to_dict(),
            "outputs": self.opt.output_settings(),
            "engine": self.opt.engine,
        }

    def _prepare_output(self) -> dict[str, Any] | None:
        root = self.opt.output
        if root is None:
            return None
        info = self.run_info()
        if root.exists() and not root.is_dir():
            raise OutputDirError(f"{root}: exists and is not a folder")
        entries = [e for e in root.iterdir() if e.name not in OWN_ENTRIES] if root.is_dir() else []
        run_json = root / "run.json"
        if entries and self.opt.resume:
            if not run_json.is_file():
                raise OutputDirError(f"{root}: --resume needs a folder written by fcndetect (no run.json)")
            try:
                previous = json.loads(run_json.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise OutputDirError(f"{run_json}: unreadable ({exc})") from None
            if _without_engine(previous) != _without_engine(info):  # any engine resumes any engine's run
                raise OutputDirError(
                    f"{root}: --resume refused: run.json was written with other settings "
                    f"({'; '.join(_differences(previous, info))}); use the same options, or --overwrite"
                )
        elif entries and self.opt.overwrite:
            if run_json.is_file():  # our own folder: start clean so no stale file survives
                for e in entries:
                    shutil.rmtree(e) if e.is_dir() and not e.is_symlink() else e.unlink()
        elif entries:
            raise OutputDirError(f"{root}: output folder is not empty; use --resume or --overwrite")
        clear_scratch(root)  # files a killed run of this folder left unfinished (the lock keeps others out)
        atomic_write_text(run_json, json.dumps(info, indent=2, sort_keys=True) + "\n", scratch_dir(root))
        return info

    @property
    def _root(self) -> Path:
        if self.opt.output is None:
            raise RuntimeError("no output folder (-o) was given")
        return self.opt.output

    def _json_path(self, name: str) -> Path:
        return self._root / (name + ".json")

    def _write_image_outputs(self, name: str, record: dict[str, Any], files: list[tuple[str, bytes]]) -> None:
        """Write an image's rendered files (``name + suffix``), then its JSON record, which marks completion.
        On failure, the files already written for it are removed (best effort) and the error is raised."""
        root = self._root
        todo = [(root / (name + suffix), data) for suffix, data in files]
        todo.append((self._json_path(name), (dumps_record(record) + "\n").encode("utf-8")))  # last: completion
        written: list[Path] = []
        try:
            for path, data in todo:
                try:
                    atomic_write_bytes(path, data, scratch_dir(root))
                except OSError as exc:
                    raise _WriteError(path, exc) from None
                written.append(path)
        except BaseException:
            for path in written:
                with contextlib.suppress(OSError):
                    path.unlink()
            raise

    def _record(self, item: SourceItem, name: str, res: ItemResult) -> dict[str, Any]:
        """One input's record, its files written (with ``-o``): any failure of this input alone (the engine's,
        rendering, writing any of its files) becomes the record's ``error``."""
        if res.error is not None or res.detections is None:
            return result_record(item.path, None, res.error or "not processed")
        record = result_record(item.path, res.detections, None)
        if self.opt.output is None:
            return record
        width, height = res.detections.image_size
        try:
            files = self._files(name, res)
        except Exception as exc:  # noqa: BLE001 - this input's failure
            return result_record(item.path, None, error_reason(exc, "rendering failed"), width, height)
        try:
            self._write_image_outputs(name, record, files)
        except _WriteError as exc:  # an OSError: a file where a folder should be, a full disk, ...
            return result_record(item.path, None, str(exc), width, height)
        except Exception as exc:  # noqa: BLE001 - anything else while writing this input's files
            return result_record(item.path, None, error_reason(exc, "cannot write its outputs"), width, height)
        return record

    def _engine(self, engine: Engine, items: list[SourceItem], need_maps: bool) -> Iterator[ItemResult]:
        """``engine``'s results for ``items``, in their order."""
        opt = self.opt
        options = EngineOptions(batch_size=opt.batch_size, max_pixels=opt.max_pixels, return_maps=need_maps,
                                workers=opt.workers, vid_stride=opt.vid_stride)
        if engine.renders_where_it_detects and opt.output is not None:
            render = functools.partial(render_image_outputs, options=opt.render_options(self.detector))
            options = dataclasses.replace(options, render=render)
        work = DetectorWork(self.detector.detect_batch, self.detector.config, remote_detect_batch)
        return engine.results(work, items, options)

    def _files(self, name: str, res: ItemResult) -> list[tuple[str, bytes]]:
        """An image's rendered files: as the engine rendered them, else rendered here from its pixels."""
        if res.files is not None:
            return res.files
        if res.image is None or res.detections is None:
            raise RuntimeError(f"{name}: the engine returned neither the image nor its rendered files")
        return render_image_outputs(res.image, res.detections, os.path.splitext(name)[1],
                                    self.opt.render_options(self.detector))

    def _completed(self, name: str) -> dict[str, Any] | list[dict[str, Any]] | None:
        if is_video_path(name):
            return completed_video(self._root, name)
        path = self._json_path(name)
        if not path.is_file():
            return None
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def _error(self, path: str, reason: str) -> None:
        if not self.opt.quiet:
            self.err.write(f"error: {printable(path)}: {printable(reason)}\n")
            self.err.flush()

    # -- the run -------------------------------------------------------------------------------------
    def run(self, sources: Iterable[str]) -> RunSummary:
        """Process every input; returns the counts. Raises :class:`OutputDirError` before any work.

        Records reach stdout and the combined files as they come, in input order (the engines yield in input
        order; a resumed input's record is read again from its JSON file when its turn comes), so memory does
        not grow with the number of inputs."""
        opt = self.opt
        engine = opt.make_engine()
        engine.check_config(self.detector.config)  # before any output is written
        items = list(expand_sources(sources, *engine.uri_support(), videos=True))
        refusal = video_refusal(items, engine, opt.format)
        if refusal is not None:
            raise OutputDirError(refusal)
        lock = OutputLock(opt.output) if opt.output is not None and not OutputLock.held(opt.output) else None
        try:
            if lock is not None:  # a library caller's run (the command line locks before the model loads)
                lock.acquire()
            self._prepare_output()
        except BaseException as exc:
            if lock is not None:
                lock.release()
            if isinstance(exc, FolderInUse):
                raise OutputDirError(str(exc)) from None
            if isinstance(exc, OSError):  # the output folder itself (unreadable, not creatable, run.json not writable)
                raise OutputDirError(f"{opt.output}: cannot use as the output folder ({error_reason(exc)})") from None
            raise
        try:
            return self._process(engine, items)
        finally:
            if opt.output is not None:
                clear_scratch(opt.output)  # a write cut short (Ctrl-C, an error) leaves no partial file
            if lock is not None:
                lock.release()

    def _process(self, engine: Engine, items: list[SourceItem]) -> RunSummary:
        """:meth:`run`'s work, once the output folder is prepared (and locked)."""
        opt = self.opt
        summary = RunSummary(n_inputs=len(items))
        start = time.perf_counter()
        names = output_names([output_name(it.path, it.relative, it.root) for it in items],
                             run_files() if opt.output is not None else ())
        resumed = {k for k, (item, name) in enumerate(zip(items, names))
                   if opt.output is not None and opt.resume and item.error is None
                   and self._completed(name) is not None}
        summary.n_resumed = len(resumed)
        tty = bool(getattr(self.err, "isatty", lambda: False)())
        show = (not opt.quiet) if opt.progress is None else opt.progress
        progress = Progress(len(items), show and len(items) > 1, tty, self.err)
        stream_jsonl = opt.format == "jsonl" or opt.output is not None
        has_video = any(it.error is None and is_video_path(it.path) for it in items)
        try:
            combined = CombinedOutputs(opt.output, opt.format, list(self.detector.class_names), self.out,
                                       has_video) if opt.output is not None or not stream_jsonl else None
        except OSError as exc:  # names the file (CombinedOutputs)
            raise OutputDirError(f"cannot write {exc.filename or opt.output}: {exc.strerror or error_reason(exc)}") \
                from None

        def emit(k: int, record: dict[str, Any]) -> None:
            """Write input ``k``'s next record (an image's one, a video's frames as they come)."""
            if stream_jsonl:
                self.out.write(dumps_record(record) + "\n")
                self.out.flush()
            if combined is not None:
                try:
                    combined.add(record, names[k])
                except OSError as exc:  # a combined file cannot be written (a full disk): the run stops
                    raise OutputDirError(f"cannot write {exc.filename or opt.output}: "
                                         f"{exc.strerror or error_reason(exc)}") from None
            summary.n_records += 1
            summary.n_failed += bool(record.get("error"))
            summary.n_frames += record.get("frame") is not None and not record.get("error")
            summary.n_detections += len(record.get("detections") or [])

        render = opt.render_options(self.detector)

        need_maps = opt.heatmap or opt.save_maps
        done, failed, stopped = summary.n_resumed, 0, False
        results: Iterator[ItemResult] | None = None
        published = False
        try:
            results = self._engine(engine, [it for k, it in enumerate(items) if k not in resumed] if resumed else items,
                                   need_maps)
            for k, item in enumerate(items):
                if k in resumed:
                    for record in input_records(self._completed(names[k])
                                                or result_record(item.path, None, "its record vanished")):
                        emit(k, record)
                    summary.n_inputs_done += 1
                    continue
                res = None if stopped else next(results, None)
                if res is None:
                    break
                if res.video is not None:  # its frames stream out (emit) as they are decoded and detected
                    job = VideoJob(opt.output, render, functools.partial(emit, k), show, tty, self.err)
                    records = job.run(item, names[k], res.video)
                else:
                    records = [self._record(item, names[k], res)]
                    emit(k, records[0])
                summary.n_inputs_done += 1
                error = None  # the input's last error
                for record in records:
                    if record.get("error"):
                        error = record["error"]
                        failed += 1
                        self._error(item.path, str(error))
                done += 1
                progress.update(done, failed)
                stopped = opt.fail_fast and bool(error)
            summary.seconds = time.perf_counter() - start
            if summary.n_inputs_done == len(items) and combined is not None:
                try:
                    combined.commit()
                except OSError as exc:  # names the file (CombinedOutputs)
                    raise OutputDirError(f"cannot write {exc.filename or opt.output}: "
                                         f"{exc.strerror or error_reason(exc)}") from None
                published = True
        except KeyboardInterrupt:
            summary.interrupted = True
        finally:
            close = getattr(results, "close", None)
            if close is not None:
                close()  # an engine's resources (a Ray instance) go now, also after --fail-fast or Ctrl-C
            progress.close()
            if combined is not None and not published:
                combined.discard()  # combined files only for a complete run: --resume finishes them
        summary.seconds = time.perf_counter() - start
        summary.n_images = summary.n_records - summary.n_failed - summary.n_frames  # processed (not --fail-fast's rest)
        return summary


def maps_info(detector: Any) -> dict[str, Any]:
    """What a saved maps' ``index.json`` says of ``detector``'s dense model: its name, which stage it is, its
    geometry (plain JSON values, so the Ray actors' renderer needs no detector)."""
    return {"model": detector.dense_model.spec.name,
            "stage": "the first stage of a cascade (its only dense one)" if detector.stage_models
            else "the only stage",
            "geometry": detector.geometry.to_dict()}


def driver_detector(config: "DetectorConfig") -> Detector:
    """The driver's detector for an engine that detects elsewhere (Ray): built on the CPU (the driver detects
    nothing; its node may have no GPU), its ``config`` still the one asked for, so ``run.json`` records it and
    the workers build it."""
    detector = Detector(config.replace(device="cpu"))
    detector.config = config
    return detector


def engine_detector(config: "DetectorConfig", engine: Engine) -> Detector:
    """The driver's detector for ``engine``, checked to be available first (a one-line error without its
    optional package): ``Detector(config)`` where the engine detects in this process, else
    :func:`driver_detector`."""
    engine.check_available()
    return Detector(config) if engine.detects_in_driver else driver_detector(config)


def _differences(old: Any, new: Any, prefix: str = "") -> list[str]:
    """``"key: old -> new"`` for every leaf that differs between two JSON objects (``a.b`` for nesting)."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for key in sorted(set(old) | set(new)):
            out += _differences(old.get(key), new.get(key), f"{prefix}{key}.")
        return out
    if old == new:
        return []
    return [f"{prefix.rstrip('.')}: {json.dumps(old)} -> {json.dumps(new)}"]


def _without_engine(info: Any) -> Any:
    """run.json's content less the engine, which never changes what is written."""
    return {k: v for k, v in info.items() if k != "engine"} if isinstance(info, dict) else info
