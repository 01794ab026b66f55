"""MTCNN's P-Net, R-Net and O-Net face/non-face classifiers, with the weights shipped by facenet-pytorch.

The layer names and the forward pass mirror ``facenet_pytorch.models.mtcnn`` exactly, so its state dicts
(``facenet_pytorch/data/pnet.pt``, ``rnet.pt``, ``onet.pt``; MIT licence) load unchanged. The weights are read from the
installed package, located without importing its ``__init__`` (which pulls in the whole library).

Inputs are RGB ``[B, 3, N, N]`` scaled as ``(x - 127.5) * 0.0078125`` (``x`` in 0..255); ``N`` is 12
(P-Net), 24 (R-Net) or 48 (O-Net). R-Net and O-Net flatten their last feature map in ``(W, H, C)`` order
before the first ``Linear`` (they permute before ``view``), which :mod:`fcndetect.convert` accounts for.
P-Net is fully convolutional already: :func:`pnet_dense` only wraps it as a
:class:`~fcndetect.convert.DenseModel` (logits, box regression, geometry).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
from torch import nn

__all__ = ["ONet", "RNet", "PNet", "pnet_dense", "mtcnn_weights_path", "WeightsNotFoundError", "load_mtcnn",
           "CLASS_HEADS", "MTCNN_NETS", "mtcnn_net_kind", "mtcnn_heads", "read_mtcnn_state", "shipped_weights_path"]


class WeightsNotFoundError(FileNotFoundError):
    """The weights file of a built-in model is not installed."""


def mtcnn_weights_path(name: str) -> Path:
    """Path of ``facenet_pytorch/data/<name>.pt`` in the installed package (not imported)."""
    spec = importlib.util.find_spec("facenet_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise WeightsNotFoundError(
            "facenet-pytorch is not installed; it ships the MTCNN weights: pip install facenet-pytorch==2.5.3"
        )
    for base in spec.submodule_search_locations:
        path = Path(base) / "data" / f"{name}.pt"
        if path.is_file():
            return path
    raise WeightsNotFoundError(f"facenet-pytorch is installed but has no data/{name}.pt")


class PNet(nn.Module):
    """MTCNN P-Net: ``[B, 3, H, W]`` -> (box regression ``[B, 4, H', W']``, face probabilities ``[B, 2, H', W']``);
    a 12 px window, stride 2."""

    input_size = 12

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 10, kernel_size=3)
        self.prelu1 = nn.PReLU(10)
        self.pool1 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(10, 16, kernel_size=3)
        self.prelu2 = nn.PReLU(16)
        self.conv3 = nn.Conv2d(16, 32, kernel_size=3)
        self.prelu3 = nn.PReLU(32)
        self.conv4_1 = nn.Conv2d(32, 2, kernel_size=1)
        self.softmax4_1 = nn.Softmax(dim=1)
        self.conv4_2 = nn.Conv2d(32, 4, kernel_size=1)

    def trunk(self) -> nn.Sequential:
        return nn.Sequential(self.conv1, self.prelu1, self.pool1, self.conv2, self.prelu2, self.conv3, self.prelu3)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.trunk()(x)
        return self.conv4_2(x), self.softmax4_1(self.conv4_1(x))

    def heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """``[B, 3, 12, 12]`` windows -> (class logits ``[B, 2]``, box offsets ``[B, 4]``, ``None``)."""
        x = self.trunk()(x)
        return self.conv4_1(x).flatten(1), self.conv4_2(x).flatten(1), None


def pnet_dense(pnet: PNet) -> nn.Module:
    """P-Net as a :class:`~fcndetect.convert.DenseModel` sharing its weights: logits from ``conv4_1``, box
    regression from ``conv4_2``, geometry computed from its layers (window 12, stride 2)."""
    from ..convert import DenseModel

    return DenseModel(pnet.trunk(), nn.Sequential(), pnet.conv4_1, PNet.input_size, regressor=pnet.conv4_2)


class RNet(nn.Module):
    """MTCNN R-Net: ``[B, 3, 24, 24]`` -> (box regression ``[B, 4]``, face probabilities ``[B, 2]``)."""

    input_size = 24

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 28, kernel_size=3)
        self.prelu1 = nn.PReLU(28)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(28, 48, kernel_size=3)
        self.prelu2 = nn.PReLU(48)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3 = nn.Conv2d(48, 64, kernel_size=2)
        self.prelu3 = nn.PReLU(64)
        self.dense4 = nn.Linear(576, 128)
        self.prelu4 = nn.PReLU(128)
        self.dense5_1 = nn.Linear(128, 2)
        self.softmax5_1 = nn.Softmax(dim=1)
        self.dense5_2 = nn.Linear(128, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.prelu1(self.conv1(x))
        x = self.pool1(x)
        x = self.prelu2(self.conv2(x))
        x = self.pool2(x)
        x = self.prelu3(self.conv3(x))
        x = x.permute(0, 3, 2, 1).contiguous()
        x = self.prelu4(self.dense4(x.view(x.shape[0], -1)))
        return self.dense5_2(x), self.softmax5_1(self.dense5_1(x))

    def heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """``[B, 3, 24, 24]`` -> (class logits ``[B, 2]``, box offsets ``[B, 4]``, ``None``)."""
        x = self.pool2(self.prelu2(self.conv2(self.pool1(self.prelu1(self.conv1(x))))))
        x = self.prelu3(self.conv3(x)).permute(0, 3, 2, 1).contiguous()
        x = self.prelu4(self.dense4(x.view(x.shape[0], -1)))
        return self.dense5_1(x), self.dense5_2(x), None


class ONet(nn.Module):
    """MTCNN O-Net: ``[B, 3, 48, 48]`` -> (box regression ``[B, 4]``, landmarks ``[B, 10]``, face probs ``[B, 2]``)."""

    input_size = 48

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, kernel_size=3)
        self.prelu1 = nn.PReLU(32)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(32, 64, kernel_size=3)
        self.prelu2 = nn.PReLU(64)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3 = nn.Conv2d(64, 64, kernel_size=3)
        self.prelu3 = nn.PReLU(64)
        self.pool3 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv4 = nn.Conv2d(64, 128, kernel_size=2)
        self.prelu4 = nn.PReLU(128)
        self.dense5 = nn.Linear(1152, 256)
        self.prelu5 = nn.PReLU(256)
        self.dense6_1 = nn.Linear(256, 2)
        self.softmax6_1 = nn.Softmax(dim=1)
        self.dense6_2 = nn.Linear(256, 4)
        self.dense6_3 = nn.Linear(256, 10)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.pool3(self.prelu3(self.conv3(x)))
        x = self.prelu4(self.conv4(x))
        x = x.permute(0, 3, 2, 1).contiguous()
        x = self.prelu5(self.dense5(x.view(x.shape[0], -1)))
        return self.dense6_2(x), self.dense6_3(x), self.softmax6_1(self.dense6_1(x))

    def heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """``[B, 3, 48, 48]`` -> (class logits ``[B, 2]``, box offsets ``[B, 4]``, landmarks ``[B, 10]``)."""
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.pool3(self.prelu3(self.conv3(x)))
        x = self.prelu4(self.conv4(x)).permute(0, 3, 2, 1).contiguous()
        x = self.prelu5(self.dense5(x.view(x.shape[0], -1)))
        return self.dense6_1(x), self.dense6_2(x), self.dense6_3(x)


#: the three nets by name
MTCNN_NETS: dict[str, type[nn.Module]] = {"pnet": PNet, "rnet": RNet, "onet": ONet}
#: the layer whose two outputs are each net's background and face logits
CLASS_HEADS = {"pnet": "conv4_1", "rnet": "dense5_1", "onet": "dense6_1"}
#: a state-dict key only each net has
_MARKERS = {"pnet": "conv4_1.weight", "rnet": "dense5_1.weight", "onet": "dense6_3.weight"}


def mtcnn_net_kind(state: dict[str, object]) -> str | None:
    """``"pnet"``, ``"rnet"`` or ``"onet"`` for a state dict whose keys are exactly that net's, else ``None``."""
    for name, cls in MTCNN_NETS.items():
        if _MARKERS[name] in state and set(state) == set(cls().state_dict()):
            return name
    return None


