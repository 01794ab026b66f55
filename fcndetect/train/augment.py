"""Augmentation of training windows on the fly: flips, small shifts and scales, brightness and contrast.

Works on a batch ``[B, S, S, 3]`` uint8 (as stored) and returns ``[B, 3, S, S]`` float32 in 0..255 units, ready
for normalisation. All randomness comes from the ``torch.Generator`` passed in (repeatable runs).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["augment", "augment_faces", "to_float"]


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


def _box_through(targets: torch.Tensor, inverse: torch.Tensor, t: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """MTCNN offsets ``[B, 4]`` (face relative to its window) after the window's content was warped by
    ``grid_sample`` with ``theta = [A | t]``: the face's centre moves by ``A^-1 (c - t)``, its half sides scale by
    ``s`` (exact for flips, shifts and scales; the rotated box's centre, sides kept, for small rotations)."""
    x1, y1 = 2 * targets[:, 0] - 1, 2 * targets[:, 1] - 1  # normalised coords: the window spans [-1, 1]
    x2, y2 = 1 + 2 * targets[:, 2], 1 + 2 * targets[:, 3]
    c = torch.stack([(x1 + x2) / 2, (y1 + y2) / 2], 1) - t
    c = torch.einsum("bij,bj->bi", inverse, c)
    hx, hy = (x2 - x1) / 2 * s, (y2 - y1) / 2 * s
    nx1, nx2, ny1, ny2 = c[:, 0] - hx, c[:, 0] + hx, c[:, 1] - hy, c[:, 1] + hy
    return torch.stack([(nx1 + 1) / 2, (ny1 + 1) / 2, (nx2 + 1) / 2 - 1, (ny2 + 1) / 2 - 1], 1)


def augment_faces(windows: torch.Tensor, targets: torch.Tensor, gen: torch.Generator, *, rotation: float = 10.0,
                  shift: float = 0.04, scale: float = 0.06, blur: float = 0.15, gray: float = 0.15,
                  occlusion: float = 0.15, brightness: float = 25.0, contrast: float = 0.3
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Randomly transformed copies of ``[B, S, S, 3]`` uint8 face / background windows and their MTCNN box
    offsets ``targets [B, 4]`` (moved with the content; meaningless rows stay meaningless): returns
    ``([B, 3, S, S]`` float32 in 0..255, ``[B, 4])``.

    Per window: a mirror with probability 0.5, an in-plane rotation of up to ``±rotation`` degrees, a shift by
    up to ``shift`` of the side and a scale by ``1 ± scale`` (border pixels replicated); then with probability
    ``blur`` a Gaussian blur (sigma 0.5..1.5 px, one per batch), with probability ``gray`` grayscale (ITU-R 601
    luma), with probability ``occlusion`` a rectangle of 20..50 % of each side filled with one random gray
    level, and contrast ``1 ± contrast`` about the mean and brightness ``±brightness``.
    """
    from torchvision.transforms.functional import gaussian_blur

    x = to_float(windows)
    b, _, size, _ = x.shape
    u = lambda *shape: torch.rand(*shape, generator=gen)  # noqa: E731
    flip = torch.where(u(b) < 0.5, -1.0, 1.0)
    s = 1.0 + (u(b) * 2 - 1) * scale
    angle = (u(b) * 2 - 1) * rotation * torch.pi / 180
    t = (u(b, 2) * 2 - 1) * shift * 2
    cos, sin = torch.cos(angle), torch.sin(angle)
    a = torch.stack([torch.stack([cos * flip / s, -sin / s], 1), torch.stack([sin * flip / s, cos / s], 1)], 1)
    theta = torch.cat([a, t[:, :, None]], 2)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    new_targets = _box_through(targets.float(), torch.linalg.inv(a), t, s)
    pick = u(b) < blur
    if pick.any():
        sigma = 0.5 + float(u(1)) * 1.0
        x[pick] = gaussian_blur(x[pick], kernel_size=5, sigma=sigma)
    pick = u(b) < gray
    if pick.any():
        luma = (x[pick] * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
        x[pick] = luma.expand(-1, 3, -1, -1)
    pick = torch.nonzero(u(b) < occlusion).flatten()
    if len(pick):
        wh = ((0.2 + 0.3 * u(len(pick), 2)) * size).long().clamp(min=1)
        xy = (u(len(pick), 2) * (size - wh)).long()
        level = u(len(pick)) * 255
        for k, i in enumerate(pick.tolist()):
            x[i, :, xy[k, 1]:xy[k, 1] + wh[k, 1], xy[k, 0]:xy[k, 0] + wh[k, 0]] = level[k]
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    c = (1.0 + (u(b) * 2 - 1) * contrast).view(b, 1, 1, 1)
    br = ((u(b) * 2 - 1) * brightness).view(b, 1, 1, 1)
    return ((x - mean) * c + mean + br).clamp(0.0, 255.0), new_targets
