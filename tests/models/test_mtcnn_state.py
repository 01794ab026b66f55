"""MTCNN nets with fine-tuned weights: a plain state dict file is recognised as its net (P, R or O) and runs
as a model and as a cascade stage; ``heads`` gives the logits whose softmax is the released forward pass."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fcndetect.models import load_model
from fcndetect.models.mtcnn import MTCNN_NETS, load_mtcnn, mtcnn_net_kind, read_mtcnn_state


@pytest.mark.parametrize("name", ["pnet", "rnet", "onet"])
def test_heads_are_the_logits_of_the_released_forward(name: str) -> None:
    net = load_mtcnn(name)
    size = {"pnet": 12, "rnet": 24, "onet": 48}[name]
    x = torch.randn(5, 3, size, size, generator=torch.Generator().manual_seed(0))
    logits, reg, landmarks = net.heads(x)
    out = net(x)
    probs = out[-1].reshape(5, 2)
    torch.testing.assert_close(torch.softmax(logits, 1), probs)
    torch.testing.assert_close(reg, out[0].reshape(5, 4))
    assert (landmarks is None) == (name != "onet")


@pytest.mark.parametrize("name", ["pnet", "rnet", "onet"])
def test_state_dict_file_is_recognised_and_loads(name: str, tmp_path: Path) -> None:
    state = load_mtcnn(name).state_dict()
    assert mtcnn_net_kind(state) == name
    torch.save(state, tmp_path / "w.pt")
    assert read_mtcnn_state(str(tmp_path / "w.pt")) == name
    model = load_model(str(tmp_path / "w.pt"))
    released = load_model({"pnet": "face-pnet", "rnet": "face-rnet", "onet": "face"}[name])
    assert model.window == released.window and [g.name for g in model.groups] == ["face"]
    x = torch.randn(2, 3, 60, 60, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(model.dense(x), released.dense(x))


def test_other_files_are_not_mtcnn_states(tmp_path: Path) -> None:
    torch.save({"weight": torch.zeros(3)}, tmp_path / "other.pt")
    (tmp_path / "text.pt").write_text("not a checkpoint")
    partial = dict(MTCNN_NETS["rnet"]().state_dict())
    partial.pop("dense5_2.bias")
    torch.save(partial, tmp_path / "partial.pt")
    for name in ("other.pt", "text.pt", "partial.pt", "missing.pt"):
        assert read_mtcnn_state(str(tmp_path / name)) is None


def test_a_state_dict_file_is_its_own_family_before_exported_files(tmp_path: Path) -> None:
    from fcndetect.models import find_family

    torch.save(load_mtcnn("pnet").state_dict(), tmp_path / "p.pt")
    assert find_family(str(tmp_path / "p.pt")).name == "mtcnn-state"
    assert find_family(str(tmp_path / "other.pt")).name == "exported"
