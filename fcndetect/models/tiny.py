"""``tiny``: a small CNN with a fully-connected head, sized for training on a CPU in minutes.

Three unpadded 3x3 convolutions (16, 32, 64 channels, each with batch norm and ReLU), the first two followed by
a 2x2 max pool, then ``Flatten -> Linear(64*k*k, 128) -> ReLU -> Dropout -> Linear(128, K)``. At the default
34 px input the last map is 5x5 (``k = 5``), a score-map cell moves 4 px, and one window costs about 4 MFLOPs
(MTCNN's O-Net: 26; ``fcndetect inspect tiny --weights none``). No padding anywhere, so the dense network equals classifying each window as a crop; an
input side of ``4k + 2`` px (18, 22, ..., 34, 38) leaves no pixel unread by the pools.
"""

from __future__ import annotations

from torch import nn

__all__ = ["DEFAULT_INPUT_SIZE", "MIN_INPUT_SIZE", "TinyNet", "feature_side"]

#: Default input side: ``4k + 2`` (every pixel read) and no larger than the 36x36 shared face crops.
DEFAULT_INPUT_SIZE = 34
#: The smallest input the three convolutions and two pools accept (a 1x1 last map).
MIN_INPUT_SIZE = 18


def feature_side(input_size: int) -> int:
    """Side of the last feature map for an ``input_size`` square input (``(s - 2) // 2``, twice, then ``- 2``)."""
    side = (input_size - 2) // 2
    side = (side - 2) // 2
    return side - 2


class TinyNet(nn.Sequential):
    """The ``tiny`` classifier: ``[B, 3, S, S]`` normalised images to ``[B, num_classes]`` logits.

    Args:
        num_classes: outputs (2 for object / background: index 0 is background).
        input_size: the input side ``S`` (>= 18); it fixes the first ``Linear``'s ``in_features``.
    """

    def __init__(self, num_classes: int = 2, input_size: int = DEFAULT_INPUT_SIZE) -> None:
        if input_size < MIN_INPUT_SIZE:
            raise ValueError(f"tiny needs an input size of at least {MIN_INPUT_SIZE} px, got {input_size}")
        if num_classes < 2:
            raise ValueError(f"tiny needs at least 2 classes (background and object), got {num_classes}")
        k = feature_side(input_size)

        def block(c_in: int, c_out: int) -> list[nn.Module]:
            return [nn.Conv2d(c_in, c_out, 3), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]

        super().__init__(
            *block(3, 16), nn.MaxPool2d(2),
            *block(16, 32), nn.MaxPool2d(2),
            *block(32, 64),
            nn.Flatten(),
            nn.Linear(64 * k * k, 128), nn.ReLU(inplace=True), nn.Dropout(0.3),
            nn.Linear(128, num_classes),
        )
        self.input_size = input_size
