"""Preset resolution: which settings a run uses.

Precedence, highest first: explicit options (CLI flags or keyword arguments) > ``--config FILE`` or preset
name > the model's own preset (``configs/<preset>.toml``) > neutral single-stage defaults. The settings of
:data:`DEFAULT_PRESET` are also :class:`~fcndetect.config.DetectorConfig`'s own defaults.
"""

from __future__ import annotations

from typing import Any

from .config import NEUTRAL, ConfigError, DetectorConfig, load_preset, read_config, validate
from .models import ModelOptions, check_options, get_spec

__all__ = ["DEFAULT_PRESET", "resolve_config"]


#: The preset used when neither a config nor a model is given: the face cascade (P-Net, then O-Net).
DEFAULT_PRESET = "face-cascade"


def resolve_config(config: str | None = None, **overrides: Any) -> DetectorConfig:
    """The effective settings: ``overrides`` (non-None) > ``config`` file/preset > model preset > defaults.

    With neither ``config`` nor a ``model`` override, ``config`` is :data:`DEFAULT_PRESET`; a ``config`` that
    names no model applies its settings over :data:`DEFAULT_PRESET` (the default model stays). The model is
    taken from ``overrides``, else from the config file; that model's own preset supplies the base values,
    so ``model="X"`` never inherits another model's threshold (``model="face"`` is the single dense O-Net).
    """
    explicit = {k: v for k, v in overrides.items() if v is not None}
    validate(explicit, "options")
    if config is None and "model" not in explicit:
        config = DEFAULT_PRESET
    file_values = read_config(config) if config else {}
    if "model" not in explicit and "model" not in file_values:  # a file of settings alone: the default model
        file_values = {**load_preset(DEFAULT_PRESET), **file_values}
    model = explicit.get("model", file_values.get("model", DetectorConfig.model))
    try:
        spec = get_spec(model)
    except KeyError as exc:
        raise ConfigError(str(exc.args[0])) from None
    except ValueError as exc:  # an exported file that cannot be read (fcndetect.models.ModelLoadError)
        raise ConfigError(str(exc)) from None
    base = {**NEUTRAL, **load_preset(spec.preset), **(spec.preset_values or {})}
    merged = {**base, **file_values, **explicit, "model": model}
    resolved = DetectorConfig(**merged)
    try:  # options the model cannot take (--weights for a model with its own): refused before anything loads
        check_options(spec, ModelOptions(**resolved.model_options()))
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return resolved
