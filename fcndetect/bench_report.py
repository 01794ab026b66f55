"""Human-readable reports of :mod:`fcndetect.bench`'s figures (what ``fcndetect bench`` prints).

Pure text formatting: imports neither torch nor the benchmark itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .bench import BenchResult, PipelineTimes
    from .geometry import Geometry


def format_dense_vs_crops(res: BenchResult, geometry: Geometry) -> str:
    """The dense-vs-crop-by-crop comparison as lines of text.

    Args:
        res: the figures of :func:`fcndetect.bench.bench_dense_vs_crops`.
        geometry: the benchmarked dense network's geometry (window, stride, receptive field, offset).
    """
    g = geometry
    lines = [
        f"model {res.model}: window {g.window}, stride {g.stride}, image {res.image_size[0]}x{res.image_size[1]}, "
        f"scales {res.scales}, {res.windows} windows, {res.threads} threads",
        f"  dense       {res.dense_seconds * 1000:10.1f} ms  {res.dense_flops / 1e9:9.2f} GFLOP  "
        f"{res.dense_gflops_per_s:7.1f} GFLOP/s",
        f"  crop-by-crop{res.crops_seconds * 1000:10.1f} ms  {res.crops_flops / 1e9:9.2f} GFLOP  "
        f"{res.crops_gflops_per_s:7.1f} GFLOP/s",
        f"  speed-up {res.speedup:.2f}x   FLOP ratio {res.flop_ratio:.2f}x   matmul {res.matmul_gflops_per_s:.1f} "
        f"GFLOP/s (dense reaches {res.dense_gflops_per_s / res.matmul_gflops_per_s:.0%})",
        f"  max |score difference| over all windows: {res.max_abs_diff:.2e}",
    ]
    if res.max_abs_diff_rf_crops is not None:
        lines.append(f"  ... with {g.receptive_field}px receptive-field crops instead of {g.window}px windows: "
                     f"{res.max_abs_diff_rf_crops:.2e} (the rest is the ceil-mode pooling border of a window crop)")
    elif g.rf_offset < 0:
        lines.append("  (padding: a crop sees zeros at its border where the dense net sees the neighbouring pixels)")
    return "\n".join(lines)


def format_pipeline(times: PipelineTimes, chain: str, image_size: tuple[int, int], repeat: int) -> str:
    """Where a detection's time goes, step by step, as lines of text.

    Args:
        times: the figures of :func:`fcndetect.bench.time_pipeline`.
        chain: the detector's model chain (``DetectorConfig.chain``, e.g. ``face-pnet > face-rnet > face``).
        image_size: ``(width, height)`` of the timed image.
        repeat: how many timings each figure is the best of.
    """
    lines = [f"pipeline of {chain}: image {image_size[0]}x{image_size[1]}, best of {repeat}"]
    lines += [f"  {name:<48s}{seconds * 1000:9.2f} ms" for name, seconds in times.steps]
    lines.append(f"  {'sum of the steps':<48s}{sum(s for _, s in times.steps) * 1000:9.2f} ms")
    lines.append(f"  {'whole detection':<48s}{times.total * 1000:9.2f} ms")
    if times.candidates:
        lines.append("  windows kept: " + ", ".join(f"{n} {k}" for n, k in times.candidates))
    return "\n".join(lines)
