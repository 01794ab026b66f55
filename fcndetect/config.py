"""Detector settings: the :class:`DetectorConfig` dataclass and TOML reading (a leaf: imports nothing of
fcndetect). Resolving the effective settings of a run lives in :mod:`fcndetect.presets`.

Precedence, highest first: explicit options (CLI flags or keyword arguments) > ``--config FILE`` >
the model's own preset (``configs/<preset>.toml``, shipped with the package) > the declared (neutral) defaults.
A preset or file may only contain the fields of :class:`DetectorConfig`.

Each setting is declared once, as a field of :class:`DetectorConfig` (:func:`setting`): its type annotation,
default, help, bounds, group and flags. Everything else follows from that declaration (:data:`SETTINGS`): the
TOML value types a file may give, the checks of every file, flag and ``DetectorConfig``, ``--print-config``'s
TOML, and the command line's options (:func:`fcndetect.cli.common.setting_options`)."""

from __future__ import annotations

import dataclasses
import math
import tomllib
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path, PurePath
from types import UnionType
from collections.abc import Callable, Sequence
from typing import Any, Literal, TypedDict, Union, get_args, get_origin, get_type_hints

__all__ = ["DetectorConfig", "ConfigError", "SETTINGS", "Setting", "Settings", "load_preset", "parse_mib", "read_config",
           "read_config_file", "preset_names", "setting", "toml_value"]


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

#: The groups a setting belongs to: what is detected and how (``detection``), which model and its weights
#: (``model``: :meth:`DetectorConfig.model_options`), and where and within what budget it runs (``runtime``).
GROUPS = ("detection", "model", "runtime")


def setting(default: Any, help: str, bounds: Bounds | None = None, *, group: str = "detection",
            flags: tuple[str, ...] | None = None, parse: Callable[[str], Any] | None = None,
            types: tuple[type, ...] | None = None) -> Any:
    """A setting's one declaration, beside its type annotation in :class:`DetectorConfig`: its default (the
    neutral value a model's preset starts from), its help (``--help``, docs), its bounds (numbers, checked in
    every settings file, flag and ``DetectorConfig``), its group (:data:`GROUPS`), its command-line flags
    when they are not ``--name-with-dashes`` (``("-t", "--threshold")``, ``("--grayscale/--color",)``; ``()``:
    none), a parser of the flag's text when it is not the annotation's type (``--max-memory 1G``), and the
    TOML value types it accepts when they are not those its annotation says."""
    if group not in GROUPS:
        raise ValueError(f"setting group {group!r} is not one of {GROUPS}")
    return field(default=default, metadata={"help": help, "bounds": bounds, "group": group, "flags": flags,
                                            "parse": parse, "types": types})