def mtcnn_heads(net: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """(class logits ``[B, 2]``, box offsets ``[B, 4]``, landmarks ``[B, 10]`` or ``None``) of ``[B, 3, N, N]``
    windows at the net's own input side ``N`` (logits, not the softmax :meth:`forward` returns)."""
    return net.heads(x)  # type: ignore[operator]


def load_mtcnn(name: str, path: str | Path | None = None) -> nn.Module:
    """``"onet"``, ``"rnet"`` or ``"pnet"`` in eval mode, with the installed pretrained weights or the state dict
    at ``path`` (a fine-tuned copy of the same net)."""
    net = MTCNN_NETS[name]()
    state = torch.load(path if path is not None else mtcnn_weights_path(name), map_location="cpu", weights_only=True)
    net.load_state_dict(state)
    return net.eval()


def shipped_weights_path(name: str) -> Path:
    """``fcndetect/weights/<name>.pt``: a net fine-tuned by ``fcndetect train`` and shipped in the package."""
    return Path(__file__).resolve().parent.parent / "weights" / f"{name}.pt"


_STATE_KINDS: dict[tuple[str, int, int], str | None] = {}


def read_mtcnn_state(path: str) -> str | None:
    """Which MTCNN net (``"pnet"``, ``"rnet"``, ``"onet"``) the state dict file at ``path`` holds; ``None`` for
    anything else (not a ``.pt``/``.pth`` file, a TorchScript archive, another network). Cached per file
    version."""
    p = Path(path)
    if p.suffix.lower() not in (".pt", ".pth") or not p.is_file():
        return None
    st = p.stat()
    key = (str(p.resolve()), st.st_mtime_ns, st.st_size)
    if key not in _STATE_KINDS:
        import zipfile

        try:  # a TorchScript archive (it holds code) is never loaded here
            with zipfile.ZipFile(p) as archive:
                scripted = any("/code/" in n for n in archive.namelist())
        except (OSError, zipfile.BadZipFile):
            scripted = False
        try:
            if scripted:
                raise ValueError("TorchScript archive")
            state = torch.load(p, map_location="cpu", weights_only=True)
        except Exception:  # noqa: BLE001 - anything unreadable as a plain state dict is not ours
            state = None
        ok = isinstance(state, dict) and all(isinstance(v, torch.Tensor) for v in state.values())
        _STATE_KINDS[key] = mtcnn_net_kind(state) if ok else None
    return _STATE_KINDS[key]
