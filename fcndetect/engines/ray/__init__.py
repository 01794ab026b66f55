"""The Ray engine: batch mode on a Ray cluster with Ray Data (``--engine ray``), split by concern:

* :mod:`.options`: :class:`RayOptions`, :class:`RayEngineError`, which URIs the actors read;
* :mod:`.lifecycle`: importing, starting, joining and stopping Ray; SIGINT while it runs;
* :mod:`.plan`: actor counts and reservations that fit the cluster;
* :mod:`.actor`: the actor that decodes, detects and renders;
* :mod:`.pipeline`: the Ray Data pipeline and :func:`iter_detections_ray`.

Ray is imported lazily: the base install does not need it. The submodules never import this package.
"""

from __future__ import annotations

from typing import Any

from . import lifecycle as _lifecycle
from .lifecycle import require_ray, start_ray, stop_ray
from .options import (INSTALL_HINT, PID_FILE_ENV, READ_CPUS, READ_TASKS, REMOTE_SCHEMES, RayEngineError, RayOptions,
                      is_remote_uri)
from .pipeline import iter_detections_ray
from .plan import ActorPlan, plan_actors

__all__ = ["RayOptions", "RayEngineError", "iter_detections_ray", "is_remote_uri", "require_ray", "start_ray",
           "stop_ray", "plan_actors", "ActorPlan", "INSTALL_HINT", "REMOTE_SCHEMES", "READ_CPUS", "READ_TASKS",
           "PID_FILE_ENV"]


def __getattr__(name: str) -> Any:
    """``STOPPED_AN_INSTANCE``: read live from :mod:`.lifecycle` (the console entry point checks it)."""
    if name == "STOPPED_AN_INSTANCE":
        return _lifecycle.STOPPED_AN_INSTANCE
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
