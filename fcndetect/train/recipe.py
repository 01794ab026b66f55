"""Training recipes (``fcndetect train --recipe FILE``): a TOML file that names the data, the cascade's stages in
order (architecture, initial weights, schedule, how many windows of each kind) and the settings of the preset
written at the end. See ``configs/train/face.toml`` and the training documentation.

Relative data paths in a recipe are relative to the working directory (a recipe shipped in the package names
the data where the user keeps it); a stage's ``init`` may also name an earlier stage of the same recipe.
"""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from .loop import TrainError

__all__ = ["DataSpec", "StageSpec", "Recipe", "read_recipe", "NET_SIZES", "MTCNN_MODEL_NAMES"]

#: the architectures a stage can train, and their input sides
NET_SIZES = {"pnet": 12, "rnet": 24, "onet": 48}
#: the registered models holding each architecture's released weights (``init = "mtcnn"``)
MTCNN_MODEL_NAMES = {"pnet": "face-pnet", "rnet": "face-rnet", "onet": "face"}


@dataclass(frozen=True)
class DataSpec:
    """Where the windows come from.

    Attributes:
        annotations: annotated photos (WIDER listings with their invalid flags, or any ``eval`` format).
        negatives: folders, files or globs of photos without faces (hard negatives).
        min_face: the ignore rule: faces narrower or shorter than this (pixels) and WIDER's invalid boxes are
            neither faces nor background.
        val_fraction: photos held out (by photo, seeded) to report every epoch and to measure the result.
        max_photos: use only the first N annotated photos (0: all); for quick trials.
    """

    annotations: tuple[str, ...]
    negatives: tuple[str, ...] = ()
    min_face: float = 16.0
    val_fraction: float = 0.1
    max_photos: int = 0


@dataclass(frozen=True)
class StageSpec:
    """One stage of the cascade, trained in recipe order.

    Attributes:
        name: the stage's name; its weights are written as ``OUT/<name>.pt``.
        net: ``pnet`` (12 px), ``rnet`` (24 px) or ``onet`` (48 px): MTCNN's architectures.
        init: ``mtcnn`` (the released weights), an earlier stage's name, or a state-dict path.
        input_size: must be the architecture's (checked).
        epochs, batch_size, lr: the schedule (Adam; the rate halves for the last third of the epochs).
        positives_per_face: jittered windows cut around each face (positives and part faces by IoU).
        negatives_per_photo: random background windows per annotated photo.
        mined_per_photo: at most this many windows the stage before passes, per annotated photo (labelled
            by IoU: the background ones are hard negatives, the face ones positives at that stage's scales).
        scene_negatives_per_photo: at most this many windows the stage before passes per photo without faces.
        box_weight: weight of the box-regression loss beside the classification loss.
        landmark_weight: O-Net only: keep its landmark head close to the initial net's (distillation).
        calibrate_recall: if > 0, after training the face logit's bias is raised (never lowered) until at least
            this share of the held-out positive windows scores above the stage's threshold (the last stage:
            probability 0.5); the ranking is unchanged, and the last stage's preset ``threshold`` moves by the
            same logit, so the written preset keeps its operating point.
    """

    name: str
    net: str
    init: str = "mtcnn"
    input_size: int = 0
    epochs: int = 2
    batch_size: int = 256
    lr: float = 1e-4
    positives_per_face: int = 4
    negatives_per_photo: int = 20
    mined_per_photo: int = 20
    scene_negatives_per_photo: int = 20
    box_weight: float = 0.5
    landmark_weight: float = 0.5
    calibrate_recall: float = 0.0

    @property
    def size(self) -> int:
        return NET_SIZES[self.net]


