"""The files a detector's settings read from the driver's disk, and the same settings reading copies of them.

Engines that detect on other machines (``--engine ray`` on a cluster without a shared filesystem) read each of
these files once on the driver, send the bytes, and build the detector on each worker from
:func:`localize`'s settings, which name the worker's copies:

* ``model``: an exported model file (``face.onnx``, ``face.pt``/``.ts`` TorchScript);
* ``stage:K``: the K-th earlier stage of a cascade, when it is an exported file;
* ``weights``: a state-dict file (``--weights mbv2.pth``, a trained preset's ``model.pt``);
* ``hub:NAME``: a torchvision architecture's named weights (``DEFAULT``) as torch hub caches them
  (``$TORCH_HOME/hub/checkpoints/NAME``); the worker points torch hub at a folder holding the copy.

A ``package.module:factory`` model is Python code, not a file: :func:`cluster_refusal` says so.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from .registry import find_family

if TYPE_CHECKING:
    from ..config import DetectorConfig

__all__ = ["driver_files", "localize", "build_from_copies", "cluster_refusal", "HUB_PREFIX"]

T = TypeVar("T")

#: key prefix of a torch hub cache entry
HUB_PREFIX = "hub:"


def _is_model_file(name: str) -> bool:
    """Whether the ``--model`` value ``name`` is a file holding the whole model (an exported one)."""
    family = find_family(name)
    return family is not None and family.model_file


def _hub_entry(config: DetectorConfig) -> Path | None:
    """The torch hub cache file a torchvision model's named weights come from (``None``: none is read)."""
    family = find_family(config.model)
    if family is None or family.hub_file is None:
        return None
    return family.hub_file(config.model, config.weights)


def driver_files(config: DetectorConfig) -> dict[str, str]:
    """Every file ``config`` reads from this machine's disk to build its models: key -> path (see the
    module's docstring for the keys). Files that do not exist are left out (building the detector on the
    driver reports them)."""
    out: dict[str, str] = {}
    if _is_model_file(config.model) and os.path.isfile(config.model):
        out["model"] = config.model
    for k, stage in enumerate(config.stages):
        if _is_model_file(stage) and os.path.isfile(stage):
            out[f"stage:{k}"] = stage
    weights = config.weights
    if weights is not None and str(weights).lower() not in ("none", "default") and os.path.isfile(str(weights)):
        out["weights"] = str(weights)
    hub = _hub_entry(config) if "weights" not in out else None
    if hub is not None and hub.is_file():
        out[HUB_PREFIX + hub.name] = str(hub)
    return out


def localize(config: DetectorConfig, paths: Mapping[str, str]) -> DetectorConfig:
    """``config`` reading the copies ``paths`` names (key -> path on this machine), keyed as
    :func:`driver_files` keys them. For a ``hub:NAME`` copy, torch hub's folder becomes
    ``torch-hub`` beside it for this process (:func:`torch.hub.set_dir`), its ``checkpoints/NAME`` a link to it."""
    changes: dict[str, object] = {}
    if "model" in paths:
        changes["model"] = paths["model"]
    if any(key.startswith("stage:") for key in paths):
        changes["stages"] = tuple(paths.get(f"stage:{k}", s) for k, s in enumerate(config.stages))
    if "weights" in paths:
        changes["weights"] = paths["weights"]
    for key, path in paths.items():
        if key.startswith(HUB_PREFIX):
            import torch.hub

            hub = Path(path).parent / "torch-hub"
            entry = hub / "checkpoints" / key[len(HUB_PREFIX):]
            entry.parent.mkdir(parents=True, exist_ok=True)
            if not entry.exists():
                entry.symlink_to(os.path.abspath(path))
            torch.hub.set_dir(str(hub))
    return replace(config, **changes) if changes else config  # type: ignore[arg-type]


def build_from_copies(factory: Callable[[DetectorConfig], T], config: DetectorConfig,
                      paths: Mapping[str, str]) -> T:
    """``factory(localize(config, paths))``: what a worker calls with the paths of its copies
    (``functools.partial(build_from_copies, remote_detect_batch, config)`` pickles)."""
    return factory(localize(config, paths))


def cluster_refusal(config: DetectorConfig) -> str | None:
    """Why ``config`` cannot run on a cluster's workers, which see none of the driver's Python modules (one
    line), or ``None``."""
    for name in (config.model, *config.stages):
        family = find_family(name)
        if family is not None and family.local_code:
            return (f"--model {name}: a module:factory model is Python code on this machine, which the Ray "
                    "cluster's workers do not have; export it (fcndetect export) and pass the .onnx or .pt file, "
                    "or run without --ray-address")
    return None
