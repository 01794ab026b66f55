"""``fcndetect train``: examples in, a detector out (DDFD's recipe on a CPU).

Rounds: round 0 trains on the positives and random negative windows; after each round the model runs densely
over the negative photos (:mod:`fcndetect.train.mining`) and its false detections join the negatives of the
next round. A held-out split (10 % of the positives and of the negative photos) measures each epoch and
chooses the preset's threshold. Outputs in ``OUT``: ``model.pt`` (a plain state dict), ``preset.toml``,
``metrics.jsonl``, plus ``checkpoint.pt`` and ``train.json`` for ``--resume``.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import pickle
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import torch
import torch.nn.functional as F

from ..config import toml_value
from ..io.images import to_grayscale
from .archs import TrainableModel, build_trainable
from .augment import augment, to_float
from .data import Photo, TrainDataError, annotated_windows, random_windows, read_annotated, read_crops, read_photos
from .mining import detector_config, scan

__all__ = ["OUTPUT_FILES", "TrainError", "TrainOptions", "TrainResult", "choose_threshold", "preset_text", "train"]

#: Files ``train`` writes in ``OUT`` (``--overwrite`` replaces exactly these).
OUTPUT_FILES = ("model.pt", "preset.toml", "metrics.jsonl", "checkpoint.pt", "train.json")
#: Negative-photo false detections per photo the chosen threshold allows on the held-out photos.
TARGET_FP_PER_IMAGE = 0.1


class TrainError(ValueError):
    """Training cannot start or continue (one line: the file and the reason)."""


@dataclass
class TrainOptions:
    """Settings of a training run (the ``fcndetect train`` options).

    Attributes:
        positives: folders of object crops (each image one positive) and/or annotation files (any format
            ``fcndetect eval`` reads) whose images hold the objects.
        negatives: folders, files or globs of images that contain no object.
        output: the output folder.
        arch: ``tiny`` or a torchvision architecture.
        input_size: classifier input side (default: 34 for ``tiny``, the native size otherwise).
        weights: initial weights (``tiny``: an earlier model.pt; torchvision: ImageNet state dict).
        epochs: epochs per round; rounds = ``hard_negative_rounds + 1``.
        grayscale: train on grayscale windows (``None``: when any positive is single-channel).
        label: the class name detections get.
        negatives_per_image: random windows cut from each negative photo.
        mined_per_image: at most this many hard negatives per negative photo and round.
    """

    positives: list[str]
    negatives: list[str]
    output: str
    arch: str = "tiny"
    input_size: int | None = None
    weights: str | None = None
    epochs: int = 10
    batch_size: int = 128
    lr: float = 2e-3
    hard_negative_rounds: int = 2
    seed: int = 0
    device: str = "cpu"
    grayscale: bool | None = None
    label: str = "object"
    negatives_per_image: int = 60
    mined_per_image: int = 30
    val_fraction: float = 0.1

    def settings(self) -> dict[str, Any]:
        """What decides the result (compared on ``--resume``): everything but the output folder and device."""
        d = asdict(self)
        for k in ("output", "device"):
            d.pop(k)
        return d


@dataclass
class TrainResult:
    output: Path
    threshold: float
    epochs_done: int
    metrics: list[dict[str, Any]] = field(default_factory=list)
    resumed_from: int = 0


@dataclass
class _Data:
    pos: torch.Tensor  # [P, S, S, 3] uint8
    neg: torch.Tensor  # [N, S, S, 3] uint8, random windows
    val_pos: torch.Tensor
    val_neg: torch.Tensor
    train_photos: list[Photo]
    val_photos: list[Photo]
    grayscale: bool


def _split(n: int, fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    order = rng.permutation(n)
    k = max(1, int(round(n * fraction))) if n > 1 else 0
    return np.sort(order[k:]), np.sort(order[:k])


def _prepare_data(opts: TrainOptions, size: int, rng: np.random.Generator) -> _Data:
    """Read and cut every window, split off the held-out part (deterministic in ``opts.seed``)."""
    crops, annotated, gray = [], [], False
    for src in opts.positives:
        if os.path.isdir(src):
            windows, _, g = read_crops(src, size)
            crops.append(windows)
        elif os.path.isfile(src):
            photos, g = read_annotated([src], size)
            annotated.extend(photos)
        else:
            raise TrainDataError(f"{src}: positives: no such file or folder")
        gray = gray or g
    neg_photos = read_photos(opts.negatives) if opts.negatives else []
    if not neg_photos and not annotated:
        raise TrainDataError("negatives: give --negatives (photos without the object)")
    pos_parts, extra_neg = list(crops), []
    if annotated:
        p, n = annotated_windows(annotated, size, rng)
        pos_parts.append(p)
        extra_neg.append(n)
    pos = np.concatenate(pos_parts) if pos_parts else np.empty((0, size, size, 3), np.uint8)
    if len(pos) < 2:
        raise TrainDataError(f"{opts.positives[0]}: positives: need at least 2 positive windows, found {len(pos)}")
    tr, va = _split(len(pos), opts.val_fraction, rng)
    photos = neg_photos + annotated  # annotated photos give negatives beside their objects
    ptr, pva = _split(len(photos), opts.val_fraction, rng)
    train_photos = [photos[i] for i in ptr] or photos
    val_photos = [photos[i] for i in pva]
    neg = random_windows(train_photos, opts.negatives_per_image * len(train_photos), size, rng)
    val_neg = random_windows(val_photos, opts.negatives_per_image * len(val_photos), size, rng) if val_photos \
        else np.empty((0, size, size, 3), np.uint8)
    if extra_neg:
        neg = np.concatenate([neg, *extra_neg])
    grayscale = gray if opts.grayscale is None else opts.grayscale
    conv = to_grayscale if grayscale else (lambda a: a)
    t = lambda a: torch.from_numpy(np.ascontiguousarray(conv(a)))  # noqa: E731
    return _Data(t(pos[tr]), t(neg), t(pos[va]), t(val_neg), train_photos, val_photos, grayscale)


def _normalise(x: torch.Tensor, tm: TrainableModel) -> torch.Tensor:
    """``[B, 3, S, S]`` 0..255 floats to what the network takes."""
    mean = torch.tensor(tm.mean).view(1, 3, 1, 1) * 255.0
    std = torch.tensor(tm.std).view(1, 3, 1, 1) * 255.0
    return (x - mean) / std


@torch.inference_mode()
def _logits(tm: TrainableModel, windows: torch.Tensor, device: torch.device, batch: int = 512) -> torch.Tensor:
    """Object log-odds ``l1 - l0`` of ``[N, S, S, 3]`` uint8 windows: ``[N]``."""
    tm.model.eval()
    out = [torch.zeros(0)]
    for k in range(0, len(windows), batch):
        z = tm.model(_normalise(to_float(windows[k:k + batch]), tm).to(device)).float().cpu()
        out.append(z[:, 1] - z[:, 0])
    return torch.cat(out)


def _precision_recall(pos: torch.Tensor, neg: torch.Tensor, logit: float) -> tuple[float, float]:
    tp, fp = int((pos >= logit).sum()), int((neg >= logit).sum())
    return (tp / (tp + fp) if tp + fp else 1.0), (tp / len(pos) if len(pos) else 0.0)


def choose_threshold(val_pos: torch.Tensor, scene_logits: torch.Tensor, n_scenes: int,
                     target_fp: float = TARGET_FP_PER_IMAGE) -> float:
    """The preset's logit threshold: the lowest at which the held-out negative photos give at most
    ``target_fp`` detections per photo (``scene_logits``: every detection's logit there), and at least 0
    (probability 0.5). With no held-out photos: the median held-out positive's logit, at least 0."""
    if n_scenes == 0 or len(scene_logits) == 0:
        return max(0.0, float(val_pos.median()) if len(val_pos) else 0.0) if n_scenes == 0 else 0.0
    allowed = int(math.floor(target_fp * n_scenes))
    ranked = torch.sort(scene_logits, descending=True).values
    if allowed >= len(ranked):
        return 0.0
    # strictly above the (allowed+1)-th best false detection
    return max(0.0, float(torch.nextafter(ranked[allowed], torch.tensor(math.inf))))


@contextlib.contextmanager
def _deferred_interrupt() -> Iterator[None]:
    """Hold back SIGINT (Ctrl-C) until the block ends, then raise :class:`KeyboardInterrupt` (main thread only;
    elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        raise KeyboardInterrupt


def _atomic_save(obj: Any, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _atomic_text(text: str, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def preset_text(tm: TrainableModel, label: str, threshold: float, grayscale: bool, summary: str) -> str:
    """``preset.toml`` for a trained model: paths relative to the preset's own folder."""
    lines = [f"# {line}" for line in summary.splitlines()] + [
        f"model = {toml_value(tm.arch)}",
        'weights = "model.pt"',
        f"input_size = {tm.input_size}",
        "num_classes = 2",
        f"classes = {toml_value(['background', label])}",
        f"mean = {toml_value(list(tm.mean))}",
        f"std = {toml_value(list(tm.std))}",
        f"grayscale = {toml_value(grayscale)}",
        f"threshold = {toml_value(threshold)}",
    ]
    return "\n".join(lines) + "\n"


def _check_output(opts: TrainOptions, resume: bool, overwrite: bool) -> dict[str, Any] | None:
    """Check ``opts.output`` before anything is read or written; with ``resume``, the saved state."""
    out = Path(opts.output)
    if out.exists() and not out.is_dir():
        raise TrainError(f"{out}: output exists and is not a folder")
    if resume:
        ck = out / "checkpoint.pt"
        if not ck.is_file():
            raise TrainError(f"{out}: nothing to resume (no checkpoint.pt)")
        try:
            recorded = json.loads((out / "train.json").read_text(encoding="utf-8"))["settings"]
            state = torch.load(ck, map_location="cpu", weights_only=True)
        except (OSError, ValueError, KeyError, TypeError, RuntimeError, pickle.UnpicklingError) as exc:
            raise TrainError(f"{out}: cannot resume, the saved state is unreadable "
                             f"({' '.join(str(exc).split())[:120]})") from None
        now = json.loads(json.dumps(opts.settings()))
        diff = sorted(k for k in set(recorded) | set(now) if recorded.get(k) != now.get(k))
        if diff:
            raise TrainError(f"{out}: --resume with other settings than the interrupted run ({', '.join(diff)})")
        return state
    refuse_non_empty(out, overwrite)
    return None


def refuse_non_empty(out: Path, overwrite: bool) -> None:
    """A fresh run into a folder with files in it is refused unless ``overwrite`` (one line)."""
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise TrainError(f"{out}: output folder is not empty (use --resume to continue a run, "
                         "--overwrite to replace it)")


def _claim_output(out: Path, fresh: bool) -> None:
    """Create ``out``; for a fresh run, remove an earlier run's files (``--overwrite``)."""
    if fresh:
        for name in OUTPUT_FILES:
            (out / name).unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)


