"""``fcndetect train --recipe FILE -o OUT``: train a cascade's stages in order (:mod:`fcndetect.train.recipe`).

Each stage fine-tunes one of MTCNN's nets (classification and box regression; O-Net keeps its landmark head
close to its initial one) on windows cut from the recipe's annotated photos and photos without faces
(:mod:`fcndetect.train.windows`), mined with the stages trained before it. A seeded share of the annotated
photos is held out: its windows are scored after every epoch, and the finished cascade's AP on those photos
(IoU 0.3, WIDER's ignore rule) is measured at the end.

``OUT`` receives ``<stage>.pt`` (plain state dicts), ``preset.toml`` (``run --config OUT/preset.toml``, or
``eval``, ``bench``, ``export``), ``metrics.jsonl`` (one line per epoch and stage), ``validation.txt`` (the
held-out photos) and, for ``--resume``, ``checkpoint.pt`` and ``train.json``.
"""

from __future__ import annotations

import copy
import functools
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, cast

import numpy as np
import torch
import torch.nn.functional as F

from ..config import toml_value
from .augment import augment_faces
from .data import TrainDataError
from .faces import NEGATIVE, PART, POSITIVE, read_face_photos, split_photos
from .loop import TrainError, _atomic_save, _atomic_text, _deferred_interrupt, refuse_non_empty
from .recipe import MTCNN_MODEL_NAMES, Recipe, StageSpec
from .validate import fold_ap
from .windows import StageWindows, collect_windows, stage_candidates

if TYPE_CHECKING:
    from ..detector import Detector
    from .faces import FacePhoto

__all__ = ["RecipeResult", "train_recipe", "RECIPE_FILES", "MTCNN_MEAN", "MTCNN_STD"]

#: files a recipe run writes besides ``<stage>.pt`` (``--overwrite`` removes exactly these and the stages')
RECIPE_FILES = ("preset.toml", "metrics.jsonl", "checkpoint.pt", "train.json", "validation.txt")
#: MTCNN's input scaling: ``(x - 127.5) / 128`` for ``x`` in 0..255
MTCNN_MEAN, MTCNN_STD = 127.5, 128.0
#: the written preset starts from these settings of the shipped cascade, then the recipe's ``[detector]``
_PRESET_KEYS = ("threshold", "nms", "nms_iou", "containment", "min_size", "scale_factor", "max_det",
                "stage_thresholds", "stage_nms_iou", "fusion", "flip")


@dataclass
class RecipeResult:
    output: Path
    stage_seconds: dict[str, float] = field(default_factory=dict)
    validation: dict[str, float] = field(default_factory=dict)


def _detector_settings(recipe: Recipe) -> dict[str, Any]:
    from ..config import load_preset

    base = load_preset("face-cascade")
    out = {k: base[k] for k in _PRESET_KEYS if k in base}
    out.update(recipe.detector)
    n = len(recipe.stages) - 1
    if len(out.get("stage_thresholds", ())) != n:
        out["stage_thresholds"] = [0.5] * n
    return out


def _init_source(stage: StageSpec, recipe: Recipe, out: Path) -> str:
    """The model name or state-dict path a stage starts from (``Detector`` and ``load_mtcnn`` both read it)."""
    from ..models.mtcnn import read_mtcnn_state

    if stage.init == "mtcnn":
        return MTCNN_MODEL_NAMES[stage.net]
    earlier = [s.name for s in recipe.stages]
    path = out / f"{stage.init}.pt" if stage.init in earlier else Path(stage.init)
    kind = read_mtcnn_state(str(path))
    if kind != stage.net:
        raise TrainError(f"{path}: init of stage {stage.name}: not a {stage.net} state dict"
                         + (f" (a {kind})" if kind else ""))
    return str(path)


def _build_net(stage: StageSpec, source: str) -> torch.nn.Module:
    from ..models.mtcnn import load_mtcnn

    return load_mtcnn(stage.net, None if source in MTCNN_MODEL_NAMES.values() else source)


