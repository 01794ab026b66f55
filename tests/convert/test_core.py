"""The converted network against the original classifier: logits at the native size, crops on larger inputs
where that is exact (no padding), and refusal of what has no dense equivalent."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

import oracles
from fcndetect import make_fully_convolutional
from fcndetect.convert import ConversionError
from fcndetect.models.mtcnn import ONet, RNet

SHIFTS = [(0, 0), (0, 1), (1, 0), (-1, -1)]


def _randomize(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random weights, and non-trivial BatchNorm statistics so BN is not the identity."""
    torch.manual_seed(seed)
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
        if isinstance(m, nn.PReLU):
            m.weight.data.uniform_(0.0, 0.5)
    return model.eval()


def _crop_oracle(model, dense, x, output=lambda y: y):
    """Dense logits ``[K, H', W']`` and the classifier applied to each cell's crop, same shape."""
    g = dense.geometry
    with torch.no_grad():
        d = dense(x)[0]
        crops = []
        for i in range(d.shape[1]):
            for j in range(d.shape[2]):
                y0, x0 = int(g.offset + g.stride * i), int(g.offset + g.stride * j)
                crops.append(x[:, :, y0:y0 + g.window, x0:x0 + g.window])
        o = output(model(torch.cat(crops)))
    return d, o.T.reshape(d.shape)


def _plain_classifier(pool: bool) -> tuple[nn.Module, int]:
    feats = [nn.Conv2d(3, 8, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, 16, 3), nn.ReLU(), nn.MaxPool2d(2)]
    if pool:  # 20 -> 16 -> 8 -> 6 -> 3, global pool -> 16
        layers = feats + [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10), nn.ReLU(), nn.Dropout(),
                          nn.Linear(10, 3)]
    else:
        layers = feats + [nn.Flatten(), nn.Linear(16 * 3 * 3, 32), nn.ReLU(), nn.Dropout(), nn.Linear(32, 3),
                          nn.Softmax(dim=1)]
    return nn.Sequential(*layers), 20


