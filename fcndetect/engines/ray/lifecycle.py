"""Ray's lifetime for one run: import, start (or join), stop, and SIGINT handling while Ray runs.

A local instance started for a run is marked (an environment variable every one of its processes inherits),
so :func:`stop_ray` can end whatever outlives ``ray.shutdown()``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .options import INSTALL_HINT, RayEngineError

__all__ = ["require_ray", "start_ray", "stop_ray", "hold_sigint", "mask_sigint", "is_loopback_address", "PUMPS",
           "AUTH_MODE_VAR"]

_MARK_VAR = "FCNDETECT_RAY_INSTANCE"
#: Ray binds its services to the node address it registers; ``0`` keeps a loopback node on 127.0.0.1
_CLUSTER_VAR = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
#: ``token``: the driver authenticates with the cluster's token (Ray 2.60)
AUTH_MODE_VAR = "RAY_AUTH_MODE"
#: whether this process stopped a Ray instance (the console entry point then ends with os._exit)
STOPPED_AN_INSTANCE = False
#: result threads of running pipelines (:func:`stop_ray` waits for them while logging is off)
PUMPS: set[threading.Thread] = set()


def require_ray() -> Any:
    """The ``ray`` module with Ray Data, or :class:`RayEngineError` naming the install command."""
    _quiet_ray_env()  # before Ray's first import: its C++ logging reads the level then
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


def is_loopback_address(address: str | None) -> bool:
    """Whether ``address`` (``HOST:PORT``) names this machine's loopback (``127.x.x.x``, ``localhost``, ``::1``):
    such a cluster is joined as a loopback node, and Ray must not swap the host for the machine's address."""
    if not address or address == "auto":
        return False
    host = address.rsplit(":", 1)[0].strip("[]") if ":" in address else address
    return host == "localhost" or host == "::1" or host.startswith("127.")


@contextlib.contextmanager
def _loopback_only(ray: Any) -> Iterator[None]:
    """While Ray starts or joins a loopback node: every process it spawns binds 127.0.0.1 and registers it.

    Ray swaps ``127.0.0.1`` for the machine's network address unless ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``,
    which Ray reads once, when it is imported: the variable is set for the processes spawned meanwhile (they
    import Ray afresh, the raylet's workers too) and Ray's constant is set in this process; both are
    restored afterwards (a later run in this process may join a real cluster)."""
    constants = getattr(getattr(ray, "_private", None), "ray_constants", None)
    old_env = os.environ.get(_CLUSTER_VAR)
    old_const = getattr(constants, "ENABLE_RAY_CLUSTER", None)
    os.environ[_CLUSTER_VAR] = "0"
    if old_const is not None:
        constants.ENABLE_RAY_CLUSTER = False  # type: ignore[union-attr]
    try:
        yield
    finally:
        if old_env is None:
            os.environ.pop(_CLUSTER_VAR, None)
        else:
            os.environ[_CLUSTER_VAR] = old_env
        if old_const is not None:
            constants.ENABLE_RAY_CLUSTER = old_const  # type: ignore[union-attr]


def _auth_mode() -> str:
    return os.environ.get(AUTH_MODE_VAR, "").strip().lower()


def _auth_line(address: str) -> str:
    """What to set when ``address`` refused this driver's (missing) token."""
    if _auth_mode() == "token":
        return (f"cannot join the Ray cluster at {address}: it refused this driver's token; give the cluster's "
                "token in ~/.ray/auth_token, RAY_AUTH_TOKEN_PATH or RAY_AUTH_TOKEN")
    return (f"cannot join the Ray cluster at {address}: it requires token authentication; set "
            f"{AUTH_MODE_VAR}=token and give its token (~/.ray/auth_token, RAY_AUTH_TOKEN_PATH or RAY_AUTH_TOKEN)")


