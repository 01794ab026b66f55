"""Actor sizing: how many actors, with which reservations, fit a Ray cluster beside the read tasks."""

from __future__ import annotations

import math
from dataclasses import dataclass

from .options import READ_CPUS, READ_TASKS, RayEngineError, RayOptions

__all__ = ["ActorPlan", "plan_actors"]


@dataclass(frozen=True)
class ActorPlan:
    """Actor pool bounds and each actor's reservations and torch threads."""

    min_actors: int
    max_actors: int
    cpus: float
    gpus: float
    threads: int


def plan_actors(opts: RayOptions, cluster_cpus: float, cluster_gpus: float) -> ActorPlan:
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
    return ActorPlan(lo, max(lo, min(hi, fit)), cpus, gpus, threads)
