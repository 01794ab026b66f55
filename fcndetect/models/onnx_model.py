"""Detect with an exported ONNX file (``fcndetect run --model dense.onnx``): ONNX Runtime in place of torch.

The file is one written by ``fcndetect export --format onnx`` (:mod:`fcndetect.export`): its metadata gives the
geometry, normalisation, class groups and preset, so the usual pipeline (pyramid, tiling, NMS) runs unchanged
around an :class:`OnnxDenseModel`, which behaves like a ``DenseModel`` (``forward``, ``forward_with_regression``,
``geometry``, ``regressor``) but runs the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from .exported import ExportedDenseModel, parse_metadata
from .known import is_onnx_path
from .torchvision_models import ModelLoadError, require_regular_file

__all__ = ["OnnxDenseModel", "is_onnx_path", "read_onnx_metadata"]


def _session(path: str) -> Any:
    try:
        import onnxruntime as ort
    except ImportError:
        raise ModelLoadError(f"{path}: running an ONNX file needs onnxruntime: pip install 'fcndetect[onnx]'") from None
    require_regular_file(Path(path), "ONNX file")
    try:
        options = ort.SessionOptions()
        options.log_severity_level = 3
        return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
        raise ModelLoadError(f"{path}: not a readable ONNX file ({' '.join(str(exc).split())[:200]})") from None


def read_onnx_metadata(path: str) -> dict[str, Any]:
    """The fcndetect metadata of an exported file.

    Raises:
        ModelLoadError: missing onnxruntime, unreadable file, or no fcndetect metadata in it.
    """
    from ..export import METADATA_KEY

    meta = _session(path).get_modelmeta().custom_metadata_map.get(METADATA_KEY)
    return parse_metadata(meta, path, "no fcndetect metadata: export it with `fcndetect export MODEL --format onnx`")


class OnnxDenseModel(ExportedDenseModel):
    """An exported dense network run by ONNX Runtime on the CPU: ``[B, 3, H, W]`` normalised float32 to
    ``[B, K, H', W']`` logits (and ``[B, 4 or 14, H', W']`` regression), as the original ``DenseModel``."""

    def __init__(self, path: str) -> None:
        session = _session(path)
        super().__init__(path, read_onnx_metadata(path))
        self.session = session

    def _run(self, x: torch.Tensor) -> list[np.ndarray]:
        arr = np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)
        return self.session.run(None, {"input": arr})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self._run(x)[0])

    def forward_with_regression(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        out = self._run(x)
        reg = torch.from_numpy(np.concatenate(out[1:], axis=1)) if len(out) > 1 else None
        return torch.from_numpy(out[0]), reg
