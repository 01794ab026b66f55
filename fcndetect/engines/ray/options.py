"""The Ray engine's options, its error, and which paths it reads remotely (no Ray import here)."""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["RayOptions", "RayEngineError", "is_remote_uri", "INSTALL_HINT", "REMOTE_SCHEMES", "READ_CPUS",
           "READ_TASKS", "PID_FILE_ENV"]

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
