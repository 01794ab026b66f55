"""Actor sizing for the Ray engine (no Ray needed)."""

from __future__ import annotations

import pytest

from fcndetect.engines.ray.options import READ_CPUS, READ_TASKS, RayEngineError, RayOptions
from fcndetect.engines.ray.plan import plan_actors


def test_actor_plan_never_starves_the_read_tasks():
    plan = plan_actors(RayOptions(), 2, 0)  # this 2-core machine's defaults
    assert plan.min_actors * plan.cpus + READ_CPUS * READ_TASKS <= 2
    assert plan.min_actors >= 1 and plan.threads == 1
    big = plan_actors(RayOptions(), 64, 0)
    assert (big.cpus, big.min_actors) == (1.0, 63)
    gpu = plan_actors(RayOptions(gpus_per_actor=1), 64, 4)
    assert gpu.min_actors == 4 and gpu.gpus == 1
    auto = plan_actors(RayOptions(actors=(1, 10)), 2, 0)
    assert (auto.min_actors, auto.max_actors) == (1, 2)
    with pytest.raises(RayEngineError, match="do not fit"):
        plan_actors(RayOptions(actors=(3, 3), cpus_per_actor=1), 2, 0)