def _mining_detector(recipe: Recipe, k: int, out: Path, settings: dict[str, Any]) -> Detector:
    """The detector whose windows stage ``k`` learns from (:func:`stage_candidates`)."""
    from ..config import DetectorConfig
    from ..detector import Detector

    common = dict(min_size=settings["min_size"], scale_factor=settings["scale_factor"], max_det=1000,
                  stage_nms_iou=settings["stage_nms_iou"], containment=None, flip=False)
    thresholds = list(settings["stage_thresholds"])
    source = _init_source(recipe.stages[k], recipe, out)
    if k == 0:
        cfg = DetectorConfig(model=source, threshold=thresholds[0] if thresholds else 0.5, regress=False,
                                    nms="max", nms_iou=settings["stage_nms_iou"], **common)
    else:
        cfg = DetectorConfig(model=source, stages=tuple(str(out / f"{s.name}.pt") for s in recipe.stages[:k]),
                             stage_thresholds=tuple(thresholds[:k]), threshold=0.5, **common)
    return Detector(cfg)


def _heads(net: torch.nn.Module, windows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    from ..models.mtcnn import mtcnn_heads

    return mtcnn_heads(net, (windows - MTCNN_MEAN) / MTCNN_STD)


@torch.inference_mode()
def _val_metrics(net: torch.nn.Module, val: StageWindows, threshold: float) -> dict[str, float]:
    """Held-out windows: recall of positives and pass rate of negatives at the stage's threshold, accuracy
    at 0.5, mean squared box error on positives and parts."""
    from .augment import to_float

    net.eval()
    logits, regs = [], []
    for a in range(0, len(val.labels), 1024):
        lg, rg, _ = _heads(net, to_float(val.windows[a:a + 1024]))
        logits.append(lg[:, 1] - lg[:, 0])
        regs.append(rg)
    if not logits:
        return {}
    z, reg = torch.cat(logits), torch.cat(regs)
    pos, neg, box = val.labels == POSITIVE, val.labels == NEGATIVE, val.labels != NEGATIVE
    t = math.log(threshold / (1 - threshold)) if 0 < threshold < 1 else 0.0
    return {"val_recall": round(float((z[pos] > t).float().mean()), 6) if pos.any() else float("nan"),
            "val_negatives_passed": round(float((z[neg] > t).float().mean()), 6) if neg.any() else float("nan"),
            "val_accuracy": round(float(((z > 0) == pos)[pos | neg].float().mean()), 6),
            "val_box_mse": round(float(((reg[box] - val.targets[box]) ** 2).mean()), 6) if box.any() else 0.0}


@torch.inference_mode()
def calibrate_bias(net: torch.nn.Module, kind: str, val: StageWindows, probability: float, recall: float) -> float:
    """Raise ``net``'s face logit (the class head's bias: face ``+ shift / 2``, background ``- shift / 2``) so that
    at least ``recall`` of the held-out positive windows score above ``probability``; returns the logit
    ``shift`` (0 when they already do, or when there is no positive window). The ranking is unchanged."""
    from ..models.mtcnn import CLASS_HEADS
    from .augment import to_float

    pos = torch.nonzero(val.labels == POSITIVE).flatten()
    if not len(pos):
        return 0.0
    net.eval()
    z = torch.cat([(lambda lg: lg[:, 1] - lg[:, 0])(_heads(net, to_float(val.windows[pos[a:a + 1024]]))[0])
                   for a in range(0, len(pos), 1024)]).double()
    target = math.log(probability / (1 - probability))
    # the (1 - recall) quantile must rise above the target logit (strictly: ties stay below)
    shift = max(0.0, target - float(torch.quantile(z, 1.0 - recall)) + 1e-3)
    if shift > 0:
        bias = getattr(net, CLASS_HEADS[kind]).bias
        bias[1] += shift / 2
        bias[0] -= shift / 2
    return shift


def _check_output(out: Path, recipe: Recipe, resume: bool, overwrite: bool) -> dict[str, Any] | None:
    if out.exists() and not out.is_dir():
        raise TrainError(f"{out}: output exists and is not a folder")
    if resume:
        try:
            state = json.loads((out / "train.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise TrainError(f"{out}: nothing to resume ({' '.join(str(exc).split())[:100]})") from None
        if state.get("recipe") != json.loads(json.dumps(recipe.to_dict())):
            raise TrainError(f"{out}: --resume with another recipe than the interrupted run")
        return state
    refuse_non_empty(out, overwrite)
    return None


def _say(log: TextIO, text: str) -> None:
    print(text, file=log, flush=True)


def _bar(progress: bool, length: int, label: str, log: TextIO) -> Any:
    import click

    return click.progressbar(length=length, label=label, file=log) if progress and length else None


def _train_stage(k: int, stage: StageSpec, recipe: Recipe, out: Path, settings: dict[str, Any],
                 train_photos: list[FacePhoto], val_photos: list[FacePhoto], scenes: list[str], state: dict[str, Any], log: TextIO, progress: bool,
                 metrics: list[dict[str, Any]]) -> float:
    """Collect stage ``k``'s windows, train it (resuming from ``checkpoint.pt`` where it holds this stage),
    write ``OUT/<name>.pt``; returns the stage's seconds."""
    from ..io.images import load_image

    t0 = time.perf_counter()
    torch.manual_seed(recipe.seed * 1000 + k)
    source = _init_source(stage, recipe, out)
    net = _build_net(stage, source)
    teacher = copy.deepcopy(net).eval() if stage.net == "onet" and stage.landmark_weight > 0 else None
    thresholds = list(settings["stage_thresholds"])
    threshold = thresholds[k] if k < len(thresholds) else float(settings["threshold"])
    det = _mining_detector(recipe, k, out, settings) if stage.mined_per_photo or stage.scene_negatives_per_photo \
        else None
    mine = (lambda image: stage_candidates(det, image, k)) if det is not None else None
    n_scenes_val = len(scenes) // 10
    sets = {}
    for part, photos, scene_list in (("train", train_photos, scenes[n_scenes_val:]),
                                     ("val", val_photos, scenes[:n_scenes_val])):
        rng = np.random.default_rng([recipe.seed, k, 0 if part == "train" else 1])
        if part == "val" and not photos and not scene_list:
            sets[part] = StageWindows.empty(stage.size)
            continue
        bar = _bar(progress, len(photos) + len(scene_list), f"stage {stage.name}: {part} windows", log)
        if bar is not None:
            bar.__enter__()
        try:
            sets[part], stats = collect_windows(
                photos, scene_list, load_image, mine, stage.size, rng,
                positives_per_face=stage.positives_per_face, negatives=stage.negatives_per_photo,
                min_side=float(settings["min_size"]), mined=stage.mined_per_photo,
                scene_count=stage.scene_negatives_per_photo, tick=functools.partial(bar.update, 1) if bar is not None else None)
        finally:
            if bar is not None:
                bar.__exit__(None, None, None)
        _say(log, f"stage {stage.name}: {part} windows {sets[part].counts()} ({time.perf_counter() - t0:.0f} s)"
             + (f"; stages before: {stats['candidates_per_photo']:.1f} windows per photo, recall "
                f"{stats['candidate_recall']:.3f}" if mine is not None else ""))
    data, val = sets["train"], sets["val"]
    data_seconds = time.perf_counter() - t0
    gen = torch.Generator().manual_seed(recipe.seed * 1000 + k)
    opt = torch.optim.Adam(net.parameters(), lr=stage.lr)
    done = 0
    ck = state.get("checkpoint")
    if ck is not None and ck["stage"] == stage.name:
        net.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        gen.set_state(ck["generator"])
        done = int(ck["epoch"])
        _say(log, f"stage {stage.name}: resuming after epoch {done}")
    cls_rows = data.labels != PART
    n_pos, n_neg = int((data.labels == POSITIVE).sum()), int((data.labels == NEGATIVE).sum())
    # positives weigh at least a third of the negatives in the classification loss (MTCNN's 1:3 ratio)
    class_weight = torch.tensor([1.0, max(1.0, n_neg / (3.0 * max(1, n_pos)))])
    for ep in range(done, stage.epochs):
        t_ep = time.perf_counter()
        for g in opt.param_groups:
            g["lr"] = stage.lr * 0.5 ** ep
        net.train()
        order = torch.randperm(len(data.labels), generator=gen)
        batches = range(0, len(order), stage.batch_size)
        sums = np.zeros(3)
        bar = _bar(progress, len(batches), f"stage {stage.name} epoch {ep + 1}/{stage.epochs}", log)
        if bar is not None:
            bar.__enter__()
        try:
            for a in batches:
                idx = order[a:a + stage.batch_size]
                x, t = augment_faces(data.windows[idx], data.targets[idx], gen)
                y, c = data.labels[idx], cls_rows[idx]
                logits, reg, lmk = _heads(net, x)
                loss_cls = F.cross_entropy(logits[c], (y[c] == POSITIVE).long(), weight=class_weight) if c.any() else logits.sum() * 0
                b = y != NEGATIVE
                loss_box = F.mse_loss(reg[b], t[b]) if b.any() else reg.sum() * 0
                loss = loss_cls + stage.box_weight * loss_box
                loss_lmk = torch.zeros(())
                if teacher is not None and lmk is not None and (y == POSITIVE).any():
                    p = y == POSITIVE
                    with torch.no_grad():
                        _, _, want = _heads(teacher, x[p])
                    if want is not None:
                        loss_lmk = F.mse_loss(lmk[p], want)
                        loss = loss + stage.landmark_weight * loss_lmk
                opt.zero_grad(set_to_none=True)
                loss.backward()  # type: ignore[no-untyped-call]
                opt.step()
                sums += [float(loss_cls.detach()), float(loss_box.detach()), float(loss_lmk.detach())]
                if bar is not None:
                    bar.update(1)
        finally:
            if bar is not None:
                bar.__exit__(None, None, None)
        n = max(1, len(batches))
        row = {"stage": stage.name, "epoch": ep + 1, "loss_class": round(sums[0] / n, 6),
               "loss_box": round(sums[1] / n, 6), "loss_landmarks": round(sums[2] / n, 6),
               "lr": stage.lr * 0.5 ** ep, **data.counts(), **_val_metrics(net, val, threshold),
               "seconds": round(time.perf_counter() - t_ep, 2)}
        metrics.append(row)
        with _deferred_interrupt():
            _atomic_save({"stage": stage.name, "epoch": ep + 1, "model": net.state_dict(),
                          "optimizer": opt.state_dict(), "generator": gen.get_state()}, out / "checkpoint.pt")
            _atomic_text("".join(json.dumps(m) + "\n" for m in metrics), out / "metrics.jsonl")
        held = (f"; held out: recall {row['val_recall']:.4f} at {threshold:g}, negatives passed "
                f"{row['val_negatives_passed']:.4f}, box mse {row['val_box_mse']:.4f}" if "val_recall" in row else "")
        _say(log, f"stage {stage.name} epoch {ep + 1}/{stage.epochs}: loss {row['loss_class']:.4f} box "
             f"{row['loss_box']:.4f}{held} ({row['seconds']:.0f} s)")
    last = k == len(recipe.stages) - 1
    shift = 0.0
    if stage.calibrate_recall > 0:
        shift = calibrate_bias(net, stage.net, val, 0.5 if last else threshold, stage.calibrate_recall)
        _say(log, f"stage {stage.name}: face logit raised by {shift:.3f} (held-out positive windows above "
                  f"{0.5 if last else threshold:g}: at least {stage.calibrate_recall:g})")
    seconds = time.perf_counter() - t0
    with _deferred_interrupt():
        state["logit_shift"] = {**state.get("logit_shift", {}), stage.name: round(shift, 6)}
        _atomic_save(net.state_dict(), out / f"{stage.name}.pt")
        state["stages_done"] = [*state.get("stages_done", []), stage.name]
        state["stage_seconds"] = {**state.get("stage_seconds", {}), stage.name: round(seconds, 1)}
        state["data_seconds"] = {**state.get("data_seconds", {}), stage.name: round(data_seconds, 1)}
        state.pop("checkpoint", None)
        _atomic_text(json.dumps({k: v for k, v in state.items() if k != "checkpoint"}, indent=2) + "\n",
                     out / "train.json")
    return seconds


def preset_text(recipe: Recipe, settings: dict[str, Any], summary: str) -> str:
    """``preset.toml`` of a trained cascade: stage files relative to the preset's folder."""
    names = [f"{s.name}.pt" for s in recipe.stages]
    lines = [f"# {line}" for line in summary.splitlines()]
    lines += [f"model = {toml_value(names[-1])}", f"stages = {toml_value(names[:-1])}"]
    lines += [f"{k} = {toml_value(list(v) if isinstance(v, tuple) else v)}" for k, v in settings.items()]
    return "\n".join(lines) + "\n"


def train_recipe(recipe: Recipe, output: str | Path, *, resume: bool = False, overwrite: bool = False,
                 log: TextIO | None = None, progress: bool | None = None, evaluate: bool = True) -> RecipeResult:
    """Train every stage of ``recipe`` in order into ``output``; see the module docstring. Repeatable: the same
    recipe (seed included) gives the same weights on the same machine with the same torch thread count.

    Raises:
        TrainError, TrainDataError: bad input, found before training starts (one line each).
        KeyboardInterrupt: after the last completed epoch was saved (``resume=True`` continues).
    """
    log = log if log is not None else sys.stderr
    progress = log.isatty() if progress is None else progress
    out = Path(output)
    saved = _check_output(out, recipe, resume, overwrite)
    photos = read_face_photos(list(recipe.data.annotations), recipe.data.min_face)
    if recipe.data.max_photos:
        photos = photos[:recipe.data.max_photos]
    scenes: list[str] = []
    if recipe.data.negatives:
        from .data import _image_paths

        scenes = [p for s in recipe.data.negatives for p in _image_paths(s, "negatives")]
    train_photos, val_photos = split_photos(photos, recipe.data.val_fraction, recipe.seed)
    if not any(len(p.valid) for p in train_photos):
        raise TrainDataError(f"{recipe.data.annotations[0]}: no face to learn outside the held-out photos")
    settings = _detector_settings(recipe)
    if saved is None:
        if out.exists():
            for name in (*RECIPE_FILES, *(f"{s.name}.pt" for s in recipe.stages)):
                (out / name).unlink(missing_ok=True)
        out.mkdir(parents=True, exist_ok=True)
        state: dict[str, Any] = {"recipe": recipe.to_dict(), "stages_done": [], "complete": False}
        _atomic_text(json.dumps(state, indent=2) + "\n", out / "train.json")
        metrics: list[dict[str, Any]] = []
    else:
        state = saved
        ck = out / "checkpoint.pt"
        if ck.is_file():
            state["checkpoint"] = torch.load(ck, map_location="cpu", weights_only=True)
        text = (out / "metrics.jsonl").read_text() if (out / "metrics.jsonl").is_file() else ""
        metrics = [json.loads(line) for line in text.splitlines() if line.strip()]
        ck_state = state.get("checkpoint")
        metrics = [m for m in metrics if m.get("stage") in state["stages_done"]
                   or (ck_state is not None and m.get("stage") == ck_state["stage"] and m["epoch"] <= ck_state["epoch"])]
    _atomic_text("".join(p.path + "\n" for p in val_photos), out / "validation.txt")
    _say(log, f"train: {len(train_photos)} annotated photos ({sum(len(p.valid) for p in train_photos)} faces to "
              f"learn, {sum(int(p.ignore.sum()) for p in train_photos)} ignored), {len(val_photos)} held out, "
              f"{len(scenes)} photos without faces; stages {' > '.join(s.name for s in recipe.stages)}")
    for k, stage in enumerate(recipe.stages):
        if stage.name in state["stages_done"] and (out / f"{stage.name}.pt").is_file():
            continue
        _train_stage(k, stage, recipe, out, settings, train_photos, val_photos, scenes, state, log, progress,
                     metrics)
    result = RecipeResult(out, dict(state.get("stage_seconds", {})))
    last_shift = float(state.get("logit_shift", {}).get(recipe.stages[-1].name, 0.0))
    if last_shift:  # the written threshold keeps the operating point of the uncalibrated last stage
        t = float(settings["threshold"])
        settings["threshold"] = round(1 / (1 + math.exp(-(math.log(t / (1 - t)) + last_shift))), 9)
    summary = (f"trained by `fcndetect train --recipe` (seed {recipe.seed}): stages "
               f"{', '.join(f'{s.name} ({s.net}, {s.epochs} epochs)' for s in recipe.stages)}\n"
               f"annotations: {', '.join(recipe.data.annotations)}; held-out photos in validation.txt")
    _atomic_text(preset_text(recipe, settings, summary), out / "preset.toml")
    if evaluate and val_photos:
        from ..detector import Detector
        from ..io.images import load_image

        det = Detector(str(out / "preset.toml"), threshold=0.5)

        def detect(path: str) -> tuple[np.ndarray, np.ndarray]:
            d = det.detect_array(load_image(path))
            return d.boxes, cast(np.ndarray, d.logits)

        result.validation = fold_ap(detect, val_photos)
        _say(log, f"train: held-out photos: AP@0.3 {result.validation['ap']:.4f}, max recall "
                  f"{result.validation['max_recall']:.4f} ({result.validation['faces']} faces of at least 20 px)")
    metrics.append({"final": True, "stage_seconds": result.stage_seconds, **{f"val_{k}": v for k, v in
                                                                             result.validation.items()}})
    _atomic_text("".join(json.dumps(m) + "\n" for m in metrics), out / "metrics.jsonl")
    state["complete"] = True
    (out / "checkpoint.pt").unlink(missing_ok=True)
    _atomic_text(json.dumps({k: v for k, v in state.items() if k != "checkpoint"}, indent=2) + "\n",
                 out / "train.json")
    _say(log, f"train: wrote {out / 'preset.toml'} and {', '.join(f'{s.name}.pt' for s in recipe.stages)}")
    return result
