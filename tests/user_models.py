"""Classifiers defined in "the user's own code", loaded by import path (``--model user_models:small``)."""

from __future__ import annotations

import torch
from torch import nn


def small() -> nn.Module:
    """32 px input: conv 5x5 (8) -> max pool 2 -> conv 3x3 (16) -> Linear(16*12*12, 10)."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, 16, 3), nn.ReLU(), nn.Flatten(),
                         nn.Linear(16 * 12 * 12, 10))


class _Recurrent(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.rnn = nn.LSTM(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rnn(self.conv(x).flatten(2).permute(2, 0, 1))[0][-1]


def unconvertible() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.Upsample(scale_factor=2), nn.Flatten(), nn.Linear(4 * 120 * 120, 2))


def not_a_module() -> object:
    return "nope"
