"""Where each cell of a dense score map looks in its input: the :class:`Geometry` mapping (hot path).

A dense network maps an input of ``H x W`` pixels to a score map of ``H' x W'`` cells. Cell ``(i, j)``
(row ``i``, column ``j``) corresponds to the classifier's training window (its *native* input size) placed
at ``(offset + stride * j, offset + stride * i)`` in the input: the crop that, classified on its own,
gives (up to border effects of padding and ceil-mode pooling) the score in that cell. The geometry itself is
computed from the network's layers by :mod:`fcndetect.spans`.

All boxes are ``[x1, y1, x2, y2]`` floats with continuous edges: ``[0, 0, W, H]`` is the whole image.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

__all__ = ["Geometry", "GeometryError", "cells_to_boxes", "boxes_to_cells"]


class GeometryError(ValueError):
    """The network contains a layer whose spatial effect cannot be expressed as a sliding window."""


@dataclass(frozen=True)
class Geometry:
    """Sliding-window geometry of a dense network (the same along both axes: others are refused).

    Attributes:
        stride: input pixels between neighbouring cells.
        offset: left/top edge, in input pixels, of the window of cell ``(0, 0)``.
        window: side of the classifier's native input (the box emitted for a cell).
        receptive_field: side of the region of input pixels that can influence one cell.
        rf_offset: left/top edge of the receptive field of cell ``(0, 0)`` (negative with padding).
    """

    stride: int
    offset: float
    window: int
    receptive_field: int
    rf_offset: int

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def cells_to_boxes(
    rows: torch.Tensor | np.ndarray,
    cols: torch.Tensor | np.ndarray,
    geometry: Geometry,
    scale: tuple[float, float] = (1.0, 1.0),
) -> torch.Tensor:
    """Boxes of score-map cells in original-image pixels.

    Args:
        rows: ``[N]`` cell row indices ``i``.
        cols: ``[N]`` cell column indices ``j``.
        geometry: the dense network's geometry.
        scale: ``(sx, sy)``: level size over original image size along x and y (a pyramid level is the
            original image resized by these factors).

    Returns:
        ``[N, 4]`` float32 boxes ``[x1, y1, x2, y2]`` in original-image pixels (continuous edges).
    """
    rows_t = torch.as_tensor(rows, dtype=torch.float32)
    cols_t = torch.as_tensor(cols, dtype=torch.float32)
    sx, sy = scale
    x1 = (geometry.offset + geometry.stride * cols_t) / sx
    y1 = (geometry.offset + geometry.stride * rows_t) / sy
    x2 = x1 + geometry.window / sx
    y2 = y1 + geometry.window / sy
    return torch.stack([x1, y1, x2, y2], dim=-1)


def boxes_to_cells(
    boxes: torch.Tensor | np.ndarray,
    geometry: Geometry,
    scale: tuple[float, float] = (1.0, 1.0),
) -> tuple[torch.Tensor, torch.Tensor]:
    """Inverse of :func:`cells_to_boxes`: the cell whose window is nearest to each box's top-left corner.

    Args:
        boxes: ``[N, 4]`` boxes ``[x1, y1, x2, y2]`` in original-image pixels.
        geometry: the dense network's geometry.
        scale: ``(sx, sy)`` as in :func:`cells_to_boxes`.

    Returns:
        ``(rows, cols)``, each ``[N]`` int64 (may be negative or past the map for boxes off the grid).
    """
    b = torch.as_tensor(boxes, dtype=torch.float64)
    sx, sy = scale
    cols = torch.round((b[:, 0] * sx - geometry.offset) / geometry.stride).to(torch.int64)
    rows = torch.round((b[:, 1] * sy - geometry.offset) / geometry.stride).to(torch.int64)
    return rows, cols
