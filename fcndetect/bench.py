"""Dense evaluation against crop-by-crop classification of the same windows: time, FLOPs, agreement.

For each pyramid level, (a) the converted network runs once over the level, and (b) the original classifier
runs on every window of the dense map, cropped from the same level (batched, to be fair). Both give class
probabilities per window; their largest absolute difference is reported with the time ratio, the FLOP ratio
(crop-by-crop FLOPs over dense FLOPs, counted with ``torch.utils.flop_counter``: the most that sharing
computation can buy) and the achieved GFLOP/s next to this machine's matrix-multiply GFLOP/s.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from .models import LoadedModel
from .observe import StepTimer, observing
from .pyramid import resize_image

if TYPE_CHECKING:
    from .detector import Detector

__all__ = ["BenchResult", "bench_dense_vs_crops", "matmul_gflops", "count_flops", "PipelineTimes", "time_pipeline"]

T = TypeVar("T")


@dataclass
class BenchResult:
    """Figures of one benchmark run (all windows of all requested levels together)."""

    model: str
    image_size: tuple[int, int]
    scales: list[float]
    windows: int
    dense_seconds: float
    crops_seconds: float
    speedup: float
    dense_flops: float
    crops_flops: float
    flop_ratio: float
    dense_gflops_per_s: float
    crops_gflops_per_s: float
    matmul_gflops_per_s: float
    max_abs_diff: float
    max_abs_diff_rf_crops: float | None
    threads: int

    def to_json(self) -> dict[str, object]:
        d = asdict(self)
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in d.items()}


def _best_time(fn: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def count_flops(fn: Callable[[], object]) -> float:
    """FLOPs of one call of ``fn`` (``torch.utils.flop_counter``; convolutions and matmuls, 2 per MAC)."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return float(counter.get_total_flops())


