"""Later stages of a cascade: classify candidate windows, each as one dense cell, from crops.

A cascade's first stage runs densely over the pyramid (:class:`fcndetect.detector.Detector`); its windows
above the stage threshold become candidates. A later stage evaluates each candidate as the single cell of
its own dense network whose window is the candidate box: the candidate is squared, and the image region
that cell reads (its receptive field, which can be wider than the window: 49 px for O-Net's 48 px window)
is cropped, resized so that the box becomes the network's window, and run as a batch. At scale 1 (and at
scale 1/2 with area resizing on even pixels) that crop is exactly what the dense map reads, so a candidate
on the grid gets exactly the dense map's value (tested).

Boxes are ``[x1, y1, x2, y2]`` floats in image pixels with continuous edges.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from .boxes import nms_max
from .geometry import Geometry
from .observe import observer
from .postprocess import LevelOutput, apply_regression, group_logits, level_windows
from .stages import Cascade
from .tvops import torchvision_op
from .windows import Windows

if TYPE_CHECKING:
    from .models import LoadedModel

__all__ = ["CropPlan", "crop_plan", "square_boxes", "Octaves", "sample_crops", "score_crops", "cascade_candidates",
           "LEVEL_NMS_IOU", "CROP_BATCH"]

#: NMS-max IoU within each level of the first stage, before the cross-level ``stage_nms_iou`` (MTCNN's 0.5).
LEVEL_NMS_IOU = 0.5
#: candidates per network call of a later stage
CROP_BATCH = 256
#: bilinear samples per crop pixel and axis in :func:`sample_crops` (2: a 2 x 2 average when shrinking)
CROP_SAMPLES = 1


@dataclass(frozen=True)
class CropPlan:
    """How a dense network reads one cell, in its own input pixels.

    Attributes:
        lead: pixels of input before the cell's window (left and top); a multiple of nothing in particular.
        size: side of the crop that gives exactly one output cell at ``cell`` (square).
        cell: index of that cell along each axis of the crop's output.
    """

    lead: int
    size: int
    cell: int


def crop_plan(g: Geometry) -> CropPlan:
    """The smallest square crop containing a cell's window and receptive field, aligned so that the cell is
    on the network's grid (the crop starts ``cell * stride + offset - lead`` ... at the grid's phase).

    Raises:
        ValueError: the window offset is not a whole pixel (no crop is aligned with the grid).
    """
    if g.offset != int(g.offset):
        raise ValueError(f"window offset {g.offset} is not a whole pixel; crops cannot align with the grid")
    offset = int(g.offset)
    before = max(0, offset - g.rf_offset)  # receptive field reaching before the window
    cells_before = math.ceil((before - offset) / g.stride) if before > offset else 0
    lead = offset + cells_before * g.stride  # crop starts on the grid: at input pixel 0 of a shifted image
    after = max(g.window, g.rf_offset - offset + g.receptive_field)
    return CropPlan(lead=lead, size=lead + after - offset, cell=cells_before)


def square_boxes(boxes: torch.Tensor) -> torch.Tensor:
    """``[N, 4]`` boxes made square about their centres, side ``max(w, h)`` (MTCNN's ``rerec``)."""
    cx = (boxes[:, 0] + boxes[:, 2]) / 2
    cy = (boxes[:, 1] + boxes[:, 3]) / 2
    side = torch.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    return torch.stack([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2], dim=1)


class Octaves:
    """An image and its halvings (area averaging, :func:`fcndetect.pyramid.resize_image`), each as a
    ``[1, 3, h, w]`` float32 tensor in 0..255, made on first use: a crop that shrinks its region by ``r`` is
    resampled from the octave that leaves a factor in ``[1, 2)``, so that one bilinear sample per pixel
    reads (nearly) all of it."""

    def __init__(self, image: np.ndarray) -> None:
        self._arrays = [image]
        self._tensors: dict[int, torch.Tensor] = {}

    def get(self, k: int) -> tuple[torch.Tensor, float, float]:
        """Octave ``k`` (``0``: the image) and its exact ``(sx, sy)`` factors from image pixels."""
        from .pyramid import resize_image

        while len(self._arrays) <= k:
            a = self._arrays[-1]
            h, w = a.shape[:2]
            self._arrays.append(resize_image(a, max(1, (w + 1) // 2), max(1, (h + 1) // 2)))
        if k not in self._tensors:
            a = self._arrays[k]
            if not (a.flags.writeable and a.flags.c_contiguous):
                a = np.array(a, order="C")  # torch.from_numpy wants a writable array
            self._tensors[k] = torch.from_numpy(a).permute(2, 0, 1)[None].float().contiguous()
        h0, w0 = self._arrays[0].shape[:2]
        h, w = self._arrays[k].shape[:2]
        return self._tensors[k], w / w0, h / h0


def sample_crops(
    image: np.ndarray | Octaves, boxes: torch.Tensor, window: int, plan: CropPlan
) -> tuple[torch.Tensor, torch.Tensor]:
    """Crops that make each (square) box the network's window, and the boxes actually sampled: a few batched
    resamples (torchvision's ``roi_align`` operator, one per octave and sampling ratio) for all boxes.

    For a box of side ``S`` the scale is ``s = window / S``; the crop covers ``plan.size / s`` image pixels
    starting ``plan.lead / s`` before the box, rounded to whole pixels, resampled to ``plan.size`` pixels.
    A region of ``side`` pixels is read from the octave (:class:`Octaves`) where it spans ``side / 2**k`` in
    ``[plan.size, 2 * plan.size)`` pixels (octave 0 when enlarging); each crop pixel is one bilinear sample
    at its centre there, rounded to whole grey levels as the uint8 pyramid is. At scale 1, and at scale 1/2 on
    even pixels, that is exactly the pyramid's level (``cv2.resize`` with ``INTER_AREA``). Beyond the image's
    border by more than a pixel the crop reads zeros, as the network's own padding would.

    Args:
        image: ``[H, W, 3]`` uint8, or its :class:`Octaves` (shared between the stages of one image).
        boxes: ``[N, 4]`` square boxes.
        window: the network's window side.
        plan: from :func:`crop_plan`.

    Returns:
        ``(crops [N, 3, size, size] float32 in 0..255, windows [N, 4] float64)``: the windows the crops really
        hold after rounding, in image pixels (the boxes to refine with the stage's regression).
    """
    roi_align = torchvision_op("roi_align")  # torchvision.ops.roi_align's operator, without its import
    octaves = Octaves(image) if isinstance(image, np.ndarray) else image
    n = boxes.shape[0]
    if n == 0:
        return torch.zeros((0, 3, plan.size, plan.size)), torch.zeros((0, 4), dtype=torch.float64)
    b = boxes.double()
    per_px = (b[:, 2] - b[:, 0]).clamp_min(1e-6) / window  # image pixels per network pixel
    side = torch.round(plan.size * per_px).clamp_min(1)
    cx0 = torch.round(b[:, 0] - plan.lead * per_px)
    cy0 = torch.round(b[:, 1] - plan.lead * per_px)
    real = side / plan.size  # image pixels per network pixel after rounding
    windows = torch.stack([cx0 + plan.lead * real, cy0 + plan.lead * real,
                           cx0 + (plan.lead + window) * real, cy0 + (plan.lead + window) * real], dim=1)
    shrink = side / plan.size
    octave = torch.floor(torch.log2(shrink.clamp_min(1.0)) + 1e-9).long()  # shrink / 2**k in [1, 2)
    out = torch.empty((n, 3, plan.size, plan.size))
    for k in torch.unique(octave).tolist():
        x, sx, sy = octaves.get(int(k))
        idx = torch.nonzero(octave == k).flatten()
        rois = torch.stack([torch.zeros(len(idx), dtype=torch.float64), cx0[idx] * sx, cy0[idx] * sy,
                            (cx0[idx] + side[idx]) * sx, (cy0[idx] + side[idx]) * sy], dim=1).float()
        out[idx] = roi_align(x, rois, 1.0, plan.size, plan.size, CROP_SAMPLES, True)
    return torch.floor(out + 0.5), windows


@torch.inference_mode()
def score_crops(
    crops: torch.Tensor, model: "LoadedModel", plan: CropPlan, regress: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Run ``model``'s dense network on crops from :func:`sample_crops` and read the planned cell.

    Args:
        crops: ``[N, 3, size, size]`` float RGB in 0..255.
        model: the stage's model (dense network, normalisation, class groups).
        plan: from :func:`crop_plan` of the model's geometry.
        regress: also return the box-regression offsets.

    Returns:
        ``(logits [N, G], regression [N, 4 or 14] or None)`` on the CPU: class-group log-odds and MTCNN
        offsets (O-Net: the landmarks after the box offsets).
    """
    device = model.mean.device
    mean, std = model.mean[:, None, None], model.std[:, None, None]
    groups = [g.indices for g in model.groups]
    dense = model.dense
    logits_out, reg_out = [], []
    for a in range(0, crops.shape[0], CROP_BATCH):
        x = crops[a : a + CROP_BATCH].to(device)
        x = (x.to(torch.float32, memory_format=torch.channels_last) - mean) / std
        if regress and dense.regressor is not None:
            logits, reg = dense.forward_with_regression(x)
        else:
            logits, reg = dense(x), None
        logits_out.append(group_logits(logits[:, :, plan.cell, plan.cell][:, :, None, None], groups)[:, :, 0, 0].cpu())
        if reg is not None:
            reg_out.append(reg[:, :, plan.cell, plan.cell].cpu())
    if not logits_out:
        return torch.zeros((0, len(groups))), (torch.zeros((0, 4)) if regress else None)
    return torch.cat(logits_out), (torch.cat(reg_out) if reg_out else None)


def mirrored_logits(crops: torch.Tensor, model: "LoadedModel", plan: CropPlan) -> torch.Tensor:
    """``[N, G]`` log-odds of the mirror image of each ``[N, 3, size, size]`` crop (flipped left to right).

    The crop's window is mirrored about its own centre: the planned cell's window starts ``plan.lead``
    pixels in on the left, so the mirrored crop is cut to keep the window where the cell reads it (it
    ends ``size - lead - window`` pixels before the right edge, which may differ from ``lead``).
    """
    shift = plan.size - plan.lead - model.window - plan.lead  # window's start after flipping, minus lead
    flipped = torch.flip(crops, dims=[3])
    if shift > 0:  # move the content left: the window starts at lead again; zeros enter on the right
        flipped = torch.cat([flipped[..., shift:], torch.zeros_like(flipped[..., :shift])], dim=3)
    elif shift < 0:
        flipped = torch.cat([torch.zeros_like(flipped[..., :-shift]), flipped[..., :shift]], dim=3)
    logits, _ = score_crops(flipped, model, plan, regress=False)
    return logits


def cascade_candidates(image: np.ndarray, first_outputs: list[LevelOutput], cascade: Cascade) -> Windows:
    """The rest of a cascade for one image, after its first stage ran densely over the pyramid.

    The first stage's windows above its threshold (NMS-max within each level at :data:`LEVEL_NMS_IOU`, then
    across levels at ``cascade.nms_iou``) are the candidates. Each later stage classifies every candidate
    from a crop (:func:`sample_crops`) and keeps those above its threshold (the last stage's applies to the
    fused logit); between stages NMS-max at ``cascade.nms_iou`` thins them. A stage's regression refines
    boxes where its :attr:`~fcndetect.stages.Stage.regress` says so; the last stage's landmark head, where it
    has one, gives the landmarks.

    The logit of a detection is the last stage's (``fusion = "last"``) or the sum of every stage's logit for
    that candidate (``fusion = "sum"``).

    The current :func:`~fcndetect.observe.observer` sees each step end (candidates; per later stage its crops,
    network, mirrored pass and NMS) and each stage's kept windows.

    Args:
        image: ``[H, W, 3]`` uint8 RGB.
        first_outputs: the first stage's :class:`LevelOutput` per pyramid level.
        cascade: the stages and how they are chained.

    Returns:
        the last stage's windows above its threshold (float32; its landmarks where it has the head), before
        the final NMS.
    """
    obs = observer()
    first, later = cascade.stages[0], cascade.stages[1:]
    found = level_windows(first_outputs, first.geometry, first.threshold, level_nms_iou=LEVEL_NMS_IOU)
    found = found[nms_max(found.boxes, found.logits, found.labels, cascade.nms_iou)]
    cands = Windows(found.boxes.double(), found.logits.double(), found.labels)  # the first stage's landmarks: none
    obs.step(f"{first.name} candidates (threshold, NMS): {len(cands)}")
    obs.kept(first.name, cands.boxes)
    pixels = Octaves(image)
    for k, stage in enumerate(later, start=1):
        last = k == len(later)
        if len(cands) == 0:
            break
        model = stage.model
        plan = crop_plan(stage.geometry)
        crops, windows = sample_crops(pixels, square_boxes(cands.boxes), model.window, plan)
        obs.step(f"{stage.name} crops ({len(cands)} x {plan.size} px)")
        stage_logits, reg = score_crops(crops, model, plan, stage.regress)
        obs.step(f"{stage.name} network on {len(cands)} crops")
        rows = torch.arange(len(cands))
        own = stage_logits[rows, cands.labels].double()
        if last and cascade.flip:
            own = (own + mirrored_logits(crops, model, plan)[rows, cands.labels].double()) / 2
            obs.step(f"{stage.name} mirrored crops (flip)")
        fused = cands.logits + own if cascade.fusion == "sum" else own
        passed = torch.sigmoid(fused if last else own) > stage.threshold
        boxes, points = apply_regression(windows, reg.double()) if reg is not None else (windows, None)
        cands = Windows(boxes, fused, cands.labels, landmarks=points if last else None)[passed]
        if not last:
            cands = cands[nms_max(cands.boxes, cands.logits, cands.labels, cascade.nms_iou)]
        obs.step(f"{stage.name} threshold, regression, NMS: {len(cands)} kept")
        obs.kept(stage.name, cands.boxes)
    return cands.float()
