"""Named models: the MTCNN face classifiers and (with their weights) torchvision classifiers."""

from .registry import ClassGroup, LoadedModel, ModelSpec, get_spec, list_models, load_model, register_model

__all__ = ["ClassGroup", "LoadedModel", "ModelSpec", "get_spec", "list_models", "load_model", "register_model"]