def matmul_gflops(n: int = 2048, repeat: int = 5) -> float:
    """This machine's float32 matrix-multiply throughput in GFLOP/s (best of ``repeat``)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    t = _best_time(lambda: torch.mm(a, b), repeat)
    return 2.0 * n**3 / t / 1e9


def _crops(x: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, stride: int, window: int) -> torch.Tensor:
    """``[N, C, window, window]`` windows of ``x`` (``[1, C, H, W]``) at cells ``(rows, cols)``; windows that
    run past the level (ceil-mode border cells) are zero-padded."""
    _, _, h, w = x.shape
    pad_h = max(0, int(rows.max()) * stride + window - h) if rows.numel() else 0
    pad_w = max(0, int(cols.max()) * stride + window - w) if cols.numel() else 0
    if pad_h or pad_w:
        x = F.pad(x, (0, pad_w, 0, pad_h))
    return torch.cat([x[:, :, r * stride : r * stride + window, c * stride : c * stride + window]
                      for r, c in zip(rows.tolist(), cols.tolist())])


def _rf_crop_diff(
    classify: Callable[[torch.Tensor], torch.Tensor],
    levels: list[torch.Tensor],
    dense_out: list[torch.Tensor],
    cells: list[tuple[torch.Tensor, torch.Tensor]],
    stride: int,
    rf: int,
    rf_offset: int,
    window: int,
    batch_size: int,
) -> float | None:
    """The same comparison, on the cells whose receptive field lies inside the level, with crops of the
    receptive-field size (unpadded nets whose receptive field
    exceeds the window because of ceil-mode pooling, such as O-Net: 49 px): ``None`` where the classifier
    does not accept such crops. A difference near zero shows that the window-crop difference comes only from
    the partial last pooling window of a window-sized crop."""
    if rf <= window or rf_offset != 0:
        return None
    worst = 0.0
    try:
        for x, d, (rr, cc) in zip(levels, dense_out, cells):
            # only cells whose receptive field lies inside the level (border cells of ceil-mode nets
            # see partial pooling windows in the dense net, zero padding in a crop)
            inside = (rr * stride + rf <= x.shape[2]) & (cc * stride + rf <= x.shape[3])
            r_in, c_in = rr[inside], cc[inside]
            outs = [classify(_crops(x, r_in[k : k + batch_size], c_in[k : k + batch_size], stride, rf))
                    for k in range(0, r_in.numel(), batch_size)]
            if outs:
                dd = d.reshape(d.shape[0], -1).T[inside]
                worst = max(worst, float((dd - torch.cat(outs)).abs().max()))
    except (RuntimeError, ValueError):
        return None
    return worst


@torch.inference_mode()
def bench_dense_vs_crops(
    model: LoadedModel,
    image: np.ndarray,
    scales: Sequence[float] = (1.0,),
    batch_size: int = 256,
    repeat: int = 3,
) -> BenchResult:
    """Time and compare dense vs crop-by-crop classification of the same windows.

    Args:
        model: a loaded model (its ``dense`` network and original ``classifier``).
        image: ``[H, W, 3]`` uint8 RGB.
        scales: pyramid scales to evaluate (each level is the image resized by the scale).
        batch_size: crops per classifier call.
        repeat: timings are the best of this many runs.
    """
    dense: nn.Module = model.dense
    g = model.dense.geometry
    device = model.mean.device

    def classify(batch: torch.Tensor) -> torch.Tensor:
        out = model.classifier(batch)
        if isinstance(out, tuple):  # MTCNN nets return (regression, ..., probabilities)
            return out[-1]
        return out.softmax(1)

    levels = []
    for s in scales:
        h, w = image.shape[:2]
        lw, lh = max(1, round(w * s)), max(1, round(h * s))
        if lw < g.window or lh < g.window:
            raise ValueError(f"scale {s}: a {lw}x{lh} level is smaller than the {g.window}px window")
        arr = resize_image(image, lw, lh).copy()
        x = torch.from_numpy(arr).to(device)[None].permute(0, 3, 1, 2).float()  # channels-last, as in detection
        x = (x - model.mean[:, None, None]) / model.std[:, None, None]
        levels.append(x)

    def run_dense() -> list[torch.Tensor]:
        return [dense(x) for x in levels]

    dense_out = [o[0].softmax(0) for o in run_dense()]
    cells = []
    for o in dense_out:
        hh, ww = o.shape[1:]
        rr, cc = torch.meshgrid(torch.arange(hh), torch.arange(ww), indexing="ij")
        cells.append((rr.flatten(), cc.flatten()))
    n_windows = sum(r.numel() for r, _ in cells)

    def run_crops() -> list[torch.Tensor]:
        outs = []
        for x, (rr, cc) in zip(levels, cells):
            level_out = []
            for k in range(0, rr.numel(), batch_size):
                batch = _crops(x, rr[k : k + batch_size], cc[k : k + batch_size], g.stride, g.window)
                level_out.append(classify(batch))
            outs.append(torch.cat(level_out))
        return outs

    crop_out = run_crops()
    diff = max(float((d.reshape(d.shape[0], -1).T - c).abs().max()) for d, c in zip(dense_out, crop_out))
    diff_rf = _rf_crop_diff(classify, levels, dense_out, cells, g.stride, g.receptive_field, g.rf_offset, g.window,
                            batch_size)

    dense_seconds = _best_time(run_dense, repeat)
    crops_seconds = _best_time(run_crops, repeat)
    dense_flops = count_flops(run_dense)
    one_crop = torch.zeros(1, 3, g.window, g.window, device=device)
    crops_flops = count_flops(lambda: classify(one_crop)) * n_windows
    mm = matmul_gflops()
    return BenchResult(
        model=model.spec.name,
        image_size=(int(image.shape[1]), int(image.shape[0])),
        scales=[float(s) for s in scales],
        windows=n_windows,
        dense_seconds=dense_seconds,
        crops_seconds=crops_seconds,
        speedup=crops_seconds / dense_seconds,
        dense_flops=dense_flops,
        crops_flops=crops_flops,
        flop_ratio=crops_flops / dense_flops,
        dense_gflops_per_s=dense_flops / dense_seconds / 1e9,
        crops_gflops_per_s=crops_flops / crops_seconds / 1e9,
        matmul_gflops_per_s=mm,
        max_abs_diff=diff,
        max_abs_diff_rf_crops=diff_rf,
        threads=torch.get_num_threads(),
    )


@dataclass
class PipelineTimes:
    """Where one detection's time goes (best of ``repeat`` runs per step), in seconds.

    Attributes:
        steps: ``(name, seconds)`` in pipeline order: the pyramid plan, then per level its resize and its
            network pass, then the post-processing (for a cascade: candidates, later stages on crops, NMS).
        total: the whole detection, timed on its own (not the sum of the steps).
        candidates: a cascade's ``(stage, windows kept)``; empty for a single stage.
    """

    steps: list[tuple[str, float]]
    total: float
    candidates: list[tuple[str, int]]

    def to_json(self) -> dict[str, object]:
        return {"steps": [{"step": n, "ms": round(s * 1e3, 3)} for n, s in self.steps],
                "total_ms": round(self.total * 1e3, 3), "candidates": dict(self.candidates)}


def _best(fn: Callable[[], T], repeat: int) -> tuple[float, T]:
    """The best time of ``repeat`` calls (at least one), and the last call's result."""
    t = time.perf_counter()
    out = fn()
    best = time.perf_counter() - t
    for _ in range(repeat - 1):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


@torch.inference_mode()
def time_pipeline(detector: Detector, image: np.ndarray, repeat: int = 3) -> PipelineTimes:
    """Time each step of ``detector`` on an ``[H, W, 3]`` uint8 RGB image (see :class:`PipelineTimes`): the
    detection itself, watched by a :class:`~fcndetect.observe.StepTimer`; its steps are those of the run
    (of ``repeat``) whose steps sum least."""
    best: StepTimer | None = None
    for _ in range(max(1, repeat)):
        with observing(StepTimer()) as timer:
            detector.detect_array(image)
        if best is None or timer.total < best.total:
            best = timer
    total, _ = _best(lambda: detector.detect_array(image), repeat)
    return PipelineTimes(best.steps if best else [], total, best.candidates if best else [])
