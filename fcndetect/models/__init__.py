"""Named models and model families: the MTCNN face classifiers, exported files, your own classifiers and
(with their weights) torchvision classifiers, in one registry (:mod:`.registry`; the built-ins: :mod:`.families`)."""

from . import families as _families  # noqa: F401  (registers the built-in models and families)
from .registry import (ClassGroup, LoadedModel, ModelFamily, ModelOptions, ModelSpec, check_options, find_family,
                       get_spec, list_models, load_model, register_family, register_model)

__all__ = ["ClassGroup", "LoadedModel", "ModelFamily", "ModelOptions", "ModelSpec", "check_options", "find_family",
           "get_spec", "list_models", "load_model", "register_family", "register_model"]
