"""Face-window augmentation: the box-regression targets move with the content (oracle: a bright square drawn
where the target says, found again after the warp), photometric steps keep shapes and ranges, seeds repeat."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fcndetect.train.augment import augment_faces

SIZE = 48


def _square_window(t: np.ndarray) -> torch.Tensor:
    """A dark ``SIZE`` window with a bright box at MTCNN offsets ``t`` (relative to the window)."""
    img = np.full((SIZE, SIZE, 3), 20, np.uint8)
    x1, y1 = int(round(t[0] * SIZE)), int(round(t[1] * SIZE))
    x2, y2 = int(round((1 + t[2]) * SIZE)), int(round((1 + t[3]) * SIZE))
    img[y1:y2, x1:x2] = 230
    return torch.from_numpy(img)


def _bright_box(x: torch.Tensor) -> np.ndarray:
    """Offsets of the bright region's bounding box in a ``[3, S, S]`` window (pixel edges, continuous)."""
    ys, xs = np.nonzero(x[0].numpy() > 125)
    return np.array([xs.min() / SIZE, ys.min() / SIZE, (xs.max() + 1) / SIZE - 1, (ys.max() + 1) / SIZE - 1])


@pytest.mark.parametrize("seed", range(6))
def test_targets_follow_flip_shift_and_scale(seed: int) -> None:
    t = np.array([0.25, 0.2, -0.25, -0.2])
    windows = torch.stack([_square_window(t)] * 8)
    targets = torch.tensor(t, dtype=torch.float32).repeat(8, 1)
    gen = torch.Generator().manual_seed(seed)
    x, moved = augment_faces(windows, targets, gen, rotation=0.0, shift=0.08, scale=0.1, blur=0, gray=0,
                             occlusion=0, brightness=0, contrast=0)
    assert x.shape == (8, 3, SIZE, SIZE) and moved.shape == (8, 4)
    for k in range(8):
        np.testing.assert_allclose(_bright_box(x[k]), moved[k].numpy(), atol=1.6 / SIZE)


def test_mirror_swaps_and_negates_horizontal_offsets() -> None:
    t = torch.tensor([[0.1, 0.05, -0.3, -0.02]])
    w = _square_window(t[0].numpy())[None]
    for seed in range(20):
        x, moved = augment_faces(w, t, torch.Generator().manual_seed(seed), rotation=0, shift=0, scale=0,
                                 blur=0, gray=0, occlusion=0, brightness=0, contrast=0)
        if not torch.allclose(moved, t):  # this draw mirrored
            torch.testing.assert_close(moved, torch.tensor([[0.3, 0.05, -0.1, -0.02]]))
            torch.testing.assert_close(x[0], torch.flip(w[0].permute(2, 0, 1).float(), dims=[2]))
            return
    pytest.fail("no mirrored draw in 20 seeds")


def test_photometric_steps_keep_range_and_repeat_with_a_seed() -> None:
    w = torch.randint(0, 256, (32, SIZE, SIZE, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    t = torch.zeros(32, 4)
    a, ta = augment_faces(w, t, torch.Generator().manual_seed(1), blur=1.0, gray=0.5, occlusion=0.5)
    b, tb = augment_faces(w, t, torch.Generator().manual_seed(1), blur=1.0, gray=0.5, occlusion=0.5)
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(ta, tb)
    assert float(a.min()) >= 0 and float(a.max()) <= 255
    gray = [(x[0] == x[1]).all() and (x[1] == x[2]).all() for x in a]
    assert 4 <= sum(bool(g) for g in gray) <= 28
