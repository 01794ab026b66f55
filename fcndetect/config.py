"""Detector settings: the :class:`DetectorConfig` dataclass and TOML reading (a leaf: imports nothing of
fcndetect). Resolving the effective settings of a run lives in :mod:`fcndetect.presets`.

Precedence, highest first: explicit options (CLI flags or keyword arguments) > ``--config FILE`` >
the model's own preset (``configs/<preset>.toml``, shipped with the package) > dataclass defaults.
A preset or file may only contain the fields of :class:`DetectorConfig`.

Each setting is declared once, as a field of :class:`DetectorConfig`: its type annotation (from which the TOML
value types follow), its default, and its bounds (:func:`setting`), from which every settings file and every
``DetectorConfig`` is checked.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path, PurePath
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

__all__ = ["DetectorConfig", "ConfigError", "NEUTRAL", "load_preset", "read_config", "read_config_file", "preset_names", "toml_value"]


class ConfigError(ValueError):
    """A preset or config file is missing or invalid (the message names the file)."""


#: The most pyramid levels per octave (halving of the scale) a run may search: ``scale_factor`` is at most
#: ``2 ** (-1 / MAX_LEVELS_PER_OCTAVE)`` (about 0.9786). Three levels per octave (``2 ** (-1 / 3)``) is usual.
MAX_LEVELS_PER_OCTAVE = 32
#: The most rotation angles, and cascade stages, one run may search with.
MAX_ROTATIONS, MAX_STAGES = 360, 16


@dataclass(frozen=True)
class Bounds:
    """The values a numeric setting accepts: ``lo``..``hi`` (each end open or closed), finite, and for a
    list, at most ``max_len`` elements each in range. ``why``: what the bound keeps safe (said in the error)."""

    lo: float
    hi: float
    lo_open: bool = False
    hi_open: bool = False
    max_len: int | None = None
    why: str = ""

    def contains(self, v: float) -> bool:
        above = v > self.lo if self.lo_open else v >= self.lo
        below = v < self.hi if self.hi_open else v <= self.hi
        return bool(math.isfinite(v) and above and below)

    def text(self) -> str:
        return f"{'(' if self.lo_open else '['}{_num(self.lo)}, {_num(self.hi)}{')' if self.hi_open else ']'}"


def _num(v: float) -> str:
    """A bound as text: whole numbers in full (``1000000``), others to 6 digits."""
    return str(int(v)) if float(v).is_integer() else f"{v:.6g}"


_PROB = Bounds(0.0, 1.0)


def setting(default: Any, bounds: Bounds | None = None, types: tuple[type, ...] | None = None) -> Any:
    """A setting's declaration beside its type annotation: its default, its bounds (numbers, checked in every
    settings file and in code), and the TOML value types it accepts when they are not those its annotation
    says (``str`` -> a string, ``float`` -> a number, ``tuple`` -> a list, ...)."""
    return field(default=default, metadata={"bounds": bounds, "types": types})


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
    threshold: float = setting(0.99, _PROB)
    nms: Literal["max", "avg"] = "avg"
    nms_iou: float = setting(0.3, _PROB)
    min_size: float = setting(24.0, Bounds(0.0, 1e6, lo_open=True))
    max_size: float | None = setting(None, Bounds(0.0, 1e6, lo_open=True))
    scale_factor: float = setting(2 ** (-1 / 2), Bounds(0.0, 2 ** (-1 / MAX_LEVELS_PER_OCTAVE), lo_open=True,
                                  why=f"at most {MAX_LEVELS_PER_OCTAVE} pyramid levels per octave"))
    max_det: int = setting(300, Bounds(1, 1_000_000))
    min_neighbors: int = setting(1, Bounds(1, 1_000_000))
    regress: bool = True
    clip: bool = True
    device: str = "cpu"
    max_memory_mb: int = setting(32, Bounds(0, 1 << 24, why="0: never tile; at most 16 TiB"))
    weights: str | None = setting(None, types=(str, PurePath))
    num_classes: int | None = setting(None, Bounds(1, 1_000_000))
    classes: tuple[str, ...] | None = None
    input_size: int | None = setting(None, Bounds(1, 16384))
    mean: tuple[float, float, float] | None = setting(None, Bounds(-1e6, 1e6))
    std: tuple[float, float, float] | None = setting(None, Bounds(0.0, 1e6, lo_open=True))
    stages: tuple[str, ...] = ("face-pnet", "face-rnet")
    stage_thresholds: tuple[float, ...] = setting((0.4, 0.4), Bounds(0.0, 1.0, max_len=MAX_STAGES))
    stage_nms_iou: float = setting(0.7, _PROB)
    fusion: Literal["last", "sum"] = "last"
    containment: float | None = setting(0.8, Bounds(0.0, 1.0, lo_open=True))
    rotations: tuple[float, ...] = setting((0.0,), Bounds(-360.0, 360.0, max_len=MAX_ROTATIONS, why="degrees"))
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
                except (TypeError, ValueError, OverflowError):
                    raise ConfigError(f"{key} must be a list of numbers, got {value!r}") from None
        for key in _BOUNDS:
            check_bounds(key, getattr(self, key))
        if len(self.stages) > MAX_STAGES:
            raise ConfigError(f"stages takes at most {MAX_STAGES} models, got {len(self.stages)}")
        if not self.rotations:
            raise ConfigError("rotations needs at least one angle (0 is upright)")
        if len(self.stage_thresholds) != len(self.stages):
            raise ConfigError(f"stage_thresholds needs one value per earlier stage ({len(self.stages)}: "
                              f"{', '.join(self.stages) or 'none'}), got {len(self.stage_thresholds)}")
        if self.fusion not in ("last", "sum"):
            raise ConfigError(f"fusion must be 'last' or 'sum', got {self.fusion!r}")
        for key in ("mean", "std"):
            value = getattr(self, key)
            if value is not None and len(value) != 3:
                raise ConfigError(f"{key} needs 3 values (R, G, B), got {len(value)}")
        if self.nms not in ("max", "avg"):
            raise ConfigError(f"nms must be 'max' or 'avg', got {self.nms!r}")
        if self.max_size is not None and self.max_size < self.min_size:
            raise ConfigError(f"max_size ({self.max_size}) is smaller than min_size ({self.min_size})")

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


#: Every numeric setting's accepted values, from its declaration (``DetectorConfig``'s field ``metadata``):
#: anything outside is refused before any work (:func:`check_bounds`), so no setting can make a run's work or
#: memory unbounded or its arithmetic overflow.
_BOUNDS: dict[str, Bounds] = {f.name: f.metadata["bounds"] for f in fields(DetectorConfig) if f.metadata.get("bounds")}


def check_bounds(key: str, value: Any, origin: str | None = None) -> None:
    """Raise :class:`ConfigError` (one line naming the setting) when ``value`` is outside ``key``'s bounds."""
    bounds = _BOUNDS.get(key)
    if bounds is None or value is None:
        return
    where = f"{origin}: " if origin else ""
    note = f" ({bounds.why})" if bounds.why else ""
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    if bounds.max_len is not None and len(items) > bounds.max_len:
        raise ConfigError(f"{where}{key} takes at most {bounds.max_len} values, got {len(items)}")
    for v in items:
        try:
            number = float(v)
        except (TypeError, ValueError, OverflowError):
            continue  # the type check's error
        if not bounds.contains(number):
            raise ConfigError(f"{where}{key} must be in {bounds.text()}{note}, got {v!r}")


