"""What the two runners of exported files share (:mod:`.onnx_model`, :mod:`.torchscript_model`): reading the
metadata ``fcndetect export`` writes, and a ``DenseModel``-like base module built from it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..export import FORMAT
from ..geometry import Geometry
from .torchvision_models import ModelLoadError

__all__ = ["ExportedDenseModel", "parse_metadata"]


def parse_metadata(raw: str | bytes | None, path: str, missing: str) -> dict[str, Any]:
    """The metadata object in ``raw`` (JSON), or :class:`ModelLoadError` ``"PATH: missing"`` when it is absent,
    not JSON, or not of fcndetect's export format."""
    try:
        data = json.loads(raw) if raw else None
    except ValueError:
        data = None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ModelLoadError(f"{path}: {missing}")
    return data


class _Regressor(nn.Module):
    """Marks that the file has regression outputs (``DenseModel.regressor is not None``)."""


class ExportedDenseModel(nn.Module):
    """Base of a network run from an exported file: ``geometry`` and ``regressor`` from its metadata, the file's
    SHA-256 as a buffer (``run.json``'s fingerprint), and :meth:`output_size` probed once per size through
    :meth:`forward` (``[B, 3, H, W]`` normalised float32 to ``[B, K, H', W']`` logits)."""

    def __init__(self, path: str, metadata: dict[str, Any]) -> None:
        super().__init__()
        self.path = path
        self.metadata = metadata
        g = metadata["geometry"]
        self.geometry = Geometry(int(g["stride"]), float(g["offset"]), int(g["window"]), int(g["receptive_field"]),
                                 int(g["rf_offset"]))
        self.regressor = _Regressor() if len(metadata["outputs"]) > 1 else None
        digest = hashlib.sha256(Path(path).read_bytes()).digest()
        self.register_buffer("file_sha256", torch.tensor(list(digest), dtype=torch.uint8))
        self._sizes: dict[tuple[int, int], tuple[int, int]] = {}
        self._fcn_bytes_per_pixel = 1e-9  # the runtime holds the activations: fcndetect never tiles them

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """Score-map size for a ``height x width`` input (probed once per size, then cached)."""
        key = (height, width)
        if key not in self._sizes:
            with torch.no_grad():
                out = self.forward(torch.zeros(1, 3, height, width))
            self._sizes[key] = (int(out.shape[2]), int(out.shape[3]))
        return self._sizes[key]