def train(opts: TrainOptions, *, resume: bool = False, overwrite: bool = False, log: TextIO | None = None,
          progress: bool | None = None, on_epoch: Callable[[dict[str, Any]], None] | None = None) -> TrainResult:
    """Train a detector from examples; see the module docstring. Repeatable: the same options and seed give
    the same ``model.pt`` bytes on the same machine with the same torch thread count.

    Raises:
        TrainError, TrainDataError, ModelLoadError: bad input, found before training starts (one line each).
        KeyboardInterrupt: propagated after the last completed epoch was saved (``--resume`` continues).
    """
    log = log if log is not None else sys.stderr
    progress = log.isatty() if progress is None else progress
    for key in ("epochs", "batch_size", "negatives_per_image"):
        if getattr(opts, key) < 1:
            raise TrainError(f"--{key.replace('_', '-')} must be >= 1, got {getattr(opts, key)}")
    if opts.hard_negative_rounds < 0 or not opts.lr > 0:
        raise TrainError("--hard-negative-rounds must be >= 0 and --lr > 0")
    if not opts.label.strip() or opts.label.strip().lower() == "background":
        raise TrainError(f"--label {opts.label!r}: give the object's name")
    from ..detector import resolve_device

    device = resolve_device(opts.device)
    torch.manual_seed(opts.seed)  # the initial weights; data preparation draws from numpy's generator only
    tm = build_trainable(opts.arch, opts.input_size, opts.weights)
    state = _check_output(opts, resume, overwrite)
    rng = np.random.default_rng(opts.seed)
    t0 = time.perf_counter()
    data = _prepare_data(opts, tm.input_size, rng)
    out = Path(opts.output)
    _claim_output(out, fresh=state is None)
    gen = torch.Generator().manual_seed(opts.seed)
    model = tm.model.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=opts.lr, weight_decay=1e-4)
    rounds = opts.hard_negative_rounds + 1
    mined = torch.empty((0, tm.input_size, tm.input_size, 3), dtype=torch.uint8)
    val_mined = mined.clone()
    done = 0  # completed epochs, over all rounds
    metrics: list[dict[str, Any]] = []
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        gen.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        mined, val_mined, done = state["mined"], state["val_mined"], int(state["done"])
        metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
        metrics = [m for m in metrics if m.get("done", 0) <= done]
    else:
        _atomic_text(json.dumps({"settings": opts.settings(), "complete": False}, indent=2) + "\n",
                     out / "train.json")
    resumed_from = done
    print(f"train: {len(data.pos)} positive and {len(data.neg)} negative windows ({tm.input_size} px"
          f"{', grayscale' if data.grayscale else ''}), held out {len(data.val_pos)} positives and "
          f"{len(data.val_photos)} negative photos; {tm.arch} from {tm.source}; "
          f"{rounds} round(s) x {opts.epochs} epochs" + (f"; resuming after epoch {done}" if done else ""),
          file=log)
    wpath = str(out / "model.pt")

    def config_for(threshold: float):
        return detector_config(tm.arch, wpath, tm.input_size, tm.mean, tm.std, data.grayscale, opts.label,
                               threshold=threshold, device=str(device))

    def write_metrics() -> None:
        _atomic_text("".join(json.dumps(m) + "\n" for m in metrics), out / "metrics.jsonl")

    for rnd in range(rounds):
        for g in opt.param_groups:
            g["lr"] = opts.lr * 0.5 ** rnd
        for ep in range(opts.epochs):
            if rnd * opts.epochs + ep < done:
                continue
            t_ep = time.perf_counter()
            neg_all = torch.cat([data.neg, mined])
            windows = torch.cat([data.pos, neg_all])
            labels = torch.cat([torch.ones(len(data.pos), dtype=torch.long), torch.zeros(len(neg_all), dtype=torch.long)])
            order = torch.randperm(len(windows), generator=gen)
            model.train()
            total, correct, seen = 0.0, 0, 0
            batches = range(0, len(order), opts.batch_size)
            bar = None
            if progress:
                import click

                bar = click.progressbar(length=len(batches), label=f"round {rnd + 1}/{rounds} epoch {ep + 1}/{opts.epochs}",
                                        file=log)
                bar.__enter__()
            try:
                for k in batches:
                    idx = order[k:k + opts.batch_size]
                    x = _normalise(augment(windows[idx], gen), tm).to(device)
                    y = labels[idx].to(device)
                    logits = model(x)
                    loss = F.cross_entropy(logits, y)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    total += loss.item() * len(idx)
                    correct += int((logits.argmax(1) == y).sum())
                    seen += len(idx)
                    if bar is not None:
                        bar.update(1)
            finally:
                if bar is not None:
                    bar.__exit__(None, None, None)
            vp, vn = _logits(tm, data.val_pos, device), _logits(tm, torch.cat([data.val_neg, val_mined]), device)
            prec, rec = _precision_recall(vp, vn, 0.0)
            done += 1
            row = {"done": done, "round": rnd + 1, "epoch": ep + 1, "loss": round(total / seen, 6),
                   "accuracy": round(correct / seen, 6), "val_precision": round(prec, 6), "val_recall": round(rec, 6),
                   "train_positives": len(data.pos), "train_negatives": len(neg_all), "lr": opts.lr * 0.5 ** rnd,
                   "seconds": round(time.perf_counter() - t_ep, 2)}
            # the completed epoch: model.pt now; the resume state after mining (an interrupt in between redoes
            # this epoch, identically)
            _atomic_save(model.state_dict(), out / "model.pt")
            last_epoch = ep == opts.epochs - 1
            if last_epoch and rnd < rounds - 1:
                t_m = time.perf_counter()
                cfg = config_for(0.5)
                new, new_logits = scan(cfg, data.train_photos, tm.input_size, opts.mined_per_image)
                new_val, _ = scan(cfg, data.val_photos, tm.input_size, opts.mined_per_image)
                conv = to_grayscale if data.grayscale else (lambda a: a)
                mined = torch.cat([mined, torch.from_numpy(np.ascontiguousarray(conv(new)))])
                val_mined = torch.cat([val_mined, torch.from_numpy(np.ascontiguousarray(conv(new_val)))])
                row.update({"mined": len(new), "mined_val": len(new_val), "negative_photos": len(data.train_photos),
                            "mining_seconds": round(time.perf_counter() - t_m, 2)})
            metrics.append(row)
            with _deferred_interrupt():  # the epoch's files agree with each other whenever Ctrl-C comes
                _atomic_save({"model": model.state_dict(), "optimizer": opt.state_dict(),
                              "generator": gen.get_state(), "torch_rng": torch.get_rng_state(),
                              "mined": mined, "val_mined": val_mined, "done": done}, out / "checkpoint.pt")
                write_metrics()
            print(f"round {rnd + 1}/{rounds} epoch {ep + 1}/{opts.epochs}: loss {row['loss']:.4f} accuracy "
                  f"{row['accuracy']:.4f} val precision {prec:.4f} recall {rec:.4f}"
                  + (f"; mined {row['mined']} hard negatives" if "mined" in row else ""), file=log)
            if on_epoch is not None:
                on_epoch(row)

    # threshold: held-out positives against the false detections on the held-out negative photos
    vp = _logits(tm, data.val_pos, device)
    scene_logits = torch.zeros(0)
    if data.val_photos:
        _, scene = scan(config_for(1e-6), data.val_photos, tm.input_size, 300)
        scene_logits = torch.from_numpy(scene)
    logit_t = choose_threshold(vp, scene_logits, len(data.val_photos))
    threshold = float(torch.sigmoid(torch.tensor(logit_t, dtype=torch.float64)))
    recall = float((vp >= logit_t).float().mean()) if len(vp) else 0.0
    fp = float((scene_logits >= logit_t).sum()) / max(1, len(data.val_photos))
    final = {"done": done, "final": True, "threshold": threshold, "threshold_logit": round(logit_t, 6),
             "val_recall": round(recall, 6), "val_fp_per_photo": round(fp, 6),
             "val_positives": len(vp), "val_negative_photos": len(data.val_photos),
             "total_seconds": round(time.perf_counter() - t0, 2)}
    metrics = [m for m in metrics if not m.get("final")] + [final]
    write_metrics()
    summary = (f"trained by `fcndetect train` ({tm.arch}, {tm.input_size} px, seed {opts.seed}): {len(data.pos)} "
               f"positives, {len(data.neg) + len(mined)} negatives ({len(mined)} mined)\n"
               f"threshold chosen on held-out windows: recall {recall:.3f} at {fp:.2f} false detections per "
               f"held-out negative photo")
    _atomic_text(preset_text(tm, opts.label.strip(), threshold, data.grayscale, summary), out / "preset.toml")
    _atomic_text(json.dumps({"settings": opts.settings(), "complete": True}, indent=2) + "\n", out / "train.json")
    print(f"train: wrote {out / 'model.pt'} and {out / 'preset.toml'} (threshold {threshold:.6g}: held-out "
          f"recall {recall:.3f}, {fp:.2f} false detections per negative photo)", file=log)
    return TrainResult(out, threshold, done, metrics, resumed_from)

