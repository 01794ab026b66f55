"""Per-image output files: the annotated image, and as asked the heatmap, the score maps and the crops.

Pure (encodes, writes nothing), so an engine can render where it detects and every engine gives the same
bytes; the runner writes what it returns.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..detections import Detections
from .anonymize import DEFAULT_HOLD, DEFAULT_MARGIN, anonymize
from .draw import draw_detections, encode_image, heatmap_overlay, upright_crops

__all__ = ["RenderOptions", "render_image_outputs", "npy_bytes", "ANGLES_NOTE"]

#: What ``index.json`` says of each level's ``angle`` (``--rotations``: one set of levels per angle).
ANGLES_NOTE = ("a level of angle a is of the image rotated by a degrees counter-clockwise; its cells are in the "
               "rotated image's pixels (fcndetect.rotation.rotation_matrix(width, height, a) maps the image's "
               "pixels there); one set of levels per angle of --rotations, in that order")


@dataclass(frozen=True)
class RenderOptions:
    """What :func:`render_image_outputs` writes besides the annotated image.

    Attributes:
        heatmap: the score maps overlaid on the image (``.heatmap<ext>``); under ``--rotations``, each angle's
            maps carried back to the image's pixels, the best of all angles shown.
        save_maps: the raw score maps (``.maps/NN.npy`` and ``.maps/index.json``): every level of the dense
            model, and under ``--rotations`` every level of every angle (``index.json`` gives each its angle).
        crops: each detection's upright region (``.crops/NNN_<label>.png``).
        maps_info: what ``index.json`` says of the maps besides their levels (the dense model's name, which
            stage it is, its geometry): plain JSON values, given by the caller, which knows the detector.
        anonymize: ``blur``, ``pixelate`` or ``solid``: also the image with every detection's region
            anonymised and nothing drawn (``.anonymized<ext>``, :func:`fcndetect.io.anonymize.anonymize`);
            ``None``: not written.
        anonymize_margin: each anonymised region's growth (:data:`fcndetect.io.anonymize.DEFAULT_MARGIN`).
        anonymize_hold: videos: frames a track's region is held after its last detection and before its first
            (:data:`fcndetect.io.anonymize.DEFAULT_HOLD`; gaps up to twice this are filled).
    """

    heatmap: bool = False
    save_maps: bool = False
    crops: bool = False
    maps_info: dict[str, Any] = field(default_factory=dict)
    anonymize: str | None = None
    anonymize_margin: float = DEFAULT_MARGIN
    anonymize_hold: int = DEFAULT_HOLD

    @property
    def needs_maps(self) -> bool:
        """Whether detection must return score maps."""
        return self.heatmap or self.save_maps


def render_image_outputs(image: np.ndarray, dets: Detections, ext: str,
                         options: RenderOptions) -> list[tuple[str, bytes]]:
    """The files of one image beside its JSON, as ``(suffix after the output name, bytes)``.

    Args:
        image: ``[H, W, 3]`` uint8 RGB, the image detections were made in.
        dets: its detections (with ``score_maps`` when ``options.needs_maps``).
        ext: the output name's extension (``.jpg``); annotated images and heatmaps use it (``.png`` if empty).
        options: what to render.
    """
    ext = ext or ".png"
    files = [(".annotated" + ext, encode_image(draw_detections(image, dets), ext))]
    if options.anonymize is not None:
        hidden = anonymize(image, dets.boxes, options.anonymize, options.anonymize_margin)
        files.append((".anonymized" + ext, encode_image(hidden, ext)))
    if options.heatmap:
        files.append((".heatmap" + ext, encode_image(heatmap_overlay(image, dets), ext)))
    if options.save_maps and dets.score_maps is not None:
        index = []
        for k, sm in enumerate(dets.score_maps):
            files.append((f".maps/{k:02d}.npy", npy_bytes(sm.logits)))
            index.append({"file": f"{k:02d}.npy", "scale": round(sm.scale, 6), "sx": round(sm.sx, 6),
                          "sy": round(sm.sy, 6), "shape": list(sm.logits.shape), "angle": float(sm.angle)})
        meta = {"classes": list(dets.class_names), "values": "logits (probability = sigmoid(logit))",
                **options.maps_info, "image_size": list(dets.image_size), "angles": ANGLES_NOTE, "levels": index}
        files.append((".maps/index.json", (json.dumps(meta, indent=1) + "\n").encode("utf-8")))
    if options.crops:
        for k, (crop, label) in enumerate(zip(upright_crops(image, dets), dets.label_names)):
            if crop.size:
                safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in label)
                files.append((f".crops/{k:03d}_{safe}.png", encode_image(crop, ".png")))
    return files


def npy_bytes(arr: np.ndarray) -> bytes:
    """``arr`` as float32 ``.npy`` file bytes."""
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(arr, dtype=np.float32))
    return buf.getvalue()
