"""What every engine shares: its inputs (a ``detect_batch`` callable, :class:`EngineOptions`), its output
(:class:`ItemResult`, one per input, in input order), and per-input isolation of failures.

An engine only moves images and records; it never changes a number (DESIGN.md). It never imports the
detector or the runner: it is given a ``detect_batch`` callable (``Detector.detect_batch``, or a picklable
factory of one for engines that detect in other processes) and a ``render`` callable
(:func:`fcndetect.io.render.render_image_outputs` bound to the run's options).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

from ..detections import Detections
from ..io.images import DEFAULT_MAX_PIXELS, ImageLoadError
from ..io.sinks import output_name
from ..io.sources import SourceItem

if TYPE_CHECKING:
    from ..config import DetectorConfig
    from .frames import VideoStream

__all__ = ["DetectBatch", "Render", "EngineOptions", "ItemResult", "DetectorWork", "Engine", "error_reason",
           "detect_each", "render_one", "item_ext"]

#: ``detect_batch(images, return_maps=...)``: ``[H, W, 3]`` uint8 RGB arrays in, one Detections each out.
DetectBatch = Callable[..., list[Detections]]
#: ``render(image, detections, ext)``: an image's output files as ``(suffix, bytes)`` (pure, writes nothing).
Render = Callable[[np.ndarray, Detections, str], list[tuple[str, bytes]]]


@dataclass(frozen=True)
class EngineOptions:
    """How an engine runs (what it computes is the detector's business).

    Attributes:
        batch_size: same-size images per ``detect_batch`` call.
        max_pixels: decoding refuses larger images (``None``: no limit).
        return_maps: ask ``detect_batch`` for score maps (a heatmap or saved maps are rendered).
        workers: decoding threads (local engine).
        render: renders an image's files where it was detected (the Ray engine, which then returns no
            pixels); ``None``: the engine returns the image and the caller renders.
        vid_stride: a video's frames ``0, N, 2N, ...`` are detected in (engines that read videos).
    """

    batch_size: int = 1
    max_pixels: int | None = DEFAULT_MAX_PIXELS
    return_maps: bool = False
    workers: int = 1
    render: Render | None = None
    vid_stride: int = 1


@dataclass
class ItemResult:
    """The outcome for one input: its source item, the decoded image and detections, or an error.

    ``files``: the image's output files when the engine rendered them itself (``EngineOptions.render``), as
    the Ray engine does where it detects; ``image`` may then be ``None``.

    ``video``: for an opened video, its frames with their detections (``image`` and ``detections`` are then
    ``None``); the caller iterates it to its end before asking the engine for the next result.
    """

    item: SourceItem
    image: np.ndarray | None
    detections: Detections | None
    error: str | None
    files: list[tuple[str, bytes]] | None = None
    video: "VideoStream | None" = None


@dataclass(frozen=True)
class DetectorWork:
    """What the runner hands an engine to detect with (the engine never imports the detector).

    Attributes:
        detect_batch: the driver's own detector's ``detect_batch`` (engines that detect in this process).
        config: the detector's settings, as asked for (engines that build detectors elsewhere).
        remote: ``remote(config)`` builds a ``detect_batch`` in another process; a module-level function,
            so that ``functools.partial(remote, config)`` pickles.
    """

    detect_batch: DetectBatch
    config: "DetectorConfig"
    remote: Callable[["DetectorConfig"], DetectBatch]


class Engine(Protocol):
    """An engine, as the runner and the command line see it: they ask it what it needs, never its name.

    Attributes:
        name: its ``--engine`` value (recorded in ``run.json``).
        detects_in_driver: the driver's detector detects (``False``: workers elsewhere do, and the driver's
            detector, built on the CPU, only describes the run).
        renders_where_it_detects: image files are rendered by the workers (the runner passes ``render``).
        reads_videos: it takes video inputs.
    """

    name: str
    detects_in_driver: bool
    renders_where_it_detects: bool
    reads_videos: bool

    def check_available(self) -> None:
        """Raise the engine's one-line error when it cannot run here (a missing optional package)."""

    def check_config(self, config: "DetectorConfig") -> None:
        """Raise the engine's one-line error when it cannot run ``config`` (before any output is written)."""

    def uri_support(self) -> tuple[tuple[str, ...], str]:
        """The URI schemes it reads, and what a refused URL's error says is supported."""

    def results(self, work: DetectorWork, items: list[SourceItem],
                options: EngineOptions) -> Iterator[ItemResult]:
        """Every item's :class:`ItemResult`, lazily, in input order (``close()`` frees its resources)."""


def error_reason(exc: BaseException, doing: str = "") -> str:
    """One line saying why one input failed: ``doing`` (``"detection failed"``), then the exception.

    An :class:`OSError` names its file(s) and its ``strerror`` (``File exists: out/sub``); an
    :class:`~fcndetect.io.images.ImageLoadError` gives its reason alone; any other exception its type and
    message."""
    if isinstance(exc, ImageLoadError):
        text = exc.reason
    elif isinstance(exc, OSError) and exc.strerror:
        files = [f for f in (exc.filename, exc.filename2) if f is not None]
        text = exc.strerror + (": " + " -> ".join(str(f) for f in files) if files else "")
    else:
        kind = type(exc).__qualname__
        if type(exc).__module__ not in ("builtins", "__main__"):
            kind = f"{type(exc).__module__.split('.')[0]}.{kind}"  # cv2.error, torch.OutOfMemoryError
        text = f"{kind}: {exc}" if str(exc) else kind
    text = " ".join(text.split())
    return f"{doing}: {text}" if doing else text


def detect_each(detect_batch: DetectBatch, images: list[np.ndarray],
                return_maps: bool) -> list[Detections | str]:
    """``detect_batch`` over ``images`` with per-image isolation: each entry is the image's Detections, or the
    one-line reason its detection failed. A batch that fails is retried image by image (results do not depend
    on the batch), so one bad image (out of memory, an OpenCV error) never costs the others theirs."""
    if not images:
        return []
    try:
        dets = detect_batch(images, return_maps=return_maps)
        if len(dets) != len(images):
            raise RuntimeError(f"detect_batch returned {len(dets)} results for {len(images)} images")
        return list(dets)
    except Exception as exc:  # noqa: BLE001 - each image's own failure is found below
        if len(images) == 1:
            return [error_reason(exc, "detection failed")]
    out: list[Detections | str] = []
    for image in images:
        out.extend(detect_each(detect_batch, [image], return_maps))
    return out


def render_one(render: Render, image: np.ndarray, dets: Detections,
               ext: str) -> list[tuple[str, bytes]] | str:
    """``render(image, dets, ext)``, or the one-line reason it failed."""
    try:
        return render(image, dets, ext)
    except Exception as exc:  # noqa: BLE001 - one input's failure, reported on its record
        return error_reason(exc, "rendering failed")


def item_ext(item: SourceItem) -> str:
    """The extension of an input's output name (``.jpg``), which its annotated image and heatmap keep."""
    return os.path.splitext(output_name(item.path, item.relative, item.root))[1]
