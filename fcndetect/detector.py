"""The :class:`Detector`: an image in, :class:`~fcndetect.detections.Detections` out.

Pure orchestration: pyramid (:mod:`.pyramid`) -> dense network (:mod:`.convert`) -> cell boxes
(:mod:`.geometry`) -> threshold and NMS (:mod:`.boxes`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .boxes import clip_boxes, nms_avg, nms_max, refine_boxes
from .config import DetectorConfig, resolve_config
from .detections import Detections, ScoreMap
from .geometry import cells_to_boxes, dense_output_size
from .tiling import activation_bytes_per_pixel, run_tiled
from .io.images import DEFAULT_MAX_PIXELS, load_image, to_rgb_array
from .models import LoadedModel, load_model
from .pyramid import Level, pyramid_levels, resize_image

__all__ = ["Detector", "DetectionResult"]

ImageLike = str | os.PathLike[str] | np.ndarray | torch.Tensor | Any  # Any: PIL.Image.Image


@dataclass
class DetectionResult:
    """The outcome for one input: detections, or an error message (one line)."""

    image: str
    detections: Detections | None
    error: str | None = None
    width: int | None = None
    height: int | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def _writable(a: np.ndarray) -> np.ndarray:
    return a if a.flags.writeable and a.flags.c_contiguous else np.array(a, order="C")


class Detector:
    """Sliding-window detector built from a classifier made fully convolutional.

    Example::

        det = Detector()                      # the default face preset
        dets = det("photo.jpg")               # Detections
        det = Detector(config="face", threshold=0.8, min_size=40)

    Args:
        config: a preset name or TOML path (``--config``), or a ready :class:`DetectorConfig`.
        **overrides: any :class:`DetectorConfig` field; ``None`` values are ignored.
    """

    def __init__(self, config: str | DetectorConfig | None = None, **overrides: Any) -> None:
        if isinstance(config, DetectorConfig):
            cfg = config.replace(**{k: v for k, v in overrides.items() if v is not None})
        else:
            cfg = resolve_config(config, **overrides)
        self.config: DetectorConfig = cfg
        self.device = torch.device(cfg.device)
        self.model: LoadedModel = load_model(cfg.model, self.device, **cfg.model_options())

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(g.name for g in self.model.groups)

    # -- input ---------------------------------------------------------------------------------
    def _to_array(self, image: ImageLike, bgr: bool = False) -> np.ndarray:
        if isinstance(image, (str, os.PathLike)):
            return load_image(image)
        if isinstance(image, torch.Tensor):  # [3, H, W] RGB, float in [0, 1] or uint8
            t = image.detach().cpu()
            if t.dim() != 3 or t.shape[0] not in (1, 3):
                raise ValueError(f"tensor image must be [3, H, W] or [1, H, W], got {tuple(t.shape)}")
            if t.dtype != torch.uint8:
                t = (t.float().clamp(0, 1) * 255).round().to(torch.uint8)
            arr = t.expand(3, -1, -1).permute(1, 2, 0).numpy()
            return np.ascontiguousarray(arr[:, :, ::-1] if bgr else arr)
        if isinstance(image, np.ndarray):
            arr = image
            if arr.ndim == 2:
                arr = np.repeat(arr[:, :, None], 3, axis=2)
            if arr.ndim != 3 or arr.shape[2] not in (3, 4):
                raise ValueError(f"array image must be [H, W, 3] (or 4), got {arr.shape}")
            arr = arr[:, :, :3]
            if arr.dtype != np.uint8:
                raise ValueError(f"array image must be uint8, got {arr.dtype}")
            return np.ascontiguousarray(arr[:, :, ::-1] if bgr else arr)
        if hasattr(image, "mode") and hasattr(image, "size"):  # PIL image
            return to_rgb_array(image)
        raise TypeError(f"unsupported image type {type(image).__name__}")

    # -- detection -----------------------------------------------------------------------------
    @property
    def regresses(self) -> bool:
        """Whether boxes are refined by the model's box-regression head (config ``regress``)."""
        return self.config.regress and self.model.dense.regressor is not None

    @torch.inference_mode()
    def score_level(
        self, images: np.ndarray | list[np.ndarray], level: Level
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Score maps of one pyramid level for one image or a batch of same-size images.

        Args:
            images: ``[H, W, 3]`` uint8 RGB, or a list of them (all the same size).
            level: the level's size (from :func:`fcndetect.pyramid.pyramid_levels`).

        Returns:
            ``(scores [B, G, H', W'], regression [B, 4, H', W'] or None)``: class-group probabilities, and
            the box-regression offsets ``[dx1, dy1, dx2, dy2]`` in window sides when :attr:`regresses`
            (``B = 1`` for a single image). Large levels run in tiles within ``max_memory_mb``, with the same
            result.
        """
        batch = [images] if isinstance(images, np.ndarray) else images
        arrays = [torch.from_numpy(_writable(resize_image(im, level.width, level.height))) for im in batch]
        x = (arrays[0][None] if len(arrays) == 1 else torch.stack(arrays)).to(self.device)  # no copy for one image
        x = x.permute(0, 3, 1, 2)  # uint8 [B, 3, h, w]; normalised per tile below
        dense = self.model.dense
        mean = self.model.mean[:, None, None]
        std = self.model.std[:, None, None]
        regress = self.regresses

        def run(tile: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
            t = (tile.to(torch.float32, memory_format=torch.channels_last) - mean) / std
            if regress:
                logits, reg = dense.forward_with_regression(t)
            else:
                logits, reg = dense(t), None
            probs = torch.softmax(logits, dim=1)
            scores = torch.stack([probs[:, list(g.indices)].sum(1) for g in self.model.groups], dim=1)
            return scores, reg

        out_hw = dense_output_size(dense, level.height, level.width)
        budget = self.config.max_memory_mb * 2**20 if self.config.max_memory_mb else None
        bpp = activation_bytes_per_pixel(dense, dense.geometry.window, dense.geometry.stride) if budget else 0.0
        return run_tiled(run, x, dense.geometry, out_hw, budget, bpp)

    def levels(self, width: int, height: int) -> list[Level]:
        cfg = self.config
        return pyramid_levels((width, height), self.model.window, cfg.min_size, cfg.max_size, cfg.scale_factor)

    @torch.inference_mode()
    def detect_batch(self, images: list[np.ndarray], return_maps: bool = False) -> list[Detections]:
        """Detect in several ``[H, W, 3]`` uint8 RGB arrays; same-size images share each network call.

        The result of each image does not depend on the batch it was in.
        """
        results: list[Detections | None] = [None] * len(images)
        groups: dict[tuple[int, int], list[int]] = {}
        for k, im in enumerate(images):
            groups.setdefault(im.shape[:2], []).append(k)
        for (height, width), members in groups.items():
            per_image: list[list[tuple[Level, torch.Tensor, torch.Tensor | None]]] = [[] for _ in members]
            for level in self.levels(width, height):
                scores, reg = self.score_level([images[k] for k in members], level)
                for b in range(len(members)):
                    per_image[b].append((level, scores[b], reg[b] if reg is not None else None))
            for b, k in enumerate(members):
                results[k] = self._postprocess(per_image[b], (width, height), return_maps)
        return [r for r in results if r is not None]

    def detect_array(self, image: np.ndarray, return_maps: bool = False) -> Detections:
        """Detect in an ``[H, W, 3]`` uint8 RGB array."""
        return self.detect_batch([image], return_maps=return_maps)[0]

    def _postprocess(
        self,
        outputs: list[tuple[Level, torch.Tensor, torch.Tensor | None]],
        image_size: tuple[int, int],
        return_maps: bool,
    ) -> Detections:
        """Threshold the levels' score maps, map cells to boxes, NMS, clip, sort, cap."""
        cfg = self.config
        width, height = image_size
        geometry = self.model.dense.geometry
        all_boxes, all_scores, all_labels = [], [], []
        maps: list[ScoreMap] = []
        for level, scores, reg in outputs:
            if return_maps:
                maps.append(ScoreMap(level.scale, level.sx, level.sy, scores.cpu().numpy().astype(np.float32)))
            g, i, j = torch.nonzero(scores > cfg.threshold, as_tuple=True)
            if g.numel() == 0:
                continue
            cell_boxes = cells_to_boxes(i.cpu(), j.cpu(), geometry, (level.sx, level.sy))
            if reg is not None:
                cell_boxes = refine_boxes(cell_boxes, reg[:, i, j].T.float().cpu())
            all_boxes.append(cell_boxes)
            all_scores.append(scores[g, i, j].float().cpu())
            all_labels.append(g.cpu())
        names = self.class_names
        if not all_boxes:
            dets = Detections.empty(names, (width, height))
            dets.score_maps = maps if return_maps else None
            return dets
        boxes = torch.cat(all_boxes)
        scores_t = torch.cat(all_scores)
        labels = torch.cat(all_labels)
        if cfg.nms == "avg":
            boxes, scores_t, labels, sizes = nms_avg(boxes, scores_t, labels, cfg.nms_iou)
            keep = sizes >= cfg.min_neighbors
            boxes, scores_t, labels = boxes[keep], scores_t[keep], labels[keep]
        else:
            keep = nms_max(boxes, scores_t, labels, cfg.nms_iou)
            boxes, scores_t, labels = boxes[keep], scores_t[keep], labels[keep]
        if cfg.clip:
            boxes = clip_boxes(boxes, width, height)
        order = torch.argsort(scores_t, descending=True, stable=True)[: cfg.max_det]
        return Detections(
            boxes=boxes[order].numpy().astype(np.float32),
            scores=scores_t[order].numpy().astype(np.float32),
            labels=labels[order].numpy().astype(np.int64),
            class_names=names,
            image_size=(width, height),
            score_maps=maps if return_maps else None,
        )

    def __call__(self, image: ImageLike, *, bgr: bool = False, return_maps: bool = False) -> Detections:
        """Detect in a path, PIL image, numpy array (``[H, W, 3]`` uint8, RGB or ``bgr=True``) or tensor
        (``[3, H, W]`` RGB, uint8 or float in [0, 1])."""
        return self.detect_array(self._to_array(image, bgr=bgr), return_maps=return_maps)

    def run(
        self,
        sources: Iterable[str | os.PathLike[str]] | str | os.PathLike[str],
        *,
        return_maps: bool = False,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
        workers: int = 1,
        batch_size: int = 1,
    ) -> Iterator[DetectionResult]:
        """Detect in files, folders (recursive) and glob patterns, lazily and in order, with the CLI's error
        semantics: an unreadable input yields a result with ``error`` set (one line), never raises.

        Images are decoded in ``workers`` background threads; same-size images share network calls up to
        ``batch_size`` (results do not depend on it).
        """
        from .io.sources import expand_sources
        from .runner import iter_detections

        srcs = [sources] if isinstance(sources, (str, os.PathLike)) else sources
        items = list(expand_sources(str(s) for s in srcs))
        for r in iter_detections(self, items, workers=workers, batch_size=batch_size, max_pixels=max_pixels,
                                 return_maps=return_maps):
            h, w = r.image.shape[:2] if r.image is not None else (None, None)
            yield DetectionResult(r.item.path, r.detections, r.error, w, h)
