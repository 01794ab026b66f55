"""Export a dense network to ONNX or TorchScript, with everything a consumer needs in the file's metadata.

The exported graph is exactly ``fcndetect.load_model(MODEL).dense``: input ``[B, 3, H, W]`` float32 images already
normalised as ``(x - mean) / std`` (``x`` RGB in 0..255; ``mean``/``std`` in the metadata), any ``H, W`` >= the
window. Output 0 is the class logits ``[B, K, H', W']``; a model with a box-regression head (MTCNN) adds output 1,
``[B, 4, H', W']`` box offsets ``[dx1, dy1, dx2, dy2]`` in window sides, and O-Net output 2, ``[B, 10, H', W']``
landmarks (x1..x5, y1..y5 in window sides). Metadata (ONNX ``metadata_props`` / TorchScript extra file
``fcndetect.json``): ``{"format": "fcndetect-dense/1", "model", "geometry": {stride, offset, window,
receptive_field, rf_offset}, "mean", "std" (0..255 units), "groups": [{"name", "indices"}], "outputs", "preset"}``.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = ["ExportError", "METADATA_KEY", "export_model", "export_metadata"]

METADATA_KEY = "fcndetect"
FORMAT = "fcndetect-dense/1"


class ExportError(ValueError):
    """The export cannot be done (one line: what and why)."""


class _Outputs(nn.Module):
    """The dense network with its regression output split into boxes (and landmarks) as separate outputs."""

    def __init__(self, dense: nn.Module, split: tuple[int, ...]) -> None:
        super().__init__()
        self.dense: Any = dense  # a DenseModel, or an exported network that behaves like one
        self.split = split

    def forward(self, x: torch.Tensor) -> Any:
        if not self.split:
            return self.dense(x)
        logits, reg = self.dense.forward_with_regression(x)
        parts = [logits]
        start = 0
        for n in self.split:
            parts.append(reg[:, start:start + n])
            start += n
        return tuple(parts)


def _output_split(dense: Any) -> tuple[int, ...]:
    if dense.regressor is None:
        return ()
    convs = [m for m in dense.regressor.modules() if isinstance(m, nn.Conv2d)]
    channels = convs[-1].out_channels if convs else 4
    return (4, channels - 4) if channels > 4 else (4,)


def export_metadata(loaded: Any, preset: dict[str, Any] | None = None) -> dict[str, Any]:
    """The metadata written into an exported file for a :class:`fcndetect.models.LoadedModel`."""
    split = _output_split(loaded.dense)
    names = ["logits", "boxes", "landmarks"][: 1 + len(split)]
    return {
        "format": FORMAT,
        "model": loaded.spec.name,
        "geometry": loaded.dense.geometry.to_dict(),
        "mean": [float(v) for v in loaded.mean.tolist()],
        "std": [float(v) for v in loaded.std.tolist()],
        "groups": [{"name": g.name, "indices": list(g.indices)} for g in loaded.groups],
        "outputs": names,
        "preset_name": loaded.spec.preset,
        "preset": preset or {},
    }


def export_model(loaded: Any, path: str | os.PathLike[str], fmt: str, preset: dict[str, Any] | None = None) -> Path:
    """Write ``loaded.dense`` to ``path`` as ``onnx`` or ``torchscript`` (atomically: a failed export leaves
    no file), with :func:`export_metadata`. Returns the path.

    Raises:
        ExportError: unknown format, or the exporter failed (its reason on one line).
    """
    if fmt not in ("onnx", "torchscript"):
        raise ExportError(f"unknown format {fmt!r}: use onnx or torchscript")
    out = Path(path)
    meta = export_metadata(loaded, preset)
    module = _Outputs(loaded.dense, _output_split(loaded.dense)).eval().cpu()
    w = loaded.window
    probe = torch.zeros(1, 3, w + 2 * loaded.dense.geometry.stride, w + 3 * loaded.dense.geometry.stride)
    tmp = out.with_name(out.name + ".tmp")
    try:
        with warnings.catch_warnings():  # the exporters' deprecation notices (TorchScript, TorchScript-based ONNX)
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            if fmt == "onnx":
                _export_onnx(module, probe, tmp, meta)
            else:
                with torch.no_grad():
                    traced = torch.jit.trace(module, probe, check_trace=False)  # type: ignore[no-untyped-call]
                torch.jit.save(traced, str(tmp), _extra_files={"fcndetect.json": json.dumps(meta)})
        os.replace(tmp, out)
    except ExportError:
        raise
    except Exception as exc:  # noqa: BLE001 - exporters raise many types
        raise ExportError(f"{loaded.spec.name}: {fmt} export failed: {' '.join(str(exc).split())[:300]}") from None
    finally:
        tmp.unlink(missing_ok=True)
    return out


def _export_onnx(module: nn.Module, probe: torch.Tensor, path: Path, meta: dict[str, Any]) -> None:
    try:
        import onnx
    except ImportError:
        raise ExportError("ONNX export needs the onnx package: pip install 'fcndetect[onnx]'") from None
    names = meta["outputs"]
    dyn = {"input": {0: "batch", 2: "height", 3: "width"}}
    dyn.update({n: {0: "batch", 2: "rows", 3: "cols"} for n in names})
    with torch.no_grad():
        torch.onnx.export(module, (probe,), str(path), input_names=["input"], output_names=names,
                          dynamic_axes=dyn, opset_version=17, dynamo=False)
    model = onnx.load(str(path))
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(meta)
    onnx.save(model, str(path))
