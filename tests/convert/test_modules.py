"""The helper modules a conversion inserts: LocalSqueeze for SE pools, BranchedBlock for ShuffleNet units."""

from __future__ import annotations

import torch
import torchvision
from torch import nn
from torchvision.ops.misc import SqueezeExcitation

from fcndetect.convert import BranchedBlock, LocalSqueeze, make_fully_convolutional
from fcndetect.spans import Span, trace_layers


def _build(name: str) -> nn.Module:
    torch.manual_seed(0)
    return torchvision.models.get_model(name, weights=None).eval()


def test_local_squeeze_is_the_documented_avg_pool() -> None:
    """LocalSqueeze == AvgPool2d(2m - 1, stride 1, padding m - 1, count_include_pad=False), and at the
    native map size it is the global mean at every position."""
    x = torch.randn(2, 5, 23, 17, generator=torch.Generator().manual_seed(5))
    for m in [(3, 4), (7, 7), (12, 9)]:
        ref = nn.AvgPool2d((2 * m[0] - 1, 2 * m[1] - 1), 1, (m[0] - 1, m[1] - 1), count_include_pad=False)(x)
        assert torch.allclose(LocalSqueeze(m)(x), ref, atol=1e-5)
    native = x[:, :, :7, :9]
    assert torch.allclose(LocalSqueeze((7, 9))(native), native.mean((2, 3), keepdim=True).expand_as(native))


def test_local_squeeze_declares_its_window() -> None:
    """Its ``fcn_span`` hook: same size and stride, field grown by ``2 (m - 1)`` positions at the current jump."""
    span = Span(size=20, jump=4, left=-3, extent=11)
    assert LocalSqueeze((5, 3)).fcn_span(span, 0) == Span(size=20, jump=4, left=-3 - 4 * 4, extent=11 + 8 * 4)
    assert LocalSqueeze((5, 3)).fcn_span(span, 1) == Span(size=20, jump=4, left=-3 - 2 * 4, extent=11 + 4 * 4)


def test_se_blocks_are_localised_without_touching_the_model() -> None:
    model = _build("efficientnet_b0")
    dense = make_fully_convolutional(model, 224)
    ses = [m for m in model.modules() if isinstance(m, SqueezeExcitation)]
    local = [m for m in dense.modules() if isinstance(m, LocalSqueeze)]
    assert len(ses) == len(local) == 16
    assert all(isinstance(m.avgpool, nn.AdaptiveAvgPool2d) for m in ses)  # the classifier is unchanged
    assert local[0].size == (112, 112) and local[-1].size == (7, 7)
    assert {p.data_ptr() for p in dense.body.parameters()} <= {p.data_ptr() for p in model.parameters()}
    assert dense.geometry.receptive_field > 224  # each SE sees its whole native map


def test_shufflenet_units_are_wrapped_for_the_geometry_walk() -> None:
    model = _build("shufflenet_v2_x0_5")
    dense = make_fully_convolutional(model, 224)
    assert sum(isinstance(m, BranchedBlock) for m in dense.modules()) == 16
    assert not any(isinstance(m, BranchedBlock) for m in model.modules())
    assert dense.geometry.stride == 32


def test_branched_block_merges_its_branches() -> None:
    """The span of a BranchedBlock is the union of its branches' fields (here 3x3 and 5x5, both padded)."""

    class TwoBranches(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Conv2d(2, 2, 3, padding=1)
            self.b = nn.Conv2d(2, 2, 5, padding=2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.cat([self.a(x), self.b(x)], 1)

    t = trace_layers(BranchedBlock(TwoBranches(), ["a", "b"]), 9)
    assert (t.output_size, t.stride, t.receptive_field, t.rf_offset) == (9, 1, 5, -2)
