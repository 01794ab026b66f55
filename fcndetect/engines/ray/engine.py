"""The Ray engine as the runner sees it (:class:`~fcndetect.engines.base.Engine`): actors on a Ray cluster
detect and render; the driver's detector, built on the CPU, only describes the run."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import TYPE_CHECKING

from ...io.sources import SourceItem
from ..base import DetectorWork, EngineOptions, ItemResult
from .lifecycle import require_ray
from .options import REMOTE_SCHEMES, RayEngineError, RayOptions
from .pipeline import iter_detections_ray

if TYPE_CHECKING:
    from ...config import DetectorConfig

__all__ = ["RayEngine"]


class RayEngine:
    """``--engine ray``: Ray Data actors (:func:`~.pipeline.iter_detections_ray`) where ``options`` say."""

    name = "ray"
    detects_in_driver = False
    renders_where_it_detects = True  # the actors render where they detect, and return no pixels
    reads_videos = False

    def __init__(self, options: RayOptions | None = None) -> None:
        self.options = options

    def check_available(self) -> None:
        """:class:`RayEngineError` naming the install command without Ray Data."""
        require_ray()

    def check_config(self, config: DetectorConfig) -> None:
        """On a running cluster (``--ray-address``), a model the workers cannot build is refused."""
        from ...models.files import cluster_refusal

        if self.options is not None and self.options.address:
            refusal = cluster_refusal(config)
            if refusal is not None:
                raise RayEngineError(refusal)

    def uri_support(self) -> tuple[tuple[str, ...], str]:
        """Local files and object-store URIs (the actors read them)."""
        return REMOTE_SCHEMES, (f"--engine {self.name} reads local image files, folders, glob patterns and "
                                "object-store URIs (" + ", ".join(f"{s}://" for s in REMOTE_SCHEMES)
                                + "); download http(s) files first")

    def results(self, work: DetectorWork, items: list[SourceItem], options: EngineOptions) -> Iterator[ItemResult]:
        """The actors' results; the model's files travel through Ray's object store (no shared filesystem)."""
        from ...models.files import build_from_copies, driver_files

        make = functools.partial(build_from_copies, work.remote, work.config)
        return iter_detections_ray(make, items, options, self.options, driver_files(work.config))
