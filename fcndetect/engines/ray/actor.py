"""The Ray actor: builds its ``detect_batch`` once, then decodes, detects and renders batches of images.

Every failure of one image (reading, decoding, detection, rendering) becomes that image's error; the batch's
other images are unaffected.
"""

from __future__ import annotations

import atexit
import os
import pickle
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

import numpy as np

from ...detections import Detections
from ...io.images import ImageLoadError, decode_image
from ..base import DetectBatch, Render, detect_each, error_reason, render_one
from .options import is_remote_uri

__all__ = ["DetectActor", "actor_class", "read_remote", "write_copies"]


def read_remote(path: str) -> bytes:
    """The bytes of an object-store URI, through ``pyarrow.fs`` (installed with Ray Data)."""
    import pyarrow.fs

    try:
        fs, inner = pyarrow.fs.FileSystem.from_uri(path)
        with fs.open_input_stream(inner) as fh:
            return fh.read()
    except (OSError, ValueError) as exc:
        raise ImageLoadError(path, str(exc)) from None


def actor_class(make_detect_batch: Callable[..., DetectBatch], max_pixels: int | None, return_maps: bool,
                render: Render | None, threads: int, pid_file: str | None,
                files: Mapping[str, tuple[str, Any]] | None = None, batch_size: int = 0) -> type:
    """A :class:`DetectActor` bound to the run's settings. Ray Data builds actors without constructor
    arguments; the model files (``files``: key -> (file name, object reference)) are held by the driver for
    the whole run, so an actor restarted after a crash still finds them in the object store.

    ``make_detect_batch`` and ``render`` must pickle (module-level functions, :func:`functools.partial` of
    them): they travel to the actors' processes. ``batch_size``: images per ``detect_batch`` call (0: a
    block's images in one call)."""
    shipped = dict(files) if files is not None else None

    class BoundDetectActor(DetectActor):
        def __init__(self) -> None:
            super().__init__(make_detect_batch, max_pixels, return_maps, render, threads, pid_file, shipped,
                             batch_size)

    return BoundDetectActor


def write_copies(files: Mapping[str, tuple[str, bytes]], folder: str) -> dict[str, str]:
    """Each file's bytes written to ``folder/N/NAME`` (its own folder, its own name, so suffixes and names
    are kept): key -> path."""
    paths: dict[str, str] = {}
    for n, (key, (name, data)) in enumerate(sorted(files.items())):
        sub = os.path.join(folder, str(n))
        os.makedirs(sub, exist_ok=True)
        path = os.path.join(sub, os.path.basename(name))
        with open(path, "wb") as fh:
            fh.write(data)
        paths[key] = path
    return paths


class DetectActor:
    """One Ray actor: builds its ``detect_batch`` once (loads the model), then :meth:`__call__` per block of
    images, ``batch_size`` images per ``detect_batch`` call.

    Without ``files``, ``make_detect_batch()``; with ``files`` (key -> (file name, object reference)), the
    files are fetched from the object store into a private temporary folder (removed when the actor's
    process exits) and ``make_detect_batch(paths)`` gets key -> path of each copy."""

    def __init__(self, make_detect_batch: Callable[..., DetectBatch], max_pixels: int | None, return_maps: bool,
                 render: Render | None, threads: int, pid_file: str | None,
                 files: Mapping[str, tuple[str, Any]] | None = None, batch_size: int = 0) -> None:
        import torch

        torch.set_num_threads(threads)
        if files is None:
            self.detect_batch = make_detect_batch()
        else:
            import ray

            folder = tempfile.mkdtemp(prefix="fcndetect-model-")
            atexit.register(shutil.rmtree, folder, True)
            data = ray.get([ref for _name, ref in files.values()])
            paths = write_copies({k: (name, d) for (k, (name, _ref)), d in zip(files.items(), data)}, folder)
            del data
            self.detect_batch = make_detect_batch(paths)
        self.max_pixels, self.return_maps, self.render, self.pid_file = max_pixels, return_maps, render, pid_file
        self.batch_size = batch_size

    def _decode(self, path: str, data: bytes, error: str) -> np.ndarray | str:
        """The image, or the one-line reason it cannot be read."""
        try:
            if error:
                raise ImageLoadError(path, error)
            raw = read_remote(path) if is_remote_uri(path) else data
            return decode_image(raw, path, max_pixels=self.max_pixels)
        except Exception as exc:  # noqa: BLE001 - one image's failure
            return error_reason(exc)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.pid_file:
            with open(self.pid_file, "a", encoding="utf-8") as fh:
                fh.write(f"{os.getpid()}\n")
        n = len(batch["i"])
        step = self.batch_size or max(1, n)
        out: list[bytes] = []
        for start in range(0, n, step):  # --batch-size images decoded and detected at a time, as locally
            rows = range(start, min(n, start + step))
            decoded = [self._decode(str(batch["path"][k]), bytes(batch["data"][k]), str(batch["error"][k]))
                       for k in rows]
            good = [j for j, im in enumerate(decoded) if not isinstance(im, str)]
            images = [im for im in decoded if not isinstance(im, str)]  # the images of `good`, in order
            dets = dict(zip(good, detect_each(self.detect_batch, images, self.return_maps)))
            out += [self._result(decoded[j], dets.get(j), str(batch["ext"][k])) for j, k in enumerate(rows)]
        return {"i": batch["i"], "result": np.array(out, dtype=object)}

    def _result(self, image: np.ndarray | str, dets: Detections | str | None, ext: str) -> bytes:
        """One image's pickled outcome: detections without score maps and rendered files, or the error."""
        if isinstance(image, str):
            return pickle.dumps({"error": image})
        if dets is None or isinstance(dets, str):
            return pickle.dumps({"error": dets or "not processed"})
        files = None
        if self.render is not None:
            files = render_one(self.render, image, dets, ext)
            if isinstance(files, str):
                return pickle.dumps({"error": files})
        return pickle.dumps({"detections": replace(dets, score_maps=None), "files": files})