def _shifted(d: torch.Tensor, o: torch.Tensor, shift: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Cells ``d[:, i, j]`` paired with crops ``o[:, i + di, j + dj]`` (both ``[K, H', W']``), where both exist."""
    (di, dj), (_, h, w) = shift, d.shape
    return (d[:, max(-di, 0):h - max(di, 0), max(-dj, 0):w - max(dj, 0)],
            o[:, max(di, 0):h - max(-di, 0), max(dj, 0):w - max(-dj, 0)])


@pytest.mark.parametrize("shift", SHIFTS)
@pytest.mark.parametrize("pool", [False, True])
def test_sequential_native_and_crops(pool, shift):
    """Native size: the classifier's output. Larger input (no padding, no ceil mode): every cell is exactly
    the classifier on its crop, and pairing cells with crops one stride off fails the same tolerance."""
    model, n = _plain_classifier(pool)
    model = _randomize(model)
    dense = make_fully_convolutional(model, n)
    x = torch.randn(2, 3, n, n)
    with torch.no_grad():
        ref = model(x)
        got = dense(x)[:, :, 0, 0]
    if not pool:
        got = got.softmax(1)  # the dense net outputs logits; the classifier ended with a softmax
    assert (got - ref).abs().max() <= 1e-5
    big = torch.randn(1, 3, n + 4 * dense.geometry.stride, n + 3 * dense.geometry.stride)
    d, o = _crop_oracle(model, dense, big, (lambda y: y.log()) if not pool else (lambda y: y))
    if not pool:  # compare log-probabilities to logits up to the per-cell log-sum-exp constant
        d = d.log_softmax(0)
    assert d.shape[1:] == (5, 4)
    cells, crops = _shifted(d, o, shift)
    assert ((cells - crops).abs().max() <= 1e-4) == (shift == (0, 0))
    if shift == (0, 0):  # the same decision, window by window (a shifted pairing already failed above)
        assert torch.equal(cells.argmax(0), crops.argmax(0))


def _onet_original():
    from facenet_pytorch.models.mtcnn import ONet as FacenetONet

    return FacenetONet(pretrained=True).eval()


def _rnet_original():
    from facenet_pytorch.models.mtcnn import RNet as FacenetRNet

    return FacenetRNet(pretrained=True).eval()


@pytest.mark.parametrize("factory, n", [(_onet_original, 48), (_rnet_original, 24)])
def test_mtcnn_pretrained_native_equivalence(factory, n):
    """facenet-pytorch's own classes with their weights vs the dense conversion: (W, H, C) flatten order.

    Logits, not probabilities: trained MTCNN probabilities saturate at 0/1, where they hide differences."""
    model = factory()
    dense = make_fully_convolutional(model, n)
    torch.manual_seed(1)
    x = torch.rand(8, 3, n, n) * 2 - 1
    with torch.no_grad():
        ref = oracles.mtcnn_logits(model, x)
        got = dense(x)[:, :, 0, 0]
    assert (got - ref).abs().max() <= 1e-5 * max(1.0, float(ref.abs().max()))
    assert ref[:, 1].max() - ref[:, 1].min() > 1.0  # the inputs are told apart: a constant output would fail


@pytest.mark.parametrize("factory, n, outputs", [(_onet_original, 48, 14), (_rnet_original, 24, 4)])
def test_mtcnn_regression_and_landmark_heads_match_facenet(factory, n, outputs):
    """The dense regression head against facenet-pytorch's own O-Net / R-Net on crops: box offsets, and for
    O-Net its landmark head after them (``x1..x5, y1..y5``), each to 1e-5."""
    model = factory()
    dense = make_fully_convolutional(model, n)
    torch.manual_seed(2)
    x = torch.rand(8, 3, n, n) * 2 - 1
    with torch.no_grad():
        ref = model(x)
        _, reg = dense.forward_with_regression(x)
    reg = reg[:, :, 0, 0]
    assert reg.shape == (8, outputs)
    assert (reg[:, :4] - ref[0]).abs().max() <= 1e-5
    if outputs == 14:
        assert (reg[:, 4:] - ref[1]).abs().max() <= 1e-5
        assert ref[1].std() > 1e-3  # the landmarks vary with the input: a constant head would fail


@pytest.mark.parametrize("cls", [ONet, RNet])
def test_mtcnn_random_weights_native_equivalence(cls):
    model = _randomize(cls(), seed=3)
    n = model.input_size
    dense = make_fully_convolutional(model, n)
    x = torch.randn(4, 3, n, n)
    with torch.no_grad():
        assert (dense(x)[:, :, 0, 0] - oracles.mtcnn_logits(model, x)).abs().max() <= 1e-5


def test_naive_reshape_would_be_wrong():
    """Guard against the silent bug: reshaping O-Net's dense5 as (C, H, W) gives different outputs."""
    model = _randomize(ONet(), seed=4)
    dense = make_fully_convolutional(model, 48)
    conv = dense.hidden[0]
    naive = model.dense5.weight.detach().reshape(256, 128, 3, 3)
    assert conv.weight.shape == naive.shape and not torch.allclose(conv.weight, naive)


def test_mtcnn_regressor_matches_original():
    model = _randomize(ONet(), seed=5)
    dense = make_fully_convolutional(model, 48)
    x = torch.randn(3, 3, 48, 48)
    with torch.no_grad():
        logits, reg = dense.forward_with_regression(x)
        box, landmarks, _ = model(x)
        assert (reg[:, :4, 0, 0] - box).abs().max() <= 1e-5
        assert (reg[:, 4:, 0, 0] - landmarks).abs().max() <= 1e-5


@pytest.mark.parametrize("name", ["alexnet", pytest.param("vgg16", marks=pytest.mark.slow), "resnet18", "mobilenet_v2"])
def test_torchvision_native_equivalence(name):
    model = _randomize(torchvision.models.get_model(name, weights=None, num_classes=50))
    dense = make_fully_convolutional(model, 224)
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        ref = model(x)
        got = dense(x)[:, :, 0, 0]
    assert (got - ref).abs().max() <= 1e-5 * max(1.0, float(ref.abs().max()))


def test_unsupported_head_layer_is_refused():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4 * 6 * 6, 5), nn.LSTM(5, 5))
    with pytest.raises(ConversionError, match="LSTM"):
        make_fully_convolutional(model, 8)


def test_sequential_without_flatten_is_refused():
    with pytest.raises(ConversionError, match="Flatten"):
        make_fully_convolutional(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()), 8)


def test_wrong_input_size_is_refused():
    model, _ = _plain_classifier(pool=False)
    with pytest.raises(ConversionError, match="expects"):
        make_fully_convolutional(model, 24)


@pytest.mark.parametrize(
    "conv, words",
    [
        (nn.Conv2d(3, 4, 3, stride=(1, 2)), "stride_y=1, stride_x=2"),
        (nn.Conv2d(3, 4, 3, padding=(0, 1)), "rf_offset 0 / -1"),
    ],
)
def test_axes_with_different_strides_or_fields_are_refused(conv, words):
    """Issue example: Conv2d(3, 4, 3, stride=(1, 2)) -> Flatten -> Linear at 8 px converted silently with
    stride 1 (cells differed from crops by up to 0.71); the geometry of each axis is compared and refused."""
    h, w = conv(torch.zeros(1, 3, 8, 8)).shape[-2:]
    model = nn.Sequential(conv, nn.Flatten(), nn.Linear(4 * h * w, 5))
    with pytest.raises(ConversionError, match=words):
        make_fully_convolutional(model, 8)


def test_body_op_of_unknown_geometry_is_refused():
    """An operation the geometry walk does not know (here a flip of the width) is a ConversionError naming it."""

    class Mirror(nn.Module):
        def forward(self, x):
            return torch.flip(x, (3,))

    model = nn.Sequential(nn.Conv2d(3, 4, 3), Mirror(), nn.Flatten(), nn.Linear(4 * 6 * 6, 5))
    with pytest.raises(ConversionError, match="'flip'.*fcn_span"):
        make_fully_convolutional(model, 8)
