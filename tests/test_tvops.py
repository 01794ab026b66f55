"""torchvision's operators, loaded without importing torchvision, give torchvision.ops' numbers."""

from __future__ import annotations

import torch
import torchvision.ops

from fcndetect.boxes import box_iou, clip_boxes
from fcndetect.tvops import torchvision_op


def _boxes(n: int, seed: int, side: float = 60.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand((n, 2), generator=g, dtype=torch.float64) * 100 - 10
    wh = torch.rand((n, 2), generator=g, dtype=torch.float64) * side
    wh[:3] = 0.0  # zero-area boxes: IoU 0/0 is NaN in both
    return torch.cat([xy, xy + wh], dim=1)


def test_roi_align_operator_is_torchvision_ops_roi_align():
    g = torch.Generator().manual_seed(0)
    x = torch.rand((1, 3, 37, 53), generator=g) * 255
    b = _boxes(20, 1).float()
    rois = torch.cat([torch.zeros((20, 1)), b], dim=1)
    for size, samples in ((12, 1), (24, 2), (48, -1)):
        ours = torchvision_op("roi_align")(x, rois, 1.0, size, size, samples, True)
        theirs = torchvision.ops.roi_align(x, rois, size, spatial_scale=1.0, sampling_ratio=samples, aligned=True)
        assert torch.equal(ours, theirs)


def test_nms_operator_is_torchvision_ops_nms():
    b = _boxes(200, 2)
    s = torch.rand(200, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    for thr in (0.0, 0.3, 0.7):
        assert torch.equal(torchvision_op("nms")(b, s, thr), torchvision.ops.nms(b, s, thr))


def test_box_iou_and_clip_are_torchvision_ops_ones():
    a, b = _boxes(30, 4), _boxes(17, 5)
    ours, theirs = box_iou(a, b), torchvision.ops.box_iou(a, b)
    assert ours.isnan().any() and torch.equal(ours.isnan(), theirs.isnan())  # the zero-area pairs: 0/0
    assert torch.equal(ours.nan_to_num(-1.0), theirs.nan_to_num(-1.0))
    assert torch.equal(clip_boxes(a, 64, 48), torchvision.ops.clip_boxes_to_image(a, (48, 64)))
    assert torch.equal(clip_boxes(a.float(), 64, 48), torchvision.ops.clip_boxes_to_image(a.float(), (48, 64)))
