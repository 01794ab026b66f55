"""Detector settings: the :class:`DetectorConfig` dataclass and TOML reading (a leaf: imports nothing of
fcndetect). Resolving the effective settings of a run lives in :mod:`fcndetect.presets`.

Precedence, highest first: explicit options (CLI flags or keyword arguments) > ``--config FILE`` >
the model's own preset (``configs/<preset>.toml``, shipped with the package) > dataclass defaults.
A preset or file may only contain the fields of :class:`DetectorConfig`.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, fields
from importlib import resources
from pathlib import Path, PurePath
from typing import Any, Literal

__all__ = ["DetectorConfig", "ConfigError", "NEUTRAL", "load_preset", "read_config", "read_config_file", "preset_names", "toml_value"]


class ConfigError(ValueError):
    """A preset or config file is missing or invalid (the message names the file)."""


@dataclass(frozen=True)
class DetectorConfig:
    """All settings of a detection run. ``DetectorConfig()`` is the default preset (what ``fcndetect run``
    and ``Detector()`` use); build other settings with :func:`fcndetect.presets.resolve_config` (or
    ``Detector(model=...)``), which starts a named model from neutral single-stage values and its own preset.

    Attributes:
        model: registry name of the model (``fcndetect models``).
        threshold: minimum class probability for a window to count as a detection, in [0, 1].
        nms: ``"max"`` (keep the best box of each overlap group) or ``"avg"`` (DDFD: average the group).
        nms_iou: IoU above which boxes are grouped/suppressed.
        min_size: smallest object side to find, in image pixels.
        max_size: largest object side to find (``None``: the image's shorter side).
        scale_factor: ratio between consecutive pyramid scales, in (0, 1) (``2 ** (-1/3)``: 3 per octave).
        max_det: keep at most this many detections per image, best first.
        min_neighbors: with ``nms = "avg"``, drop clusters of fewer windows than this (1 keeps all).
        regress: refine each window's box with the model's box-regression head, where it has one
            (MTCNN); ``False`` emits the raw windows.
        clip: clip boxes to the image.
        device: torch device, e.g. ``"cpu"`` or ``"cuda"``.
        max_memory_mb: activation budget per image of one network call, in MiB; larger pyramid levels run
            in tiles (with identical results). Small tiles stay in the CPU caches: 32 MiB ran O-Net 1.3x
            (dev photos) to 2.4x (4000x3000 level) faster than untiled on this project's CPU. 0: never tile.
        weights: torchvision models: ``DEFAULT``, a torchvision weight name, or a state-dict path.
        num_classes: outputs of a custom checkpoint (default: 1000 ImageNet classes).
        classes: classes to detect (ImageNet names, indices, groups such as ``cat``); each is one label.
        input_size: native input side of a custom classifier (default: the weights' crop size).
        mean, std: RGB normalisation of a custom classifier, in 0..1 units.
        stages: a cascade's earlier stages, cheapest first (model names); ``model`` is the last stage. The
            first runs densely over the pyramid; each later one classifies only the candidates the stage
            before it kept. Empty: a single dense stage.
        stage_thresholds: one probability per earlier stage that a window must exceed to stay a candidate
            (``threshold`` is the last stage's).
        stage_nms_iou: IoU of the NMS-max that thins candidates between stages.
        rotations: in-plane angles (degrees, counter-clockwise) at which the image is searched; detections
            from every angle are mapped back and merged by one NMS. ``(0,)``: upright only.
        containment: after NMS, drop a detection when more than this fraction of its area lies inside a
            better detection of its label (an eye or cheek box nested in a face, which IoU cannot merge);
            ``None``: off.
        grayscale: convert every input image to grayscale (ITU-R 601 luma, repeated on the three channels)
            before detection, for models trained on grayscale windows (``fcndetect train --grayscale``).
            Outputs (annotated images, crops) keep the original colours.
        fusion: the logit a cascade detection gets: ``"last"`` (the last stage's) or ``"sum"`` (the sum of
            every stage's logit at that window); ``threshold`` compares ``sigmoid`` of it.
        flip: a cascade's last stage also classifies the mirror image of each candidate's crop, and its
            logit for the candidate is the mean of both (the crops are already made, so the pass costs one
            more batch of the last network, on candidates only); for turned faces, which one net scores
            unevenly left and right. Box regression and landmarks stay the unmirrored crop's.
    """

    # The defaults are the default preset, ``configs/face-cascade.toml`` (tests/test_presets.py checks that
    # ``DetectorConfig() == resolve_config()``): P-Net > R-Net > O-Net.
    model: str = "face"
    threshold: float = 0.99
    nms: Literal["max", "avg"] = "avg"
    nms_iou: float = 0.3
    min_size: float = 24.0
    max_size: float | None = None
    scale_factor: float = 2 ** (-1 / 2)
    max_det: int = 300
    min_neighbors: int = 1
    regress: bool = True
    clip: bool = True
    device: str = "cpu"
    max_memory_mb: int = 32
    weights: str | None = None
    num_classes: int | None = None
    classes: tuple[str, ...] | None = None
    input_size: int | None = None
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    stages: tuple[str, ...] = ("face-pnet", "face-rnet")
    stage_thresholds: tuple[float, ...] = (0.4, 0.4)
    stage_nms_iou: float = 0.7
    fusion: Literal["last", "sum"] = "last"
    containment: float | None = 0.8
    rotations: tuple[float, ...] = (0.0,)
    grayscale: bool = False
    flip: bool = True

    def __post_init__(self) -> None:
        for key in ("classes", "mean", "std", "stages", "stage_thresholds", "rotations"):
            value = getattr(self, key)
            if isinstance(value, str):
                value = [v.strip() for v in value.split(",") if v.strip()]
            if value is not None:
                as_str = key in ("classes", "stages")
                try:
                    object.__setattr__(self, key, tuple(str(v) if as_str else float(v) for v in value))
                except (TypeError, ValueError):
                    raise ConfigError(f"{key} must be a list of numbers, got {value!r}") from None
        if not self.rotations:
            raise ConfigError("rotations needs at least one angle (0 is upright)")
        if len(self.stage_thresholds) != len(self.stages):
            raise ConfigError(f"stage_thresholds needs one value per earlier stage ({len(self.stages)}: "
                              f"{', '.join(self.stages) or 'none'}), got {len(self.stage_thresholds)}")
        if any(not 0.0 <= t <= 1.0 for t in self.stage_thresholds):
            raise ConfigError(f"stage_thresholds must be in [0, 1], got {list(self.stage_thresholds)}")
        if not 0.0 <= self.stage_nms_iou <= 1.0:
            raise ConfigError(f"stage_nms_iou must be in [0, 1], got {self.stage_nms_iou}")
        if self.containment is not None and not 0.0 < self.containment <= 1.0:
            raise ConfigError(f"containment must be in (0, 1], got {self.containment}")
        if self.fusion not in ("last", "sum"):
            raise ConfigError(f"fusion must be 'last' or 'sum', got {self.fusion!r}")
        for key in ("mean", "std"):
            value = getattr(self, key)
            if value is not None and len(value) != 3:
                raise ConfigError(f"{key} needs 3 values (R, G, B), got {len(value)}")
        if self.std is not None and min(self.std) <= 0:
            raise ConfigError("std values must be > 0")
        if self.num_classes is not None and self.num_classes < 1:
            raise ConfigError(f"num_classes must be >= 1, got {self.num_classes}")
        if self.input_size is not None and self.input_size < 1:
            raise ConfigError(f"input_size must be >= 1, got {self.input_size}")
        if not 0.0 <= self.threshold <= 1.0:
            raise ConfigError(f"threshold must be in [0, 1], got {self.threshold}")
        if self.nms not in ("max", "avg"):
            raise ConfigError(f"nms must be 'max' or 'avg', got {self.nms!r}")
        if not 0.0 <= self.nms_iou <= 1.0:
            raise ConfigError(f"nms_iou must be in [0, 1], got {self.nms_iou}")
        if not self.min_size > 0:
            raise ConfigError(f"min_size must be > 0, got {self.min_size}")
        if self.max_size is not None and self.max_size < self.min_size:
            raise ConfigError(f"max_size ({self.max_size}) is smaller than min_size ({self.min_size})")
        if not 0.0 < self.scale_factor < 1.0:
            raise ConfigError(f"scale_factor must be in (0, 1), got {self.scale_factor}")
        if self.max_det < 1:
            raise ConfigError(f"max_det must be >= 1, got {self.max_det}")
        if self.max_memory_mb < 0:
            raise ConfigError(f"max_memory_mb must be >= 0, got {self.max_memory_mb}")
        if self.min_neighbors < 1:
            raise ConfigError(f"min_neighbors must be >= 1, got {self.min_neighbors}")

    @classmethod
    def single(cls, **changes: Any) -> "DetectorConfig":
        """Settings of a single dense stage: :data:`NEUTRAL` values (no cascade stages, no containment,
        threshold 0.5, 100 detections) with ``changes`` on top, where ``DetectorConfig(**changes)`` would
        start from the default cascade."""
        return cls(**{**NEUTRAL, **changes})

    def replace(self, **changes: Any) -> "DetectorConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @property
    def chain(self) -> str:
        """The models a detection passes through, for messages: ``"face-pnet > face-rnet > face"``."""
        return " > ".join([*self.stages, self.model])

    def model_options(self) -> dict[str, Any]:
        """Keyword arguments of :func:`fcndetect.models.load_model` besides name and device."""
        return {k: getattr(self, k) for k in ("weights", "num_classes", "classes", "input_size", "mean", "std")}


_FIELDS = {f.name: f for f in fields(DetectorConfig)}

#: What a model's own preset starts from (``resolve_config``, :meth:`DetectorConfig.single`): a single dense
#: stage, no containment, no flip pass, threshold 0.5, 100 detections, three pyramid scales per octave; the
#: dataclass's own defaults are the default cascade.
NEUTRAL: dict[str, Any] = {"threshold": 0.5, "max_det": 100, "stages": (), "stage_thresholds": (),
                           "stage_nms_iou": 0.7, "fusion": "last", "containment": None, "flip": False,
                           "scale_factor": 2 ** (-1 / 3)}


#: The TOML value types each setting accepts (ints are accepted where floats are).
_TYPES: dict[str, tuple[type, ...]] = {
    "model": (str,), "threshold": (float,), "nms": (str,), "nms_iou": (float,), "min_size": (float,),
    "max_size": (float,), "scale_factor": (float,), "max_det": (int,), "min_neighbors": (int,),
    "regress": (bool,), "clip": (bool,), "device": (str,), "max_memory_mb": (int,), "weights": (str, PurePath),
    "num_classes": (int,), "classes": (list, tuple, str), "input_size": (int,), "mean": (list, tuple, str),
    "std": (list, tuple, str), "stages": (list, tuple, str), "stage_thresholds": (list, tuple, str),
    "stage_nms_iou": (float,), "fusion": (str,), "containment": (float,), "rotations": (list, tuple, str),
    "grayscale": (bool,), "flip": (bool,),
}
_TYPE_NAMES = {str: "a string", float: "a number", int: "an integer", bool: "true or false", list: "a list",
               tuple: "a tuple", PurePath: "a path"}


def _check_type(key: str, value: Any, origin: str) -> None:
    if value is None:
        return
    allowed = _TYPES.get(key, ())
    ok = any(
        isinstance(value, t) and not (t in (int, float) and isinstance(value, bool))
        or (t is float and isinstance(value, int) and not isinstance(value, bool))
        for t in allowed
    )
    if allowed and not ok:
        want = " or ".join(_TYPE_NAMES[t] for t in allowed)
        raise ConfigError(f"{origin}: setting '{key}' must be {want}, got {value!r}")


def validate(data: dict[str, Any], origin: str) -> dict[str, Any]:
    unknown = sorted(set(data) - set(_FIELDS))
    if unknown:
        raise ConfigError(f"{origin}: unknown setting(s) {', '.join(unknown)}; valid: {', '.join(_FIELDS)}")
    for key, value in data.items():
        _check_type(key, value, origin)
    out = dict(data)
    for key in ("threshold", "nms_iou", "min_size", "max_size", "scale_factor", "stage_nms_iou", "containment"):
        if key in out and isinstance(out[key], int) and not isinstance(out[key], bool):
            out[key] = float(out[key])
    return out


def toml_value(v: Any) -> str:
    """A setting's value written as TOML (strings quoted and escaped, lists element by element)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    return repr(v)


def preset_names() -> list[str]:
    """Names of the presets shipped in ``configs/``."""
    root = resources.files("fcndetect.configs")
    return sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".toml"))


#: ``model`` values that are exported files (ONNX, TorchScript), resolved like weights paths.
EXPORTED_SUFFIXES = (".onnx", ".pt", ".pth", ".ts", ".torchscript", ".jit")
#: Weight files are recognised by these suffixes (other values are weight names such as ``DEFAULT``).
WEIGHT_SUFFIXES = frozenset({".pt", ".pth", ".bin", ".ckpt"})


def _is_relative_file(value: str, folder: Path, suffixes: frozenset[str]) -> bool:
    p = Path(value)
    return not p.is_absolute() and (p.suffix.lower() in suffixes or "/" in value or (folder / p).exists())


def resolve_paths(data: dict[str, Any], folder: Path) -> dict[str, Any]:
    """``data`` with a relative weights path (``model.pt``, ``../w/x.pth``) or model file (``dense.onnx``, a
    stage's ``pnet.pt``) made relative to ``folder`` instead of the working directory: a preset's files are found wherever it is
    used from."""
    out = dict(data)
    model = out.get("model")
    if isinstance(model, str) and model.lower().endswith(EXPORTED_SUFFIXES) and not Path(model).is_absolute():
        out["model"] = str(folder / model)
    stages = out.get("stages")
    if isinstance(stages, (list, tuple)):
        out["stages"] = type(stages)(str(folder / m) if isinstance(m, str) and m.lower().endswith(EXPORTED_SUFFIXES)
                                     and not Path(m).is_absolute() else m for m in stages)
    weights = out.get("weights")
    if isinstance(weights, (str, PurePath)) and str(weights).lower() not in ("none", "default") \
            and _is_relative_file(str(weights), folder, WEIGHT_SUFFIXES):
        out["weights"] = str(folder / str(weights))
    return out


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Settings from a TOML file (only :class:`DetectorConfig` fields); relative paths inside it are relative
    to the file's folder (:func:`resolve_paths`)."""
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{p}: config file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: cannot read config ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: invalid TOML ({exc})") from None
    return resolve_paths(validate(data, str(p)), p.parent)


def load_preset(name: str) -> dict[str, Any]:
    """Settings of a shipped preset, by name (``face``, ``face-rnet``, ...)."""
    res = resources.files("fcndetect.configs").joinpath(f"{name}.toml")
    if not res.is_file():
        raise ConfigError(f"unknown preset '{name}'; shipped presets: {', '.join(preset_names())}")
    try:
        data = tomllib.loads(res.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"preset {name}: invalid TOML ({exc})") from None
    return validate(data, f"preset {name}")


def read_config(name_or_path: str) -> dict[str, Any]:
    """``--config`` value: a path to a TOML file, or the name of a shipped preset."""
    p = Path(name_or_path)
    if p.suffix == ".toml" or p.exists() or "/" in name_or_path:
        return read_config_file(p)
    return load_preset(name_or_path)
