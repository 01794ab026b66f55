"""Thread defaults that degrade gracefully when the machine is busy.

torch runs its CPU kernels on an OpenMP thread team (GNU libgomp in the PyPI wheels: see
``torch.__config__.parallel_info()``). Between parallel regions libgomp's idle threads spin (300 000 times)
before they sleep. On a quiet machine that saves a wake-up per region; when another process wants a core, a
spinning thread burns the time slice the thread with work needs, and a run gets 2-35x slower
(``benchmarks/threads.py``, 2 cores, beside one busy process or the other tests of a shared machine).

fcndetect therefore sets ``OMP_WAIT_POLICY=PASSIVE`` (:data:`ENV_DEFAULTS`: idle threads sleep at once)
unless the user has set any of :data:`WAIT_VARIABLES`. Measured on 2 cores (O-Net on the astronaut): quiet
as fast as libgomp's default (0.29-0.32 s against 0.29-0.31 s, within the noise), 1.5-1.6x slower beside one
busy process (the fair share: 2 threads on the 4/3 cores left), where libgomp's default is 1.8-2.4x and
collapses further under heavier load. One thread does not slow down beside a busy process but is 1.4-1.5x
slower when quiet; a short spin (``GOMP_SPINCOUNT=1000``) is no better than passive, 10 000 already
collapses (3x). OpenMP reads the variable once, when torch is first imported, so:

- the ``fcndetect`` command sets it before it imports torch (importing the package sets it);
- ``import fcndetect`` sets it too, which takes effect when torch has not been imported yet: import
  fcndetect before torch, or export the variable yourself. Processes started afterwards inherit it;
- once torch is loaded it changes nothing (:func:`wait_policy_applies` says so).

The thread count stays one per core (torch's default; the CLI divides the cores among ``--workers``): on a
quiet machine that is the fastest, and with the passive wait policy it no longer collapses under load.
"""

from __future__ import annotations

import os
import sys
from collections.abc import MutableMapping

__all__ = ["ENV_DEFAULTS", "WAIT_VARIABLES", "apply_env_defaults", "default_num_threads", "wait_policy_applies"]

#: Set when none of :data:`WAIT_VARIABLES` is: idle OpenMP threads sleep instead of spinning.
ENV_DEFAULTS: dict[str, str] = {"OMP_WAIT_POLICY": "PASSIVE"}
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
