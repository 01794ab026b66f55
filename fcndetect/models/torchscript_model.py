"""Detect with an exported TorchScript file (``fcndetect run --model dense.pt``).

The file is one written by ``fcndetect export --format torchscript`` (:mod:`fcndetect.export`): a traced dense
network whose extra file ``fcndetect.json`` gives the geometry, normalisation, class groups and preset, so the
usual pipeline (pyramid, NMS) runs unchanged around a :class:`TorchScriptDenseModel`, which behaves like a
``DenseModel`` (``forward``, ``forward_with_regression``, ``geometry``, ``regressor``) but runs the file.

Any other ``.pt``/``.pth`` file (a state dict, a pickled module) is refused in one line that says what to do.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import torch

from .exported import ExportedDenseModel, parse_metadata
from .known import TORCHSCRIPT_SUFFIXES, is_torchscript_path
from .torchvision_models import ModelLoadError, require_regular_file

__all__ = ["TORCHSCRIPT_SUFFIXES", "TorchScriptDenseModel", "is_torchscript_path", "read_torchscript_metadata"]

_EXTRA = "fcndetect.json"


def _extra_member(path: str) -> str | None:
    """The archive member holding fcndetect's metadata, or None (not a zip, or no such member)."""
    try:
        with zipfile.ZipFile(path) as archive:
            for member in archive.namelist():
                if member.endswith(f"/extra/{_EXTRA}"):
                    return member
    except (OSError, zipfile.BadZipFile):
        return None
    return None


def read_torchscript_metadata(path: str) -> dict[str, Any]:
    """The fcndetect metadata of an exported TorchScript file.

    Raises:
        ModelLoadError: missing file, or a file that is not one ``fcndetect export --format torchscript`` wrote
            (for a state dict it says to use ``--weights``).
    """
    require_regular_file(Path(path), "model file")
    member = _extra_member(path)
    if member is None:
        raise ModelLoadError(
            f"{path}: not an exported fcndetect model (write one with `fcndetect export MODEL --format "
            f"torchscript`); a checkpoint or state dict is given as --model ARCH --weights {path}")
    with zipfile.ZipFile(path) as archive:
        raw = archive.read(member)
    return parse_metadata(raw, path, "unreadable fcndetect metadata: export it again with `fcndetect export`")


class TorchScriptDenseModel(ExportedDenseModel):
    """An exported dense network run by TorchScript: ``[B, 3, H, W]`` normalised float32 to ``[B, K, H', W']``
    logits (and ``[B, 4 or 14, H', W']`` regression), as the original ``DenseModel``."""

    def __init__(self, path: str, device: str | torch.device = "cpu") -> None:
        super().__init__(path, read_torchscript_metadata(path))
        try:
            self.module = torch.jit.load(path, map_location=device).eval()
        except Exception as exc:  # noqa: BLE001 - torch.jit raises many types
            raise ModelLoadError(f"{path}: cannot load TorchScript ({' '.join(str(exc).split())[:200]})") from None

    def _outputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = self.module(x)
        return list(out) if isinstance(out, (tuple, list)) else [out]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._outputs(x)[0]

    def forward_with_regression(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        out = self._outputs(x)
        return out[0], (torch.cat(out[1:], dim=1) if len(out) > 1 else None)
