"""The :class:`Detector`: an image in, :class:`~fcndetect.detections.Detections` out.

Orchestration only: pyramid (:mod:`.pyramid`) -> dense network (:mod:`.convert`), tiled within a memory
budget (:mod:`.tiling`) -> class-group log-odds -> the pure :func:`fcndetect.postprocess.postprocess`
(cell boxes, threshold, regression, NMS).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Any, Unpack

import numpy as np
import torch

from .config import ConfigError, DetectorConfig, Settings

from .presets import resolve_config
from .detections import Detections, ScoreMap
from .geometry import Geometry
from .spans import dense_output_size
from .cascade import cascade_candidates
from .postprocess import LevelOutput, finalize, group_logits, level_windows, postprocess, score_maps
from .rotation import box_corners, map_points, quad_boxes, rotate_image
from .tiling import activation_bytes_per_pixel, run_tiled
from .io.images import DEFAULT_MAX_PIXELS, load_image, to_grayscale, to_rgb_array
from .models import LoadedModel, load_model
from .observe import KeptWindows, observer, observing
from .pyramid import Level, iter_pyramid_images, pyramid_levels, resize_image
from .stages import Cascade, Stage
from .windows import Windows
from .threads import warn_if_late

__all__ = ["Detector", "DetectionResult", "DeviceError", "resolve_device", "remote_detect_batch"]

#: Largest upsampling of the image (``window / min_size``): beyond it a level is mostly interpolation and
#: its cost grows with the square of the factor.
MAX_UPSAMPLE = 4.0

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


class DeviceError(ValueError):
    """The requested torch device does not exist on this machine."""


def resolve_device(name: str) -> torch.device:
    """``name`` as a :class:`torch.device`, checked to exist here.

    Raises:
        DeviceError: unknown device string, or CUDA/MPS not available (one line, for the CLI and the API).
    """
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError) as exc:
        raise DeviceError(f"device {name!r}: not a torch device ({exc})") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"device {name}: CUDA is not available on this machine")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise DeviceError(f"device {name}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    if device.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise DeviceError(f"device {name}: MPS is not available on this machine")
    return device


def _writable(a: np.ndarray) -> np.ndarray:
    return a if a.flags.writeable and a.flags.c_contiguous else np.array(a, order="C")


class Detector:
    """Sliding-window detector built from a classifier made fully convolutional.

    Example::

        det = Detector()                      # the default preset: the face cascade
        dets = det("photo.jpg")               # Detections
        det = Detector(config="face", threshold=0.8, min_size=40)

    Args:
        config: a preset name or TOML path (``--config``), or a ready :class:`DetectorConfig`.
        **overrides: any setting (:class:`~fcndetect.config.Settings`, typed: an editor completes them);
            ``None`` values are ignored.
    """

    def __init__(self, config: str | DetectorConfig | None = None, **overrides: Unpack[Settings]) -> None:
        warn_if_late()  # torch was imported before fcndetect: the OpenMP wait policy could not act (once)
        if isinstance(config, DetectorConfig):
            cfg = config.replace(**{k: v for k, v in overrides.items() if v is not None})
        else:
            cfg = resolve_config(config, **overrides)
        self.config: DetectorConfig = cfg
        self.device = resolve_device(cfg.device)
        #: the last stage (the only one without ``stages``): its classes, boxes and regression are the output
        self.model: LoadedModel = load_model(cfg.model, self.device, **cfg.model_options())
        #: a cascade's earlier stages, cheapest first; the first runs densely over the pyramid
        self.stage_models: list[LoadedModel] = [load_model(name, self.device) for name in cfg.stages]
        self._fingerprint: str | None = None
        for stage in self.stage_models:
            if tuple(g.name for g in stage.groups) != self.class_names:
                raise ConfigError(f"cascade stage {stage.spec.name} detects {[g.name for g in stage.groups]}, "
                                  f"the last stage {cfg.model} {list(self.class_names)}: they must agree")
        first = self.dense_model
        upsample = first.window / cfg.min_size
        if upsample > MAX_UPSAMPLE:
            raise ConfigError(
                f"min_size {cfg.min_size:g} would upsample images {upsample:.1f}x for the {first.window} px "
                f"window of model {first.spec.name}; the smallest min_size is {first.window / MAX_UPSAMPLE:g} "
                f"(at most {MAX_UPSAMPLE:g}x upsampling)"
            )

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(g.name for g in self.model.groups)

    @property
    def dense_model(self) -> LoadedModel:
        """The model that runs densely over the pyramid: a cascade's first stage, else the only one."""
        return self.stage_models[0] if self.stage_models else self.model

    @property
    def geometry(self) -> Geometry:
        """Where each score-map cell of :attr:`dense_model` looks (stride, offset, window, receptive field)."""
        return self.dense_model.dense.geometry

    def weights_fingerprint(self) -> str:
        """sha256 of the classifier's parameters and buffers: identifies the weights whatever file they came
        from (recorded in ``run.json``)."""
        if self._fingerprint is None:
            h = hashlib.sha256()
            for stage in [*self.stage_models, self.model]:
                for name, t in sorted(stage.classifier.state_dict().items()):
                    h.update(name.encode())
                    h.update(t.detach().cpu().contiguous().numpy().tobytes())
            self._fingerprint = h.hexdigest()
        return self._fingerprint

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

    def _prepare(self, image: np.ndarray) -> np.ndarray:
        """What the networks see of an ``[H, W, 3]`` uint8 RGB image: grayscale with ``config.grayscale``."""
        return to_grayscale(image) if self.config.grayscale else image

    # -- detection -----------------------------------------------------------------------------
    def stages(self) -> list[Stage]:
        """Every stage, cheapest first, as the core runs it: a cascade's earlier stages, then :attr:`model`.

        Each stage's threshold is its ``stage_thresholds`` entry, the last stage's the detection ``threshold``.
        Only the last stage's box regression refines boxes (config ``regress``, where it has the head): a
        cascade's earlier stages propose their raw windows, since the pyramid's grid (3 scales per octave, a
        stride of a few pixels) already places windows well, and a cheap stage's regression moved good
        windows off faces in our measurements (dev_faces: 42/43 faces with P-Net's regression applied, 43/43
        without)."""
        cfg = self.config
        models = [*self.stage_models, self.model]
        last = len(models) - 1
        return [Stage(m, cfg.threshold if k == last else cfg.stage_thresholds[k],
                      cfg.regress and k == last and m.dense.regressor is not None) for k, m in enumerate(models)]

    def _cascade(self) -> Cascade:
        cfg = self.config
        return Cascade(tuple(self.stages()), cfg.stage_nms_iou, cfg.fusion, cfg.flip)

    @torch.inference_mode()
    def score_level(
        self, images: np.ndarray | list[np.ndarray], level: Level, stage: Stage | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Score maps of one pyramid level for one image or a batch of same-size images.

        Args:
            images: ``[H, W, 3]`` uint8 RGB, or a list of them (all the same size); resized to the level
                unless they already have its size (:func:`fcndetect.pyramid.pyramid_images`).
            level: the level's size (from :func:`fcndetect.pyramid.pyramid_levels`).
            stage: the stage to run (default: the first of :meth:`stages`, :attr:`dense_model`'s).

        Returns:
            ``(logits [B, G, H', W'], regression [B, 4, H', W'] or None)``: class-group log-odds
            (:func:`fcndetect.postprocess.group_logits`; ``sigmoid`` gives the probability), and
            the box-regression offsets ``[dx1, dy1, dx2, dy2]`` in window sides when the stage regresses
            (``B = 1`` for a single image). Large levels run in tiles within ``max_memory_mb``, with the same
            result.
        """
        batch = [images] if isinstance(images, np.ndarray) else images
        arrays = [torch.from_numpy(_writable(resize_image(im, level.width, level.height))) for im in batch]
        x = (arrays[0][None] if len(arrays) == 1 else torch.stack(arrays)).to(self.device)  # no copy for one image
        x = x.permute(0, 3, 1, 2)  # uint8 [B, 3, h, w]; normalised per tile below
        stage = stage if stage is not None else self.stages()[0]
        model = stage.model
        dense = model.dense
        mean = model.mean[:, None, None]
        std = model.std[:, None, None]
        regress = stage.regress
        groups = [g.indices for g in model.groups]

        def run(tile: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
            t = (tile.to(torch.float32, memory_format=torch.channels_last) - mean) / std
            if regress:
                logits, reg = dense.forward_with_regression(t)
            else:
                logits, reg = dense(t), None
            return group_logits(logits, groups), reg

        out_hw = dense_output_size(dense, level.height, level.width)
        budget = self.config.max_memory_mb * 2**20 if self.config.max_memory_mb else None
        bpp = activation_bytes_per_pixel(dense, dense.geometry.window, dense.geometry.stride) if budget else 0.0
        return run_tiled(run, x, dense.geometry, out_hw, budget, bpp)

    def levels(self, width: int, height: int) -> list[Level]:
        """The pyramid :attr:`dense_model` runs over for a ``width x height`` image."""
        cfg = self.config
        return pyramid_levels((width, height), self.dense_model.window, cfg.min_size, cfg.max_size,
                              cfg.scale_factor)

    @torch.inference_mode()
    def detect_batch(self, images: list[np.ndarray], return_maps: bool = False) -> list[Detections]:
        """Detect in several ``[H, W, 3]`` uint8 RGB arrays; same-size images share each network call.

        The result of each image does not depend on the batch it was in. The current
        :func:`~fcndetect.observe.observer` sees each step end.
        """
        images = [self._prepare(im) for im in images]
        if self.config.grayscale:
            observer().step("grayscale")
        if tuple(self.config.rotations) != (0.0,):
            return [self._detect_rotated(im, return_maps) for im in images]
        results: list[Detections | None] = [None] * len(images)
        groups: dict[tuple[int, int], list[int]] = {}
        for k, im in enumerate(images):
            groups.setdefault(im.shape[:2], []).append(k)
        for members in groups.values():
            outputs = self._pyramid_outputs([images[k] for k in members])
            for k, out in zip(members, outputs):
                results[k] = self._finish(images[k], out, return_maps)
        return [r for r in results if r is not None]

    def _pyramid_outputs(self, images: list[np.ndarray]) -> list[list[LevelOutput]]:
        """The pyramid loop (the only one): the first stage's :class:`LevelOutput` on every pyramid level of
        each of the same-size ``[H, W, 3]`` uint8 images (already prepared), each level resized from the one
        before (:func:`fcndetect.pyramid.iter_pyramid_images`) and run for all images in one network call."""
        obs = observer()
        stage = self.stages()[0]
        height, width = images[0].shape[:2]
        levels = self.levels(width, height)
        obs.step("pyramid plan")
        streams = [iter_pyramid_images(im, levels) for im in images]
        outputs: list[list[LevelOutput]] = [[] for _ in images]
        for j, level in enumerate(levels):
            resized = [next(stream) for stream in streams]
            obs.step(f"resize L{j} {level.width}x{level.height}")
            logits, reg = self.score_level(resized, level, stage)
            obs.step(f"network L{j} ({stage.name})")
            for b, out in enumerate(outputs):
                out.append(LevelOutput(level, logits[b], reg[b] if reg is not None else None))
        return outputs

    def _finish(self, image: np.ndarray, outputs: list[LevelOutput], return_maps: bool) -> Detections:
        """One prepared ``[H, W, 3]`` image's detections from its first stage's level outputs: a cascade's
        later stages then the final NMS, clipping, sorting and cap, or the single stage's post-processing."""
        height, width = image.shape[:2]
        if not self.stage_models:
            dets = postprocess(outputs, self.geometry, self.config, self.class_names, (width, height), return_maps)
            observer().step("post-processing (threshold, boxes, NMS)")
            return dets
        windows = cascade_candidates(image, outputs, self._cascade())
        maps = score_maps(outputs, self.geometry) if return_maps else None
        dets = finalize(windows, self.config, self.class_names, (width, height), maps)
        observer().step("final NMS, clipping, sorting")
        return dets

    @torch.inference_mode()
    def stage_windows(self, image: np.ndarray) -> list[tuple[str, torch.Tensor]]:
        """A cascade's survivors after each stage for an ``[H, W, 3]`` uint8 RGB image: ``[(model name, boxes
        [N, 4] xyxy image pixels)]``, the last entry being the last stage's windows before the final NMS.
        For measuring each stage's recall (``benchmarks/peers.py``)."""
        if not self.stage_models:
            raise ValueError("stage_windows needs a cascade (a preset with stages)")
        with observing(KeptWindows()) as kept:
            self._candidates(self._prepare(image))
        return kept.windows

    def detect_array(self, image: np.ndarray, return_maps: bool = False) -> Detections:
        """Detect in an ``[H, W, 3]`` uint8 RGB array."""
        return self.detect_batch([image], return_maps=return_maps)[0]

    @torch.inference_mode()
    def _candidates(self, image: np.ndarray) -> tuple[Windows, list[LevelOutput]]:
        """The windows above threshold before the final NMS (a cascade's last stage, or the dense maps'),
        and the dense levels' outputs."""
        outputs = self._pyramid_outputs([image])[0]
        if self.stage_models:
            return cascade_candidates(image, outputs, self._cascade()), outputs
        return level_windows(outputs, self.geometry, self.config.threshold), outputs

    def _detect_rotated(self, image: np.ndarray, return_maps: bool) -> Detections:
        """Search every angle of ``rotations``, map each window back (its box becomes the axis-aligned box of
        the rotated window; its corners and landmarks are mapped exactly), and merge all by one NMS. With
        ``return_maps``, the score maps of every angle, in ``rotations`` order (:attr:`ScoreMap.angle`)."""
        height, width = image.shape[:2]
        parts: list[Windows] = []
        maps: list[ScoreMap] | None = None
        for angle in self.config.rotations:
            rotated, m = rotate_image(image, float(angle))
            found, outputs = self._candidates(rotated)
            if return_maps:  # one set of score maps per angle, each in its rotated image's pixels
                maps = (maps or []) + [replace(sm, angle=float(angle)) for sm in score_maps(outputs, self.geometry)]
            quads = map_points(box_corners(found.boxes.double()), m, inverse=True)
            points = found.landmarks
            parts.append(found.replace(
                boxes=quad_boxes(quads).float(), angles=torch.full_like(found.logits, float(angle)),
                quads=quads.float(),
                landmarks=map_points(points.double(), m, inverse=True).float() if points is not None else None))
        return finalize(Windows.cat(parts), self.config, self.class_names, (width, height), maps)

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
        semantics: an input that fails (unreadable, or its detection raising, e.g. out of memory) yields a
        result with ``error`` set (one line), never raises.

        Images are decoded in ``workers`` background threads; same-size images share network calls up to
        ``batch_size`` (results do not depend on it).
        """
        from .engines.base import EngineOptions
        from .engines.local import iter_detections
        from .io.sources import expand_sources

        srcs = [sources] if isinstance(sources, (str, os.PathLike)) else sources
        items = list(expand_sources(str(s) for s in srcs))
        options = EngineOptions(batch_size=batch_size, max_pixels=max_pixels, return_maps=return_maps,
                                workers=workers)
        for r in iter_detections(self.detect_batch, items, options):
            h, w = r.image.shape[:2] if r.image is not None else (None, None)
            yield DetectionResult(r.item.path, r.detections, r.error, w, h)


def remote_detect_batch(config: DetectorConfig) -> Callable[..., list[Detections]]:
    """The ``detect_batch`` of a :class:`Detector` built from ``config``: what an engine's worker process calls
    once (``functools.partial(remote_detect_batch, config)`` pickles, a detector's weights do not travel)."""
    return Detector(config).detect_batch