@dataclass(frozen=True)
class Recipe:
    """A whole cascade's training: ``data``, ``stages`` in order, ``detector`` (the written preset's settings,
    also used to mine each stage's windows from the stages before), ``seed``."""

    data: DataSpec
    stages: tuple[StageSpec, ...]
    detector: dict[str, Any] = field(default_factory=dict)
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Plain values (compared on ``--resume``)."""
        return {"data": asdict(self.data), "stages": [asdict(s) for s in self.stages], "detector": self.detector,
                "seed": self.seed}


def _build(cls: type, table: Any, where: str) -> Any:
    if not isinstance(table, dict):
        raise TrainError(f"{where}: expected a table")
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(table) - set(known))
    if unknown:
        raise TrainError(f"{where}: unknown key(s) {', '.join(unknown)} (known: {', '.join(known)})")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in table.items()}
    try:
        return cls(**values)
    except TypeError as exc:
        raise TrainError(f"{where}: {exc}") from None


def read_recipe(path: str | Path) -> Recipe:
    """Parse and check a recipe file.

    Raises:
        TrainError: unreadable TOML, unknown keys, or values out of range (one line naming the file).
    """
    p = Path(path)
    try:
        raw = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TrainError(f"{p}: recipe not found") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise TrainError(f"{p}: cannot read the recipe ({' '.join(str(exc).split())})") from None
    unknown = sorted(set(raw) - {"data", "stages", "detector", "seed"})
    if unknown:
        raise TrainError(f"{p}: unknown key(s) {', '.join(unknown)} (known: seed, data, detector, stages)")
    data = _build(DataSpec, raw.get("data"), f"{p}: [data]")
    if isinstance(data.annotations, str) or not data.annotations:
        raise TrainError(f"{p}: [data] annotations must list at least one annotation file")
    if not 0.0 <= data.val_fraction < 1.0 or data.min_face < 1:
        raise TrainError(f"{p}: [data] val_fraction must be in [0, 1) and min_face >= 1")
    stages_raw = raw.get("stages")
    if not isinstance(stages_raw, list) or not stages_raw:
        raise TrainError(f"{p}: the recipe needs at least one [[stages]] table")
    stages: list[StageSpec] = []
    for k, table in enumerate(stages_raw):
        where = f"{p}: [[stages]] #{k + 1}"
        st = _build(StageSpec, table, where)
        if st.net not in NET_SIZES:
            raise TrainError(f"{where}: net {st.net!r}: use one of {', '.join(NET_SIZES)}")
        if st.input_size not in (0, st.size):
            raise TrainError(f"{where}: {st.net} takes {st.size} px windows, not input_size {st.input_size}")
        if st.name in {s.name for s in stages} or not st.name.replace("-", "").replace("_", "").isalnum():
            raise TrainError(f"{where}: name {st.name!r} must be unique and made of letters, digits, - and _")
        for key in ("epochs", "batch_size", "positives_per_face"):
            if getattr(st, key) < 1:
                raise TrainError(f"{where}: {key} must be >= 1")
        if not 0.0 <= st.calibrate_recall < 1.0:
            raise TrainError(f"{where}: calibrate_recall must be in [0, 1)")
        if not st.lr > 0 or min(st.negatives_per_photo, st.mined_per_photo, st.scene_negatives_per_photo) < 0:
            raise TrainError(f"{where}: lr must be > 0 and window counts >= 0")
        stages.append(st)
    detector = raw.get("detector", {})
    if not isinstance(detector, dict):
        raise TrainError(f"{p}: [detector] must be a table of preset settings")
    from ..config import ConfigError, validate

    try:
        detector = validate(detector, f"{p}: [detector]")
    except ConfigError as exc:
        raise TrainError(str(exc)) from None
    if "stage_thresholds" in detector and len(detector["stage_thresholds"]) != len(stages) - 1:
        raise TrainError(f"{p}: [detector] stage_thresholds needs one value per stage but the last "
                         f"({len(stages) - 1})")
    if any(k in detector for k in ("model", "stages", "weights")):
        raise TrainError(f"{p}: [detector] model, stages and weights are the trained stages: leave them out")
    seed = raw.get("seed", 0)
    if not isinstance(seed, int):
        raise TrainError(f"{p}: seed must be an integer")
    return Recipe(data, tuple(stages), dict(detector), seed)
