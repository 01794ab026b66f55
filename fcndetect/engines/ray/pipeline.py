"""The Ray engine's pipeline: batch mode on a Ray cluster with Ray Data, giving the local engine's very results.

The driver expands and checks the inputs exactly as the local engine does (``check_regular_file``: a FIFO
is never opened, a folder named ``x.jpg`` is an error); only the inputs that pass go to Ray. A Ray Data
pipeline then reads each file's bytes in tasks pinned to the driver's node (the files the driver checked;
no shared filesystem needed), and a pool of actors (:mod:`.actor`), each holding one ``detect_batch``,
decodes them with :func:`~fcndetect.io.images.decode_image`, detects, and renders the image's output files
with the run's ``render`` callable, as the local engine would. The driver receives pickled
:class:`~fcndetect.detections.Detections` (score maps left out) and encoded files, and yields
:class:`~fcndetect.engines.base.ItemResult` s in input order, so the runner writes every output itself: same
bytes, same resume, same Ctrl-C handling. Object-store URIs (``s3://``, ``gs://``, ...) are read by the
actors through ``pyarrow.fs``. The model's files (``files``: weights, an exported model) are read once by the
driver and reach the actors through Ray's object store, so no node needs the driver's filesystem.

Memory in the driver stays bounded: blocks hold up to :data:`BLOCK_ROWS` images (:func:`rows_per_block`), the
results wait in a queue of :data:`HANDOFF_AHEAD`, and Ray Data keeps the input order, so the reorder buffer
holds only what is in flight.

Ray is imported lazily: the base install does not need it.
"""

from __future__ import annotations

import logging
import math
import os
import pickle
import queue
import signal
import threading
import warnings
from collections.abc import Callable, Generator, Iterator, Mapping
from typing import Any

import numpy as np

from ...io.images import ImageLoadError, check_regular_file, read_file_bytes
from ...io.sources import SourceItem
from ..base import DetectBatch, EngineOptions, ItemResult, error_reason, item_ext
from .actor import actor_class
from .lifecycle import PUMPS, hold_sigint, mask_sigint, require_ray, start_ray, stop_ray
from .options import PID_FILE_ENV, READ_CPUS, READ_TASKS, RayEngineError, RayOptions, is_remote_uri
from .plan import plan_actors

__all__ = ["iter_detections_ray", "rows_per_block", "BLOCK_ROWS", "HANDOFF_AHEAD"]

#: Most images per Ray Data block (and actor call); whole ``--batch-size`` batches beyond it.
BLOCK_ROWS = 32
#: Most results the driver holds between Ray and the writer.
HANDOFF_AHEAD = 64


def _data_context(ray: Any) -> None:
    warnings.filterwarnings("ignore", module=r"ray\.")  # advice on pool sizes for tiny inputs, deprecations
    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True
    ctx.enable_progress_bars = False  # the runner's progress on stderr is the only one
    ctx.print_on_execution_start = False
    logging.getLogger("ray").setLevel(logging.ERROR)
    logging.getLogger("ray.data").setLevel(logging.ERROR)


