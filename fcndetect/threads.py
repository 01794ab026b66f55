"""Thread defaults that degrade gracefully when the machine is busy.

torch runs its CPU kernels on an OpenMP thread team (GNU libgomp in the PyPI wheels: see
``torch.__config__.parallel_info()``). Between parallel regions libgomp's idle threads spin (300 000 times)
before they sleep. On a quiet machine that saves a wake-up per region; when another process wants a core, a
spinning thread burns the time slice the thread with work needs, and a run gets 2-35x slower
(``benchmarks/threads.py``, 2 cores, beside one busy process or the other tests of a shared machine).

fcndetect therefore sets ``GOMP_SPINCOUNT=1000`` (:data:`ENV_DEFAULTS`: idle threads spin briefly, then
sleep) unless the user has set any of :data:`WAIT_VARIABLES`. Measured on 2 cores, each configuration quiet
and beside one busy process in one run (``benchmarks/threads.py``, median of 7-9):

- the default cascade on the astronaut: 0.029-0.031 s quiet (libgomp's default: 0.028 s), 1.64-1.65x
  slower beside a busy process (libgomp's default: 1.78-1.89x); ``OMP_WAIT_POLICY=PASSIVE`` was 1.05x
  under load but 1.3x slower when quiet (0.037-0.038 s): the cascade's many small kernels pay a wake-up each;
- the dense O-Net: 0.264 s quiet (libgomp's default 0.274 s, passive 0.305 s), 1.89x beside a busy process
  (libgomp's default 2.88x in that run, passive 1.53x);
- longer spins collapse: 3 000 is 2.2x, 10 000 is 2.6-3.7x. One thread never slows down but is 1.4x
  slower on the quiet machine for the dense O-Net.

OpenMP reads the variable once, when torch is first imported, so:

- the ``fcndetect`` command sets it before it imports torch (importing the package sets it);
- ``import fcndetect`` sets it too, which takes effect when torch has not been imported yet: import
  fcndetect before torch, or export the variable yourself. Processes started afterwards inherit it;
- once torch is loaded it changes nothing (:func:`wait_policy_applies` says so). An API user who imported
  torch first is told once, by a :class:`RuntimeWarning` when the first ``Detector`` is built
  (:func:`warn_if_late`), how to get the policy.

``import fcndetect`` sets nothing else in ``os.environ``: only ``GOMP_SPINCOUNT=1000``, and only when none of
:data:`WAIT_VARIABLES` is set.

The thread count stays one per CPU this process may run on (:func:`available_cpus`: its CPU affinity and,
under cgroup v2, its CPU quota; not ``os.cpu_count()``, which counts the whole machine in a container or a
limited CI job). The CLI divides them among ``--workers``: on a quiet machine that is the fastest, and with the
short spin it no longer collapses under load.
"""

from __future__ import annotations

import math
import os
import sys
import warnings
from collections.abc import MutableMapping
from pathlib import Path

__all__ = ["ENV_DEFAULTS", "WAIT_VARIABLES", "apply_env_defaults", "available_cpus", "default_num_threads",
           "wait_policy_applies", "warn_if_late"]

#: Set when none of :data:`WAIT_VARIABLES` is: idle OpenMP threads spin 1 000 times (not 300 000), then sleep.
ENV_DEFAULTS: dict[str, str] = {"GOMP_SPINCOUNT": "1000"}
#: A user's value for any of these is kept (libgomp reads the first two, Intel's OpenMP the last).
WAIT_VARIABLES: tuple[str, ...] = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")


def apply_env_defaults(environ: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """Put :data:`ENV_DEFAULTS` into ``environ`` (default ``os.environ``) unless it sets a wait variable.

    Returns:
        the variables that were set (empty when the user's own settings were kept).
    """
    global _LATE
    env = os.environ if environ is None else environ
    if any(k in env for k in WAIT_VARIABLES):
        return {}
    env.update(ENV_DEFAULTS)
    if environ is None and not wait_policy_applies():
        _LATE = True
    return dict(ENV_DEFAULTS)


#: torch was already loaded when fcndetect set the wait policy (so the policy did not act); see warn_if_late.
_LATE = False
_WARNED = False

LATE_MESSAGE = ("fcndetect: torch was imported before fcndetect, so OpenMP's short spin (GOMP_SPINCOUNT=1000) "
                "does not apply and runs can be several times slower on a busy machine; import fcndetect "
                "before torch, or export GOMP_SPINCOUNT=1000 (or OMP_WAIT_POLICY) before starting Python")


def warn_if_late() -> bool:
    """Warn once per process (``RuntimeWarning``) when the wait policy could not act because torch was
    imported before fcndetect and the user set no wait variable. Returns whether it warned now."""
    global _WARNED
    if not _LATE or _WARNED:
        return False
    _WARNED = True
    warnings.warn(LATE_MESSAGE, RuntimeWarning, stacklevel=3)
    return True


def _cgroup_cpu_limit(root: Path = Path("/sys/fs/cgroup")) -> int | None:
    """CPUs allowed by a cgroup v2 quota (``cpu.max`` = ``QUOTA PERIOD``, rounded up), or ``None``."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    try:
        return max(1, math.ceil(int(quota) / int(period)))
    except (ValueError, ZeroDivisionError):
        return None


def available_cpus(cgroup_root: Path = Path("/sys/fs/cgroup")) -> int:
    """CPUs this process may run on: its affinity mask (``os.sched_getaffinity``), capped by a cgroup v2 CPU
    quota where one is set; ``os.cpu_count()`` only where neither can be read."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    limit = _cgroup_cpu_limit(cgroup_root)
    return max(1, min(cpus, limit) if limit else cpus)


def wait_policy_applies() -> bool:
    """Whether a change of the wait variables can still act in this process (torch is not loaded yet)."""
    return "torch" not in sys.modules


def default_num_threads(cores: int | None = None, workers: int = 1) -> int:
    """torch intra-op threads for a run with ``workers`` decoding threads: the cores divided among them.

    Args:
        cores: CPU cores (default :func:`available_cpus`).
        workers: background decoding threads (0 counts as 1).
    """
    cores = cores if cores is not None else available_cpus()
    return max(1, cores // max(1, workers))
