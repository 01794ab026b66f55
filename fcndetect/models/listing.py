"""The model catalogue (what ``fcndetect models`` prints): the registered face models, the built-in
trainable architectures, the torchvision architectures and the cascade presets, each with its window,
stride, receptive field, preset and weights."""

from __future__ import annotations

from dataclasses import dataclass

from ..config import DetectorConfig, load_preset, preset_names
from ..presets import DEFAULT_PRESET
from . import known
from .registry import list_models

__all__ = ["CascadePreset", "ModelRow", "cascade_presets", "catalogue", "format_catalogue", "model_rows"]


@dataclass(frozen=True)
class ModelRow:
    """One model of the catalogue, every field as printed (``-`` unknown without building, ``?`` failed)."""

    name: str
    window: str
    stride: str
    rf: str
    preset: str
    weights: str


@dataclass(frozen=True)
class CascadePreset:
    """A shipped preset with several stages: its name, model chain and per-stage thresholds (the final
    threshold last); ``default`` marks the preset used without --config or --model."""

    name: str
    chain: str
    thresholds: list[float | None]
    default: bool


def model_rows(geometry: bool = False) -> list[ModelRow]:
    """Every model usable with ``--model``: registered models and the built-in trainable architectures with
    their declared geometry, and the torchvision architectures (their stride and receptive field only with
    ``geometry``, which builds each; nothing is downloaded). Without ``geometry`` nothing is built and torch
    is not imported."""
    rows = [ModelRow(spec.name, str(spec.window), _known(spec.stride), _known(spec.receptive_field), spec.preset,
                     spec.source) for spec in list_models()]
    for name, arch in known.BUILTIN_ARCHS.items():
        rows.append(ModelRow(name, str(arch.window), str(arch.stride), str(arch.receptive_field), "custom",
                             "--weights OUT/model.pt from `fcndetect train` (or --config OUT/preset.toml)"))
    hub = known.hub_checkpoints_dir()
    for name, (input_size, default_file) in sorted(known.TORCHVISION_ARCHS.items()):
        stride = rf = "-"
        if geometry:
            from .registry import load_model

            try:
                g = load_model(name, weights="none").dense.geometry
                stride, rf = str(g.stride), str(g.receptive_field)
            except Exception as exc:  # noqa: BLE001
                stride, rf = "?", str(exc)
        cached = (hub / default_file).is_file()
        rows.append(ModelRow(name, str(input_size), stride, rf, "imagenet",
                             f"DEFAULT {'cached: ' if cached else 'not cached ('}{default_file}{'' if cached else ')'}"))
    return rows


def _known(value: int | None) -> str:
    return "-" if value is None else str(value)


def cascade_presets() -> list[CascadePreset]:
    """The shipped presets with stages, by name."""
    out = []
    for name in preset_names():
        values = load_preset(name)
        if values.get("stages"):
            thresholds = [*values.get("stage_thresholds", []), values.get("threshold")]
            out.append(CascadePreset(name, DetectorConfig(**values).chain, thresholds, name == DEFAULT_PRESET))
    return out


def format_catalogue(rows: list[ModelRow], cascades: list[CascadePreset], unsupported: list[str]) -> str:
    """The catalogue as text: an aligned table of ``rows`` (the weights column last, unpadded), the
    cascade presets (the default marked ``*``) and the architectures that cannot be converted."""
    header = ("name", "window", "stride", "rf", "preset", "weights")
    table = [header, *((r.name, r.window, r.stride, r.rf, r.preset, r.weights) for r in rows)]
    widths = [max(len(r[i]) for r in table) for i in range(len(header) - 1)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1] for r in table]
    if cascades:
        lines += ["", "cascade presets (--config NAME; the default is marked *):"]
        lines += [f"{'*' if c.default else ' '} {c.name}: {c.chain}, thresholds {c.thresholds}" for c in cascades]
    if unsupported:
        lines += ["", "not convertible: " + ", ".join(sorted(unsupported)) + " (see --model NAME for why)"]
    return "\n".join(lines)


def catalogue(geometry: bool = False) -> str:
    """The whole catalogue as ``fcndetect models`` prints it (see :func:`format_catalogue`)."""
    return format_catalogue(model_rows(geometry), cascade_presets(), sorted(known.TORCHVISION_UNCONVERTIBLE))
