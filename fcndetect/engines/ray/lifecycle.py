"""Ray's lifetime for one run: import, start (or join), stop, and SIGINT handling while Ray runs.

A local instance started for a run is marked (an environment variable every one of its processes inherits),
so :func:`stop_ray` can end whatever outlives ``ray.shutdown()``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from .options import INSTALL_HINT, RayEngineError

__all__ = ["require_ray", "start_ray", "stop_ray", "hold_sigint", "mask_sigint", "PUMPS"]

_MARK_VAR = "FCNDETECT_RAY_INSTANCE"
#: whether this process stopped a Ray instance (the console entry point then ends with os._exit)
STOPPED_AN_INSTANCE = False
#: result threads of running pipelines (:func:`stop_ray` waits for them while logging is off)
PUMPS: set[threading.Thread] = set()


def require_ray() -> Any:
    """The ``ray`` module with Ray Data, or :class:`RayEngineError` naming the install command."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise RayEngineError(f"--engine ray needs Ray Data: {INSTALL_HINT}") from None
    return ray


def _quiet_ray_env() -> None:
    """Environment read by Ray at start-up: no log deduplication banner, no usage-stats prompt, no C++ log lines
    on stderr (each can be overridden by setting the variable)."""
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
    # Ray's C++ core worker logs to the driver's stderr (a line per actor start; an actor interrupted by Ctrl-C
    # while loading its model logs a Python traceback); failures reach fcndetect as Python exceptions anyway
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")


def _package_parent() -> str:
    """The folder holding the ``fcndetect`` package, so a local instance's workers import this very code."""
    here = os.path.abspath(__file__)  # .../fcndetect/engines/ray/lifecycle.py
    for _ in range(4):
        here = os.path.dirname(here)
    return here


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
        for thread in list(PUMPS):
            thread.join(timeout=5.0)
            PUMPS.discard(thread)
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


def hold_sigint(flag: threading.Event) -> Any:
    """While Ray runs, Ctrl-C (SIGINT) only sets ``flag``; the pipeline raises :class:`KeyboardInterrupt` from
    fcndetect's own code. An interrupt raised asynchronously inside Ray's code can leak a lock (seen:
    ``logging``'s, in a ``_releaseLock`` whose exception Python ignores) and hang the run. Returns the previous
    handler (``None`` outside the main thread, where nothing is changed)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGINT, lambda signum, frame: flag.set())


def mask_sigint(block: bool) -> bool:
    """Block (or unblock) SIGINT for the main thread and the threads it starts meanwhile; whether it could."""
    if not hasattr(signal, "pthread_sigmask") or threading.current_thread() is not threading.main_thread():
        return False
    signal.pthread_sigmask(signal.SIG_BLOCK if block else signal.SIG_UNBLOCK, {signal.SIGINT})
    return True