def parse_mib(text: str) -> int:
    """A memory size as MiB: ``512``, ``512M``, ``2G``, ``2GiB`` (:class:`ConfigError` for anything else, or a
    negative or non-finite size)."""
    t = text.strip().upper().removesuffix("IB").removesuffix("B")
    mult = {"K": 1 / 1024, "M": 1, "G": 1024, "T": 1024 * 1024}.get(t[-1:], None)
    try:
        value = float(t[:-1]) * mult if mult is not None else float(t)
    except ValueError:
        raise ConfigError(f"expected a size such as 512M or 2G, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise ConfigError(f"expected a size >= 0 such as 512M or 2G, got {text!r}")
    return int(value)


@dataclass(frozen=True)
class DetectorConfig:
    """All settings of a detection run, each declared once below (:func:`setting`: default, help, bounds,
    group, flags); ``fcndetect run --help`` and :data:`SETTINGS` show every one.

    The defaults are neutral single-stage values: ``DetectorConfig(model="mobilenet_v2")`` is a valid setting
    of any model. The presets (``configs/*.toml``, the default ``face-cascade`` included) are TOML files on top
    of them; :func:`fcndetect.presets.resolve_config` and ``Detector(...)`` apply a model's own preset.
    """

    # model: which classifier, and how it is loaded (DetectorConfig.model_options)
    model: str = setting("face", "Model name (see `fcndetect models`). Default: the three-stage face cascade "
                         "preset face-cascade (face-pnet > face-rnet > face); `face` is the dense O-Net alone.",
                         group="model", flags=("-m", "--model"))
    weights: str | None = setting(None, "torchvision models: DEFAULT, a weight name, or a state-dict PATH "
                                  "(none: random).", group="model", types=(str, PurePath))
    num_classes: int | None = setting(None, "Outputs of a custom checkpoint (default 1000).", Bounds(1, 1_000_000),
                                      group="model")
    classes: tuple[str, ...] | None = setting(None, "Classes to detect: ImageNet names, indices or groups (cat, "
                                              "dog); each is one label.", group="model")
    input_size: int | None = setting(None, "Native input side of a custom classifier (default: the weights' "
                                     "crop size).", Bounds(1, 16384), group="model")
    mean: tuple[float, float, float] | None = setting(None, "R,G,B mean of a custom classifier (0..1 units).",
                                                      Bounds(-1e6, 1e6), group="model")
    std: tuple[float, float, float] | None = setting(None, "R,G,B std of a custom classifier (0..1 units).",
                                                     Bounds(0.0, 1e6, lo_open=True), group="model")
    # detection: what counts as a detection, and how windows are searched and merged
    threshold: float = setting(0.5, "Minimum class probability of a window (the last stage's, in a "
                               "cascade).", _PROB, flags=("-t", "--threshold"))
    nms: Literal["max", "avg"] = setting("avg", "NMS-max (keep the best box of each overlapping group) or "
                                         "NMS-avg (DDFD: average the group).")
    nms_iou: float = setting(0.3, "IoU that groups/suppresses boxes.", _PROB)
    min_size: float = setting(24.0, "Smallest object side in pixels.", Bounds(0.0, 1e6, lo_open=True))
    max_size: float | None = setting(None, "Largest object side in pixels (default: the image's shorter side).",
                                     Bounds(0.0, 1e6, lo_open=True))
    scale_factor: float = setting(2 ** (-1 / 3), "Ratio between pyramid scales (0..1; 2^(-1/3): three per "
                                  "octave).", Bounds(0.0, 2 ** (-1 / MAX_LEVELS_PER_OCTAVE), lo_open=True,
                                                     why=f"at most {MAX_LEVELS_PER_OCTAVE} pyramid levels per octave"))
    max_det: int = setting(100, "At most this many detections per image, best first.", Bounds(1, 1_000_000))
    min_neighbors: int = setting(1, "NMS-avg: drop clusters of fewer windows (1 keeps all).", Bounds(1, 1_000_000))
    regress: bool = setting(True, "Refine boxes with the model's box-regression head, where it has one (MTCNN).")
    clip: bool = setting(True, "Clip boxes to the image.")
    stages: tuple[str, ...] = setting((), "A cascade's earlier stages, cheapest first (model names); the model is "
                                      "the last. The first runs densely, each later one on the candidates the "
                                      "one before kept. Empty: a single dense stage.")
    stage_thresholds: tuple[float, ...] = setting((), "One probability per earlier stage that a window must "
                                                  "exceed to stay a candidate.", Bounds(0.0, 1.0, max_len=MAX_STAGES))
    stage_nms_iou: float = setting(0.7, "IoU of the NMS-max that thins candidates between stages.", _PROB)
    fusion: Literal["last", "sum"] = setting("last", "A cascade detection's logit: the last stage's, or the sum "
                                             "of every stage's logit at that window.")
    containment: float | None = setting(None, "After NMS, drop a detection lying more than this fraction inside "
                                        "a better one of its label (an eye nested in a face); unset: off.",
                                        Bounds(0.0, 1.0, lo_open=True))
    rotations: tuple[float, ...] = setting((0.0,), "Also search rotated copies: angles in degrees, "
                                           "counter-clockwise, e.g. 0,90,180,270 (0: upright only).",
                                           Bounds(-360.0, 360.0, max_len=MAX_ROTATIONS, why="degrees"))
    grayscale: bool = setting(False, "Convert every image to grayscale before detection (models trained on gray "
                              "windows; outputs keep the colours).", flags=("--grayscale/--color",))
    flip: bool = setting(False, "A cascade's last stage also scores each candidate's mirror image; the logit is "
                         "the mean of both.")
    # runtime: where it runs and within what memory (never changes a detection)
    device: str = setting("cpu", "Torch device: cpu, cuda, cuda:1, mps.", group="runtime")
    max_memory_mb: int = setting(32, "Activation budget per image and network call, e.g. 32M, 1G; larger pyramid "
                                 "levels run in tiles (default: the preset's, 32 MiB for the face presets, 1 GiB "
                                 "for torchvision presets).", Bounds(0, 1 << 24, why="0: never tile; at most 16 TiB"),
                                 group="runtime", flags=("--max-memory",), parse=parse_mib)

    def __post_init__(self) -> None:
        for key, info in SETTINGS.items():
            value = getattr(self, key)
            if not info.is_list:
                continue
            if isinstance(value, str):
                value = [v.strip() for v in value.split(",") if v.strip()]
            if value is not None:
                as_str = info.kind is str
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
        for key, info in SETTINGS.items():
            if info.choices and getattr(self, key) not in info.choices:
                raise ConfigError(f"{key} must be {' or '.join(map(repr, info.choices))}, got {getattr(self, key)!r}")
        for key, info in SETTINGS.items():
            value = getattr(self, key)
            if info.length is not None and value is not None and len(value) != info.length:
                raise ConfigError(f"{key} needs {info.length} values, got {len(value)}")
        if self.max_size is not None and self.max_size < self.min_size:
            raise ConfigError(f"max_size ({self.max_size}) is smaller than min_size ({self.min_size})")

    def replace(self, **changes: Any) -> "DetectorConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @property
    def chain(self) -> str:
        """The models a detection passes through, for messages: ``"face-pnet > face-rnet > face"``."""
        return " > ".join([*self.stages, self.model])

    def model_options(self) -> dict[str, Any]:
        """Keyword arguments of :func:`fcndetect.models.load_model` besides name and device: the ``model``
        group's settings."""
        return {k: getattr(self, k) for k, info in SETTINGS.items() if info.group == "model" and k != "model"}


class Settings(TypedDict, total=False):
    """The keywords of ``Detector(...)`` and :func:`fcndetect.presets.resolve_config`, typed for editors and
    type checkers: every :class:`DetectorConfig` setting, ``None`` meaning "from the preset". It only mirrors
    the declarations (a test checks that names and types agree, so a new setting cannot be missed here)."""

    model: str | None
    weights: str | None
    num_classes: int | None
    classes: Sequence[str] | str | None
    input_size: int | None
    mean: Sequence[float] | str | None
    std: Sequence[float] | str | None
    threshold: float | None
    nms: Literal["max", "avg"] | None
    nms_iou: float | None
    min_size: float | None
    max_size: float | None
    scale_factor: float | None
    max_det: int | None
    min_neighbors: int | None
    regress: bool | None
    clip: bool | None
    stages: Sequence[str] | str | None
    stage_thresholds: Sequence[float] | str | None
    stage_nms_iou: float | None
    fusion: Literal["last", "sum"] | None
    containment: float | None
    rotations: Sequence[float] | str | None
    grayscale: bool | None
    flip: bool | None
    device: str | None
    max_memory_mb: int | None


_FIELDS = {f.name: f for f in fields(DetectorConfig)}

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


_HINTS = get_type_hints(DetectorConfig)


@dataclass(frozen=True)
class Setting:
    """What one declaration in :class:`DetectorConfig` says about its setting, for every consumer (TOML
    reading and writing, validation, the command line's options, the docs).

    Attributes:
        name, default, help, group, bounds, parse: as declared (:func:`setting`).
        flags: the command-line declarations (``("--nms-iou",)``; ``()``: no flag).
        kind: the type of the value, or of each element of a list (``str``, ``float``, ``int``, ``bool``).
        is_list: a list of ``kind`` (a TOML list; on the command line comma-separated or repeated).
        choices: the values a ``Literal`` setting takes (empty otherwise).
        optional: ``None`` is a valid value.
        length: the number of values of a fixed-length list (``tuple[float, float, float]``: 3), else None.
        toml_types: the TOML value types a file may give (a TOML list, or ``"a, b"`` as a flag gives it, for
            a list; ints where floats are expected); ``setting(types=...)`` where they are others.
    """

    name: str
    default: Any
    help: str
    group: str
    bounds: Bounds | None
    parse: Callable[[str], Any] | None
    flags: tuple[str, ...]
    kind: type
    is_list: bool
    choices: tuple[str, ...]
    optional: bool
    length: int | None
    toml_types: tuple[type, ...]


def _describe(f: dataclasses.Field[Any]) -> Setting:
    if "help" not in f.metadata:
        raise TypeError(f"DetectorConfig.{f.name}: declare a setting with setting(default, help, ...)")
    annotation = _HINTS[f.name]
    args = get_args(annotation) if get_origin(annotation) in (Union, UnionType) else (annotation,)
    optional = type(None) in args
    (core,) = [a for a in args if a is not type(None)]
    is_list = get_origin(core) is tuple
    kind = get_args(core)[0] if is_list else core
    length = len(get_args(core)) if is_list and Ellipsis not in get_args(core) else None
    choices = tuple(get_args(kind)) if get_origin(kind) is Literal else ()
    flags = f.metadata["flags"]
    return Setting(f.name, f.default, f.metadata["help"], f.metadata["group"], f.metadata["bounds"],
                   f.metadata["parse"], ("--" + f.name.replace("_", "-"),) if flags is None else flags,
                   str if choices else kind, is_list, choices, optional, length,
                   f.metadata["types"] or ((list, tuple, str) if is_list else (str if choices else kind,)))


#: Every setting, in declaration order, as its declaration says.
SETTINGS: dict[str, Setting] = {f.name: _describe(f) for f in fields(DetectorConfig)}

#: The TOML value types each setting accepts, from its declaration.
_TYPES: dict[str, tuple[type, ...]] = {k: info.toml_types for k, info in SETTINGS.items()}
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
                         if isinstance(value, str) and SETTINGS[key].is_list and SETTINGS[key].kind is not str
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