def _toml_types(annotation: Any) -> tuple[type, ...]:
    """The TOML value types a setting of this annotation accepts (ints are accepted where floats are)."""
    args = [a for a in get_args(annotation) if a is not type(None)] if get_origin(annotation) in (Union, UnionType) \
        else [annotation]
    out: list[type] = []
    for a in args:
        origin = get_origin(a)
        if origin is Literal:
            out.append(str)
        elif origin is tuple or a is tuple:
            out += [list, tuple, str]  # a TOML list, or "a, b" as a flag gives it
        else:
            out.append(a)
    return tuple(dict.fromkeys(out))


_HINTS = get_type_hints(DetectorConfig)
#: The TOML value types each setting accepts, from its declaration (annotation, or ``setting(types=...)``).
_TYPES: dict[str, tuple[type, ...]] = {f.name: f.metadata.get("types") or _toml_types(_HINTS[f.name])
                                       for f in fields(DetectorConfig)}
#: The settings that are numbers (an int in a file becomes a float).
_FLOATS = tuple(k for k, t in _TYPES.items() if t == (float,))
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
        if origin != "options":  # a flag's value is checked by DetectorConfig itself, without an origin
            check_bounds(key, [x.strip() for x in value.split(",") if x.strip()]
                         if isinstance(value, str) and key in ("rotations", "mean", "std", "stage_thresholds")
                         else value, origin)
    out = dict(data)
    for key in _FLOATS:
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