def _read_batch(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Read task: the bytes of each local path (URIs are left to the actors), or the read error."""
    data: list[bytes] = []
    errors: list[str] = []
    for path in batch["path"]:
        path = str(path)
        try:
            data.append(b"" if is_remote_uri(path) else read_file_bytes(path))
            errors.append("")
        except Exception as exc:  # noqa: BLE001 - ImageLoadError, MemoryError, ...: this input's error
            data.append(b"")
            errors.append(error_reason(exc))
    return {"i": batch["i"], "path": batch["path"], "ext": batch["ext"],
            "data": np.array(data, dtype=object), "error": np.array(errors, dtype=object)}


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


def iter_detections_ray(
    make_detect_batch: Callable[..., DetectBatch],
    items: list[SourceItem],
    options: EngineOptions | None = None,
    ray_options: RayOptions | None = None,
    files: Mapping[str, str] | None = None,
) -> Iterator[ItemResult]:
    """Detect in every item on Ray, lazily, in input order: the same :class:`ItemResult` stream as
    :func:`~fcndetect.engines.local.iter_detections`, with ``files`` rendered by the actors when
    ``options.render`` is given and ``image`` left ``None``.

    Args:
        make_detect_batch: builds the ``detect_batch`` callable, once in each actor; it must pickle (a
            module-level function, or a :func:`functools.partial` of one). Called without arguments, or,
            with ``files``, with key -> path of the actor's copy of each file.
        items: the inputs.
        options: batch size, pixel limit, score maps, ``render`` (must pickle too).
        ray_options: where and how wide to run.
        files: files of the driver's disk the actors need (key -> path; the model's files): read once here,
            sent through Ray's object store, written by each actor into a private temporary folder. No
            shared filesystem is needed.

    Starts a local Ray instance unless one is connected or ``ray_options.address`` names a cluster, and stops
    the one it started when the iterator ends, fails, is closed or is interrupted.
    """
    opts = options or EngineOptions()
    ropts = ray_options or RayOptions()
    checked = [_driver_check(it) for it in items]
    sent = [k for k, err in enumerate(checked) if err is None]
    if not sent:
        for item, err in zip(items, checked):
            yield ItemResult(item, None, None, err)
        return
    ray = require_ray()
    started = not ray.is_initialized()
    interrupted = threading.Event()
    previous = hold_sigint(interrupted)
    results: Generator[bytes, None, None] | None = None
    try:
        # Ray's C++ core worker installs a SIGINT handler of its own while it starts (a Ctrl-C then ends the
        # process with exit code 1): SIGINT stays pending until fcndetect's handler is back
        masked = mask_sigint(True)
        try:
            start_ray(ray, ropts.address)
        finally:
            hold_sigint(interrupted)
            if masked:
                mask_sigint(False)
        shipped = _put_files(ray, files) if files is not None else None
        results = _interruptible(_run_pipeline(ray, make_detect_batch, items, sent, opts, ropts, shipped),
                                 interrupted)
        taken = 0
        for k, item in enumerate(items):
            if checked[k] is not None:
                yield ItemResult(item, None, None, checked[k])
                continue
            outcome = pickle.loads(_next_result(results))
            taken += 1
            if taken == len(sent):
                # wait for the pipeline's own end: Ray Data's iterator, still winding its execution down in the
                # result thread, must not run into the shutdown of Ray (the core worker then ends the process)
                for _extra in results:
                    raise RayEngineError("Ray returned more results than inputs")
            if "error" in outcome:
                yield ItemResult(item, None, None, outcome["error"])
            else:
                yield ItemResult(item, None, outcome["detections"], None, outcome["files"])
    finally:
        try:
            if results is not None:
                results.close()  # its result thread stops handing over
            if started:
                stop_ray(ray)
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)


def _next_result(results: Iterator[bytes]) -> bytes:
    """The next pickled outcome; a failure of Ray itself (an actor that cannot build its model, a lost node)
    becomes a :class:`RayEngineError` whose line is the failure's own last line (Ray's message carries the
    remote traceback)."""
    try:
        return next(results)
    except StopIteration:
        raise RayEngineError("Ray returned fewer results than inputs") from None
    except Exception as exc:
        if not type(exc).__module__.startswith("ray"):
            raise
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        raise RayEngineError(f"the Ray engine failed: {lines[-1] if lines else type(exc).__name__}") from None


def _put_files(ray: Any, files: Mapping[str, str]) -> dict[str, tuple[str, Any]]:
    """Each file read once and put in Ray's object store: key -> (file name, object reference). The driver
    holds the references for the whole run (an actor restarted late still finds them)."""
    out: dict[str, tuple[str, Any]] = {}
    for key, path in files.items():
        try:
            with open(path, "rb") as fh:
                data = fh.read()
        except OSError as exc:
            raise RayEngineError(f"{path}: cannot read the model's file ({exc.strerror or exc})") from None
        out[key] = (os.path.basename(path), ray.put(data))
        del data
    return out


def _interruptible(source: Iterator[bytes], interrupted: threading.Event, poll: float = 0.1,
                   ahead: int = HANDOFF_AHEAD) -> Generator[bytes, None, None]:
    """``source`` iterated in a daemon thread, its items handed over through a queue of at most ``ahead``
    items (the driver holds no more results than that while it writes); raises :class:`KeyboardInterrupt`
    here, between items, once ``interrupted`` is set (:func:`hold_sigint`). Errors of ``source`` are re-raised
    here. The pump stops when this generator is closed, so it never waits forever on a stopped reader."""
    handoff: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=ahead)
    stopped = threading.Event()

    def put(entry: tuple[str, Any]) -> bool:
        while not stopped.is_set():
            try:
                handoff.put(entry, timeout=poll)
                return True
            except queue.Full:
                continue
        return False

    def pump() -> None:
        try:
            for item in source:
                if not put(("item", item)):
                    return
            put(("end", None))
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            put(("error", exc))

    thread = threading.Thread(target=pump, name="fcndetect-ray-results", daemon=True)
    PUMPS.add(thread)
    thread.start()
    try:
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
    finally:
        stopped.set()


def rows_per_block(n_rows: int, batch_size: int, max_actors: int) -> int:
    """Images per Ray Data block (and per actor call): at least ``batch_size``, so one block feeds whole
    network calls; about four blocks per actor for short runs, so every actor gets work; at most
    :data:`BLOCK_ROWS` (rounded to whole batches), so the blocks in flight stay small. Never one block per
    image whatever ``--batch-size`` is: Ray Data's per-block bookkeeping in the driver would grow with it."""
    per = max(batch_size, math.ceil(n_rows / max(1, 4 * max_actors)))
    per = min(per, max(batch_size, BLOCK_ROWS))
    return max(1, math.ceil(per / batch_size) * batch_size) if per > batch_size else max(1, batch_size)


def _run_pipeline(ray: Any, make_detect_batch: Callable[..., DetectBatch], items: list[SourceItem],
                  sent: list[int], opts: EngineOptions, ropts: RayOptions,
                  files: dict[str, tuple[str, Any]] | None) -> Iterator[bytes]:
    """The pickled outcome of each item of ``sent``, in that order."""
    _data_context(ray)
    resources = ray.cluster_resources()
    plan = plan_actors(ropts, float(resources.get("CPU", 0)), float(resources.get("GPU", 0)))
    rows = [{"i": n, "path": items[k].path, "ext": item_ext(items[k])} for n, k in enumerate(sent)]
    driver_node = ray.get_runtime_context().get_node_id()
    actor = actor_class(make_detect_batch, opts.max_pixels, opts.return_maps, opts.render, plan.threads,
                        os.environ.get(PID_FILE_ENV), files, max(1, opts.batch_size))
    per_block = rows_per_block(len(rows), max(1, opts.batch_size), plan.max_actors)  # one block per actor call
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
    # the reorder buffer: Ray Data keeps the order (preserve_order), so it holds at most what is in flight
    pending: dict[int, bytes] = {}
    want = 0
    for row in ds.iter_rows():
        pending[int(row["i"])] = row["result"]
        while want in pending:
            yield pending.pop(want)
            want += 1
    if want != len(sent):
        raise RayEngineError(f"Ray returned {want} of {len(sent)} results")
