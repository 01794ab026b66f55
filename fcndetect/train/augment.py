"""Augmentation of training windows on the fly: flips, small shifts and scales, brightness and contrast.

Works on a batch ``[B, S, S, 3]`` uint8 (as stored) and returns ``[B, 3, S, S]`` float32 in 0..255 units, ready
for normalisation. All randomness comes from the ``torch.Generator`` passed in (repeatable runs).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["augment", "to_float"]


def to_float(windows: torch.Tensor) -> torch.Tensor:
    """``[B, S, S, 3]`` uint8 windows as ``[B, 3, S, S]`` float32 in 0..255."""
    return windows.permute(0, 3, 1, 2).float()


def augment(windows: torch.Tensor, gen: torch.Generator, shift: float = 0.06, scale: float = 0.1,
            brightness: float = 25.0, contrast: float = 0.3) -> torch.Tensor:
    """Randomly transformed copies of ``[B, S, S, 3]`` uint8 windows: ``[B, 3, S, S]`` float32 in 0..255.

    Each window is flipped left-right with probability 0.5, shifted by up to ``shift`` of its side, scaled by
    a factor in ``[1 - scale, 1 + scale]`` about its centre (border pixels replicated), then its contrast is
    multiplied by a factor in ``[1 - contrast, 1 + contrast]`` about its mean and ``±brightness`` is added.
    The same transform applies to the three channels, so a gray window stays gray.
    """
    x = to_float(windows)
    b = x.shape[0]
    u = lambda *shape: torch.rand(*shape, generator=gen)  # noqa: E731
    flip = torch.where(u(b) < 0.5, -1.0, 1.0)
    s = 1.0 + (u(b) * 2 - 1) * scale
    tx, ty = (u(b) * 2 - 1) * shift * 2, (u(b) * 2 - 1) * shift * 2  # normalised coords span 2
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0] = flip / s
    theta[:, 1, 1] = 1.0 / s
    theta[:, 0, 2] = tx
    theta[:, 1, 2] = ty
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    c = (1.0 + (u(b) * 2 - 1) * contrast).view(b, 1, 1, 1)
    br = ((u(b) * 2 - 1) * brightness).view(b, 1, 1, 1)
    return ((x - mean) * c + mean + br).clamp(0.0, 255.0)
