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
- once torch is loaded it changes nothing (:func:`wait_policy_applies` says so).

The thread count stays one per core (torch's default; the CLI divides the cores among ``--workers``): on a
quiet machine that is the fastest, and with the short spin it no longer collapses under load.
"""

from __future__ import annotations

import os
import sys
from collections.abc import MutableMapping

__all__ = ["ENV_DEFAULTS", "WAIT_VARIABLES", "apply_env_defaults", "default_num_threads", "wait_policy_applies"]

#: Set when none of :data:`WAIT_VARIABLES` is: idle OpenMP threads spin 1 000 times (not 300 000), then sleep.
ENV_DEFAULTS: dict[str, str] = {"GOMP_SPINCOUNT": "1000"}
#: A user's value for any of these is kept (libgomp reads the first two, Intel's OpenMP the last).
WAIT_VARIABLES: tuple[str, ...] = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")


def apply_env_defaults(environ: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """Put :data:`ENV_DEFAULTS` into ``environ`` (default ``os.environ``) unless it sets a wait variable.

    Returns:
        the variables that were set (empty when the user's own settings were kept).
    """
    env = os.environ if environ is None else environ
    if any(k in env for k in WAIT_VARIABLES):
        return {}
    env.update(ENV_DEFAULTS)
    return dict(ENV_DEFAULTS)


def wait_policy_applies() -> bool:
    """Whether a change of the wait variables can still act in this process (torch is not loaded yet)."""
    return "torch" not in sys.modules


def default_num_threads(cores: int | None = None, workers: int = 1) -> int:
    """torch intra-op threads for a run with ``workers`` decoding threads: the cores divided among them.

    Args:
        cores: CPU cores (default ``os.cpu_count()``).
        workers: background decoding threads (0 counts as 1).
    """
    cores = cores if cores is not None else (os.cpu_count() or 1)
    return max(1, cores // max(1, workers))
