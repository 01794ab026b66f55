"""The Ray engine: batch mode on a Ray cluster with Ray Data, giving the local engine's very results.

The driver expands and checks the inputs exactly as the local engine does (``check_regular_file``: a FIFO
is never opened, a folder named ``x.jpg`` is an error); only the inputs that pass go to Ray. A Ray Data
pipeline then reads each file's bytes in tasks pinned to the driver's node (the files the driver checked;
no shared filesystem needed), and a pool of actors, each holding one :class:`~fcndetect.detector.Detector`,
decodes them with :func:`~fcndetect.io.images.decode_image`, detects with ``detect_batch`` and renders the
image's output files with :func:`~fcndetect.runner.render_image_outputs`, as the local engine would. The
driver receives pickled :class:`~fcndetect.detections.Detections` (score maps left out) and encoded files,
and yields :class:`~fcndetect.engines.local.ItemResult` s in input order, so the runner writes every
output itself: same bytes, same resume, same Ctrl-C handling. Object-store URIs (``s3://``, ``gs://``, ...)
are read by the actors through ``pyarrow.fs``.

Ray is imported lazily: the base install does not need it.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import pickle
import queue
import re
import signal
import threading
import time
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..io.images import DEFAULT_MAX_PIXELS, ImageLoadError, check_regular_file, decode_image, read_file_bytes
from ..io.sinks import output_name
from ..io.sources import SourceItem
from .local import ItemResult

if TYPE_CHECKING:
    from ..config import DetectorConfig
    from ..detector import Detector
    from ..runner import RunOptions

__all__ = ["RayOptions", "RayEngineError", "iter_detections_ray", "is_remote_uri", "require_ray", "INSTALL_HINT"]

INSTALL_HINT = "pip install 'fcndetect[ray]'"
#: URI schemes whose paths go to Ray unchecked and are read by the actors (pyarrow.fs reads them).
REMOTE_SCHEMES = ("s3", "gs", "gcs", "abfs", "abfss", "hdfs", "viewfs")
#: CPUs each read task reserves (reading is I/O), and how many run at once.
READ_CPUS, READ_TASKS = 0.25, 2
#: Test hook: an actor appends its process id to this file before each batch (the fault-tolerance test).
PID_FILE_ENV = "FCNDETECT_RAY_PID_FILE"


class RayEngineError(Exception):
    """``--engine ray`` cannot run as asked (Ray missing, a cluster too small for the actors): one line."""


@dataclass(frozen=True)
class RayOptions:
    """Where and how wide the Ray engine runs (see ``fcndetect run --help``).

    Attributes:
        address: ``None`` starts a local Ray instance for the run (and stops it after); ``"auto"`` or
            ``host:port`` joins a running cluster.
        actors: ``(min, max)`` actors; ``None``: as many as the cluster's CPUs (or GPUs) hold.
        cpus_per_actor: CPUs each actor reserves; ``None``: 1 on clusters of 4 CPUs or more, else what
            leaves room for the read tasks.
        gpus_per_actor: GPUs each actor reserves (with ``--device cuda``).
        threads: torch threads per actor; ``None``: its CPU reservation, at least 1.
    """

    address: str | None = None
    actors: tuple[int, int] | None = None
    cpus_per_actor: float | None = None
    gpus_per_actor: float = 0.0
    threads: int | None = None


def is_remote_uri(path: str) -> bool:
    """Whether ``path`` is an object-store URI the actors read themselves (``s3://bucket/key.jpg``)."""
    m = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://", path)
    return m is not None and m.group(1).lower() in REMOTE_SCHEMES


def require_ray() -> Any:
    """The ``ray`` module with Ray Data, or :class:`RayEngineError` naming the install command."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise RayEngineError(f"--engine ray needs Ray Data: {INSTALL_HINT}") from None
    return ray


def driver_detector(config: "DetectorConfig") -> "Detector":
    """The driver's detector: built on the CPU (the driver detects nothing; its node may have no GPU), its
    ``config`` still the one asked for, so ``run.json`` records it and the actors build it."""
    from ..detector import Detector

    detector = Detector(config.replace(device="cpu"))
    detector.config = config
    return detector


# -- cluster sizing ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Plan:
    min_actors: int
    max_actors: int
    cpus: float
    gpus: float
    threads: int


def plan_actors(opts: RayOptions, cluster_cpus: float, cluster_gpus: float) -> _Plan:
    """Actor counts and reservations that fit the cluster beside the read tasks, so the pipeline cannot
    starve (actors holding every CPU while a read task waits for one). Raises :class:`RayEngineError`."""
    free = cluster_cpus - READ_CPUS * READ_TASKS
    if free <= 0:
        raise RayEngineError(f"the Ray cluster has {cluster_cpus:g} CPU(s); the read tasks alone need "
                             f"{READ_CPUS * READ_TASKS:g}")
    cpus = opts.cpus_per_actor
    if cpus is None:
        cpus = 1.0 if cluster_cpus >= 4 else free / max(1, math.floor(cluster_cpus))
    gpus = opts.gpus_per_actor
    fit = math.floor(free / cpus + 1e-9)
    if gpus > 0:
        fit = min(fit, math.floor(cluster_gpus / gpus + 1e-9))
    lo, hi = opts.actors or (max(1, fit), max(1, fit))
    if lo > fit:
        need = f"{lo} actor(s) x {cpus:g} CPU" + (f" and {gpus:g} GPU" if gpus > 0 else "")
        raise RayEngineError(f"{need} do not fit the Ray cluster ({cluster_cpus:g} CPU(s), {cluster_gpus:g} "
                             f"GPU(s), {READ_CPUS * READ_TASKS:g} CPU kept for reading); lower --actors, "
                             "--cpus-per-actor or --gpus-per-actor")
    threads = opts.threads or max(1, math.floor(cpus))
    return _Plan(lo, max(lo, min(hi, fit)), cpus, gpus, threads)


# -- Ray's lifetime and output -----------------------------------------------------------------------

def _quiet_ray_env() -> None:
    """Environment read by Ray at start-up: no log deduplication banner, no usage-stats prompt, no C++ log lines
    on stderr (each can be overridden by setting the variable)."""
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
    # Ray's C++ core worker logs to the driver's stderr (a line per actor start; an actor interrupted by Ctrl-C
    # while loading its model logs a Python traceback); failures reach fcndetect as Python exceptions anyway
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")


def start_ray(ray: Any, address: str | None) -> bool:
    """Connect to Ray (``address``) or start a local instance, keeping stdout clean; returns whether this
    call started it (then :func:`stop_ray` must stop it, also when this call fails or is interrupted). An
    already connected session is reused."""
    if ray.is_initialized():
        return False
    _quiet_ray_env()
    if address is None:  # every process of the local instance inherits this mark (see stop_ray)
        os.environ[_MARK_VAR] = uuid.uuid4().hex
    env_vars = {"PYTHONPATH": _package_parent() + os.pathsep + os.environ.get("PYTHONPATH", "")}
    try:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR,
                 runtime_env={"env_vars": env_vars} if address is None else None)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise RayEngineError(f"cannot {'join the Ray cluster at ' + address if address else 'start Ray'}: "
                             + " ".join(str(exc).split())) from None
    return True


_MARK_VAR = "FCNDETECT_RAY_INSTANCE"


def _marked_pids(mark: str) -> list[int]:
    """Processes (not this one) whose environment holds ``_MARK_VAR=mark``; Linux's /proc, else none."""
    needle = f"{_MARK_VAR}={mark}".encode()
    pids = []
    for d in Path("/proc").iterdir() if Path("/proc/self/environ").exists() else []:
        if d.name.isdigit() and int(d.name) != os.getpid():
            try:
                if needle in (d / "environ").read_bytes().split(b"\0"):
                    pids.append(int(d.name))
            except OSError:
                continue
    return pids


def stop_ray(ray: Any, grace: float = 5.0) -> None:
    """Shut down the Ray instance this run started (its raylet, GCS and workers exit), then end any of its
    processes that outlive the shutdown (after a Ctrl-C, Ray's dashboard agent can): SIGTERM, and SIGKILL
    after ``grace`` seconds."""
    global STOPPED_AN_INSTANCE
    STOPPED_AN_INSTANCE = True
    # a Ray Data thread still running after the shutdown must not start a new local instance (ray.init on
    # first use), whose processes nothing would stop
    with contextlib.suppress(ImportError, AttributeError):
        import ray._private.auto_init_hook as auto_init

        auto_init.enable_auto_connect = False
    logging.disable(logging.CRITICAL)  # Ray Data's threads log errors (with tracebacks) when Ray goes under them
    try:
        ray.shutdown()
        for thread in list(_PUMPS):
            thread.join(timeout=5.0)
            _PUMPS.discard(thread)
    finally:
        logging.disable(logging.NOTSET)
        mark = os.environ.pop(_MARK_VAR, None)
        if mark:
            deadline = time.monotonic() + grace
            sig = signal.SIGTERM
            while pids := _marked_pids(mark):
                for pid in pids:
                    with contextlib.suppress(OSError):
                        os.kill(pid, sig)
                if time.monotonic() > deadline:
                    if sig == signal.SIGKILL:
                        break
                    sig = signal.SIGKILL
                time.sleep(0.1)


def _package_parent() -> str:
    """The folder holding the ``fcndetect`` package, so a local instance's workers import this very code."""
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _data_context(ray: Any) -> None:
    warnings.filterwarnings("ignore", module=r"ray\.")  # advice on pool sizes for tiny inputs, deprecations
    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True
    ctx.enable_progress_bars = False  # the runner's progress on stderr is the only one
    ctx.print_on_execution_start = False
    logging.getLogger("ray").setLevel(logging.ERROR)
    logging.getLogger("ray.data").setLevel(logging.ERROR)


# -- the pipeline's two steps --------------------------------------------------------------------------

def _read_batch(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Read task: the bytes of each local path (URIs are left to the actors), or the read error."""
    data: list[bytes] = []
    errors: list[str] = []
    for path in batch["path"]:
        path = str(path)
        try:
            data.append(b"" if is_remote_uri(path) else read_file_bytes(path))
            errors.append("")
        except ImageLoadError as exc:
            data.append(b"")
            errors.append(exc.reason)
    return {"i": batch["i"], "path": batch["path"], "ext": batch["ext"],
            "data": np.array(data, dtype=object), "error": np.array(errors, dtype=object)}


def _read_remote(path: str) -> bytes:
    """The bytes of an object-store URI, through ``pyarrow.fs`` (installed with Ray Data)."""
    import pyarrow.fs

    try:
        fs, inner = pyarrow.fs.FileSystem.from_uri(path)
        with fs.open_input_stream(inner) as fh:
            return fh.read()
    except (OSError, ValueError) as exc:
        raise ImageLoadError(path, str(exc)) from None


def actor_class(config: "DetectorConfig", max_pixels: int | None, return_maps: bool, render: "RunOptions | None",
                threads: int, pid_file: str | None) -> type:
    """A :class:`DetectActor` bound to the run's settings. Ray Data builds actors without constructor
    arguments, so an actor restarted after a crash never depends on arguments held in the object store."""

    class BoundDetectActor(DetectActor):
        def __init__(self) -> None:
            super().__init__(config, max_pixels, return_maps, render, threads, pid_file)

    return BoundDetectActor


class DetectActor:
    """One Ray actor: loads the model once, then decodes, detects and renders batches of images."""

    def __init__(self, config: "DetectorConfig", max_pixels: int | None, return_maps: bool,
                 render: "RunOptions | None", threads: int, pid_file: str | None) -> None:
        import torch

        from ..detector import Detector

        torch.set_num_threads(threads)
        self.detector = Detector(config)
        self.max_pixels, self.return_maps, self.render, self.pid_file = max_pixels, return_maps, render, pid_file

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.pid_file:
            with open(self.pid_file, "a", encoding="utf-8") as fh:
                fh.write(f"{os.getpid()}\n")
        images: dict[int, np.ndarray] = {}
        errors: dict[int, str] = {}
        for k, (path, data, error) in enumerate(zip(batch["path"], batch["data"], batch["error"])):
            try:
                if error:
                    raise ImageLoadError(str(path), str(error))
                raw = _read_remote(str(path)) if is_remote_uri(str(path)) else bytes(data)
                images[k] = decode_image(raw, str(path), max_pixels=self.max_pixels)
            except ImageLoadError as exc:
                errors[k] = exc.reason
        dets = dict(zip(images, self.detector.detect_batch(list(images.values()), return_maps=self.return_maps)))
        out = [self._result(images.get(k), dets.get(k), errors.get(k), str(batch["ext"][k]))
               for k in range(len(batch["path"]))]
        return {"i": batch["i"], "result": np.array(out, dtype=object)}

    def _result(self, image: np.ndarray | None, dets: Any, error: str | None, ext: str) -> bytes:
        """One image's pickled outcome: detections without score maps, rendered files, or the error."""
        if error is not None or dets is None or image is None:
            return pickle.dumps({"error": error or "not processed"})
        files = None
        if self.render is not None:
            from ..runner import render_image_outputs

            files = render_image_outputs(self.detector, self.render, ext, image, dets)
        return pickle.dumps({"detections": replace(dets, score_maps=None), "files": files})


# -- the driver ------------------------------------------------------------------------------------------

def _driver_check(item: SourceItem) -> str | None:
    """The local engine's checks, in the driver, before any byte goes to Ray: the item's error, if any."""
    if item.error is not None:
        return item.error
    if is_remote_uri(item.path):
        return None
    try:
        check_regular_file(item.path)
    except ImageLoadError as exc:
        return exc.reason
    return None


def _ext(item: SourceItem) -> str:
    return os.path.splitext(output_name(item.path, item.relative, item.root))[1]


def iter_detections_ray(
    detector: "Detector",
    items: list[SourceItem],
    *,
    options: RayOptions | None = None,
    batch_size: int = 1,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    return_maps: bool = False,
    render: "RunOptions | None" = None,
) -> Iterator[ItemResult]:
    """Detect in every item on Ray, lazily, in input order: the same :class:`ItemResult` stream as
    :func:`~fcndetect.engines.local.iter_detections`, with ``files`` rendered by the actors when ``render``
    (the run's options, with ``-o``) is given and ``image`` left ``None``.

    Starts a local Ray instance unless one is connected or ``options.address`` names a cluster, and stops
    the one it started when the iterator ends, fails, is closed or is interrupted.
    """
    opts = options or RayOptions()
    checked = [_driver_check(it) for it in items]
    sent = [k for k, err in enumerate(checked) if err is None]
    if not sent:
        for item, err in zip(items, checked):
            yield ItemResult(item, None, None, err)
        return
    ray = require_ray()
    started = not ray.is_initialized()
    interrupted = threading.Event()
    previous = _hold_sigint(interrupted)
    try:
        # Ray's C++ core worker installs a SIGINT handler of its own while it starts (a Ctrl-C then ends the
        # process with exit code 1): SIGINT stays pending until fcndetect's handler is back
        masked = _mask_sigint(True)
        try:
            start_ray(ray, opts.address)
        finally:
            _hold_sigint(interrupted)
            if masked:
                _mask_sigint(False)
        results = _interruptible(
            _run_pipeline(ray, detector, items, sent, opts, batch_size, max_pixels, return_maps, render), interrupted)
        for k, item in enumerate(items):
            if checked[k] is not None:
                yield ItemResult(item, None, None, checked[k])
                continue
            outcome = pickle.loads(next(results))
            if "error" in outcome:
                yield ItemResult(item, None, None, outcome["error"])
            else:
                yield ItemResult(item, None, outcome["detections"], None, outcome["files"])
    finally:
        try:
            if started:
                stop_ray(ray)
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)


def _hold_sigint(flag: threading.Event) -> Any:
    """While Ray runs, Ctrl-C (SIGINT) only sets ``flag``; :func:`_interruptible` raises
    :class:`KeyboardInterrupt` from fcndetect's own code. An interrupt raised asynchronously inside Ray's code
    can leak a lock (seen: ``logging``'s, in a ``_releaseLock`` whose exception Python ignores) and hang the
    run. Returns the previous handler (``None`` outside the main thread, where nothing is changed)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGINT, lambda signum, frame: flag.set())


def _mask_sigint(block: bool) -> bool:
    """Block (or unblock) SIGINT for the main thread and the threads it starts meanwhile; whether it could."""
    if not hasattr(signal, "pthread_sigmask") or threading.current_thread() is not threading.main_thread():
        return False
    signal.pthread_sigmask(signal.SIG_BLOCK if block else signal.SIG_UNBLOCK, {signal.SIGINT})
    return True


#: whether this process stopped a Ray instance (the console entry point then ends with os._exit)
STOPPED_AN_INSTANCE = False
#: result threads of running pipelines (:func:`stop_ray` waits for them while logging is off)
_PUMPS: set[threading.Thread] = set()


def _interruptible(source: Iterator[bytes], interrupted: threading.Event, poll: float = 0.1) -> Iterator[bytes]:
    """``source`` iterated in a daemon thread, its items handed over through a queue; raises
    :class:`KeyboardInterrupt` here, between items, once ``interrupted`` is set (:func:`_hold_sigint`). Errors of
    ``source`` are re-raised here."""
    handoff: queue.Queue[tuple[str, Any]] = queue.Queue()  # unbounded: the pump never blocks on a stopped reader

    def pump() -> None:
        try:
            for item in source:
                handoff.put(("item", item))
            handoff.put(("end", None))
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            handoff.put(("error", exc))

    thread = threading.Thread(target=pump, name="fcndetect-ray-results", daemon=True)
    _PUMPS.add(thread)
    thread.start()
    while True:
        if interrupted.is_set():
            raise KeyboardInterrupt
        try:
            kind, value = handoff.get(timeout=poll)
        except queue.Empty:
            continue
        if kind == "end":
            return
        if kind == "error":
            raise value
        yield value


def _run_pipeline(ray: Any, detector: "Detector", items: list[SourceItem], sent: list[int], opts: RayOptions,
                  batch_size: int, max_pixels: int | None, return_maps: bool,
                  render: "RunOptions | None") -> Iterator[bytes]:
    """The pickled outcome of each item of ``sent``, in that order."""
    _data_context(ray)
    resources = ray.cluster_resources()
    plan = plan_actors(opts, float(resources.get("CPU", 0)), float(resources.get("GPU", 0)))
    rows = [{"i": n, "path": items[k].path, "ext": _ext(items[k])} for n, k in enumerate(sent)]
    driver_node = ray.get_runtime_context().get_node_id()
    actor = actor_class(detector.config, max_pixels, return_maps, render, plan.threads, os.environ.get(PID_FILE_ENV))
    per_block = max(1, batch_size)  # one block per actor call, so every actor gets work
    ds = ray.data.from_items(rows, override_num_blocks=math.ceil(len(rows) / per_block)).map_batches(
        _read_batch, batch_size=per_block, batch_format="numpy", num_cpus=READ_CPUS,
        compute=ray.data.TaskPoolStrategy(size=READ_TASKS),
        label_selector={"ray.io/node-id": driver_node},  # the node whose files the driver checked
    ).map_batches(
        # Ray Data restarts a dead actor and retries its batch (max_restarts=-1, max_task_retries=-1 are its
        # defaults for actor pools)
        actor, batch_size=per_block, batch_format="numpy", num_cpus=plan.cpus,
        num_gpus=plan.gpus or None,
        compute=ray.data.ActorPoolStrategy(min_size=plan.min_actors, max_size=plan.max_actors),
    )
    pending: dict[int, bytes] = {}
    want = 0
    for row in ds.iter_rows():
        pending[int(row["i"])] = row["result"]
        while want in pending:
            yield pending.pop(want)
            want += 1
    if want != len(sent):
        raise RayEngineError(f"Ray returned {want} of {len(sent)} results")