@contextlib.contextmanager
def _stderr_silenced() -> Iterator[None]:
    """File descriptor 2 points to /dev/null meanwhile (C++ code writes there, not to ``sys.stderr``)."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _check_join(address: str) -> None:
    """Raise :class:`RayEngineError` at once when nothing listens at ``HOST:PORT`` (``ray.init`` would retry
    for minutes) or the cluster there refuses this driver's token (``ray.init`` would retry for 20 s and then
    say only that it could not connect). The token check uses Ray's GCS client (a private API: skipped when
    it is not there)."""
    host, _, port = address.rpartition(":")
    if address == "auto" or not host or not port.isdigit():
        return
    try:  # nothing listening: say so now (Ray would retry for minutes)
        socket.create_connection((host.strip("[]"), int(port)), timeout=10).close()
    except OSError as exc:
        raise RayEngineError(f"cannot join the Ray cluster at {address}: "
                             f"{exc.strerror or type(exc).__name__}") from None
    try:
        from ray._raylet import GcsClient  # type: ignore[attr-defined]
        from ray.exceptions import AuthenticationError
    except ImportError:
        return
    try:
        with _stderr_silenced():  # Ray's C++ client logs each refused attempt there
            GcsClient(address=address)
    except AuthenticationError:
        raise RayEngineError(_auth_line(address)) from None
    except Exception:  # noqa: BLE001 - anything else: ray.init says what is wrong
        return


def start_ray(ray: Any, address: str | None) -> bool:
    """Connect to Ray (``address``) or start a local instance, keeping stdout clean; returns whether this
    call started it (then :func:`stop_ray` must stop it, also when this call fails or is interrupted). An
    already connected session is reused.

    Without ``address``, a new local instance starts (never one that ``ray start`` left running, which
    ``ray.init()`` would join, nor a dead one it would wait for), every service bound to 127.0.0.1. A cluster
    on the loopback (``127.0.0.1:PORT``) is joined from 127.0.0.1; one that requires token authentication
    from a driver without ``RAY_AUTH_MODE=token`` gives one line naming it."""
    if ray.is_initialized():
        return False
    _quiet_ray_env()
    local = address is None
    if local:  # every process of the local instance inherits this mark (see stop_ray)
        os.environ[_MARK_VAR] = uuid.uuid4().hex
    env_vars = {"PYTHONPATH": _package_parent() + os.pathsep + os.environ.get("PYTHONPATH", ""),
                _CLUSTER_VAR: "0"}
    loopback = local or is_loopback_address(address)
    kwargs: dict[str, Any] = {"_node_ip_address": "127.0.0.1"} if loopback else {}
    if local:
        kwargs["runtime_env"] = {"env_vars": env_vars}
    try:
        with _loopback_only(ray) if loopback else contextlib.nullcontext():
            if not local:
                _check_join(address)  # type: ignore[arg-type]
            ray.init(address="local" if local else address, include_dashboard=False, log_to_driver=False,
                     logging_level=logging.ERROR, **kwargs)
    except RayEngineError:
        raise
    except Exception as exc:  # ConnectionError, RuntimeError, ValueError, ray.exceptions.AuthenticationError
        if type(exc).__name__ == "AuthenticationError" and address:
            raise RayEngineError(_auth_line(address)) from None
        if not isinstance(exc, (ConnectionError, RuntimeError, ValueError)):
            raise
        hint = "" if local or _auth_mode() == "token" else \
            f" (if it uses token authentication, set {AUTH_MODE_VAR}=token)"
        raise RayEngineError(f"cannot {'join the Ray cluster at ' + address if address else 'start Ray'}: "
                             + " ".join(str(exc).split()) + hint) from None
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
    _quiet_ray_threads()
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


def _quiet_ray_threads() -> None:
    """From now on, an exception that ends one of Ray's threads (Ray Data's executor, iterators, prefetchers)
    is not printed: once this run stops Ray under them, they fail with ``RaySystemError: Ray has not been
    started yet``, a traceback on stderr after the run's own last line. Other threads' exceptions are
    printed as before."""
    previous = threading.excepthook
    if getattr(previous, "_fcndetect_quiet", False):
        return

    def hook(args: Any) -> None:
        if args.exc_type is not None and getattr(args.exc_type, "__module__", "").startswith("ray"):
            return
        previous(args)

    hook._fcndetect_quiet = True  # type: ignore[attr-defined]
    threading.excepthook = hook


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
