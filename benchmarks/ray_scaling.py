"""--engine ray against the local engine: images per second with 1 and 2 actors, and Ray's start-up cost.

    python benchmarks/ray_scaling.py [--images DIR] [--count 100] [--batch-size 1]

Every configuration detects the same list (the folder's images repeated to ``--count``) in one run, one after
the other, with no output folder (the engines alone: decoding, detection, records back in input order):

* local: ``iter_detections`` with one decoding thread and the CLI's default torch threads (one per core);
* Ray, 1 and 2 actors: ``iter_detections_ray`` on a local Ray instance started once (the engine's default
  reservation per actor, one torch thread each), each run paying its own actors' start (a process, torch,
  the model), as every ``fcndetect run --engine ray`` does;
* start-up: ``ray.init`` + ``ray.shutdown`` of a local instance, and a one-image Ray run less the local
  engine's time for that image (actor start, model load, pipeline set-up).

Each row carries the machine's load average (1 minute) over its measurement, and is marked ``busy`` when that
load exceeded the core count: other jobs then took cores from the measurement, and the row's ratios mostly
measure them.
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEV = REPO.parent / "shared" / "data" / "dev_faces"


def _time(fn) -> float:  # noqa: ANN001 - a no-argument callable
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _load() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


def _timed_load(fn) -> tuple[float, float]:  # noqa: ANN001 - a no-argument callable
    """Seconds ``fn`` took, and the larger 1-minute load average seen at its start and end."""
    before = _load()
    t = _time(fn)
    return t, max(before, _load())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", default=str(DEV))
    ap.add_argument("--count", type=int, default=100)
    ap.add_argument("--batch-size", type=int, default=1)
    args = ap.parse_args()

    from fcndetect import Detector, __version__  # first: it sets OpenMP's wait policy before torch loads
    from fcndetect.detector import remote_detect_batch
    from fcndetect.engines import ray as ray_engine
    from fcndetect.engines.base import EngineOptions
    from fcndetect.engines.local import iter_detections
    from fcndetect.io.sources import expand_sources
    from fcndetect.threads import default_num_threads

    import ray
    import torch

    base = [it for it in expand_sources([args.images]) if it.error is None]
    if not base:
        print(f"ray_scaling.py: no images in {args.images}", file=sys.stderr)
        return 2
    items = [base[k % len(base)] for k in range(args.count)]
    det = Detector()
    torch.set_num_threads(default_num_threads(workers=1))
    cores = os.cpu_count() or 1
    print(f"# {datetime.now(timezone.utc).isoformat(timespec='seconds')} | {platform.machine()}, {cores} cores, "
          f"torch {torch.__version__}, ray {ray.__version__}, fcndetect {__version__}, model {det.config.chain}")
    print(f"# command: python benchmarks/{Path(__file__).name} {' '.join(sys.argv[1:])}")
    print(f"# {len(items)} images ({len(base)} distinct from {args.images}), batch size {args.batch_size}\n")

    def local(its: list) -> None:
        for _ in iter_detections(det.detect_batch, its, EngineOptions(workers=1, batch_size=args.batch_size)):
            pass

    def on_ray(its: list, actors: int) -> None:
        opts = ray_engine.RayOptions(actors=(actors, actors))
        make = functools.partial(remote_detect_batch, det.config)
        for _ in ray_engine.iter_detections_ray(make, its, EngineOptions(batch_size=args.batch_size), opts):
            pass

    local(items[:1])  # warm-up
    t_init = _time(lambda: ray_engine.start_ray(ray, None))
    plan = ray_engine.plan_actors(ray_engine.RayOptions(), *(float(ray.cluster_resources().get(k, 0))
                                                              for k in ("CPU", "GPU")))
    t_local1 = _time(lambda: local(items[:1]))
    t_ray1 = _time(lambda: on_ray(items[:1], 1))
    t_local, load_local = _timed_load(lambda: local(items))
    rows = [("local engine", "-", len(items) / t_local, 1.0, load_local)]
    for actors in (1, 2):
        t, load = _timed_load(lambda: on_ray(items, actors))
        rows.append((f"Ray, {actors} actor(s)", f"{plan.cpus:g} CPU, {plan.threads} thread", len(items) / t,
                     t_local / t, load))
    t_stop = _time(lambda: ray_engine.stop_ray(ray))
    print(f"| engine | per actor | images/s | vs local | load average (1 min, {cores} cores) |")
    print("|---|---|---:|---:|---|")
    for name, per, ips, ratio, load in rows:
        busy = " **busy**" if load > cores else ""
        print(f"| {name} | {per} | {ips:.2f} | {ratio:.2f}x | {load:.1f}{busy} |")
    print(f"\nRay start-up: ray.init {t_init:.1f} s + ray.shutdown {t_stop:.1f} s; a one-image run "
          f"{t_ray1:.1f} s against {t_local1:.2f} s locally: {t_ray1 - t_local1:.1f} s of actor start and "
          f"pipeline set-up per run (= {(t_ray1 - t_local1) / t_local:.0%} of this "
          f"{len(items)}-image local run); load average {_load():.1f}")
    return 0


if __name__ == "__main__":
    from record import recorded

    raise SystemExit(recorded(__file__, main))
