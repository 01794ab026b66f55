"""Windows: one container through the core; every field follows a selection, joining keeps an optional field
only where every part with windows has it."""

from __future__ import annotations

import pytest
import torch

from fcndetect.detections import OPTIONAL_FIELDS
from fcndetect.windows import Windows


def _windows(n: int, landmarks: bool = True, start: float = 0.0) -> Windows:
    base = torch.arange(n, dtype=torch.float32) + start
    return Windows(base[:, None].repeat(1, 4), base, torch.arange(n) % 2,
                   landmarks=base[:, None, None].repeat(1, 5, 2) if landmarks else None)


def test_selection_moves_every_field_together():
    w = _windows(5)
    for index in (torch.tensor([4, 0, 2]), w.logits > 1.5, slice(1, 3)):
        got = w[index]
        assert torch.equal(got.boxes[:, 0], got.logits) and torch.equal(got.landmarks[:, 0, 0], got.logits)
        assert torch.equal(got.labels, got.logits.long() % 2)
    assert w[torch.tensor([4, 0, 2])].logits.tolist() == [4.0, 0.0, 2.0]
    assert w[w.logits > 1.5].logits.tolist() == [2.0, 3.0, 4.0]


def test_rows_must_agree():
    with pytest.raises(ValueError, match="logits has 2 rows, boxes 3"):
        Windows(torch.zeros((3, 4)), torch.zeros(2), torch.zeros(3, dtype=torch.int64))


def test_cat_keeps_an_optional_field_only_where_every_nonempty_part_has_it():
    a, b = _windows(2), _windows(3, start=10)
    joined = Windows.cat([a, b])
    assert joined.logits.tolist() == [0.0, 1.0, 10.0, 11.0, 12.0] and joined.landmarks.shape == (5, 5, 2)
    assert Windows.cat([a, _windows(1, landmarks=False)]).landmarks is None
    assert Windows.cat([a, _windows(0, landmarks=False)]).landmarks.shape == (2, 5, 2)  # nothing missing
    assert len(Windows.cat([])) == 0 and Windows.cat([]).landmarks is None
    assert list(OPTIONAL_FIELDS) == ["landmarks", "angles", "quads"]
    assert all(getattr(joined, name) is None for name in ("angles", "quads"))


def test_float_keeps_labels_integer():
    w = Windows(torch.zeros((1, 4), dtype=torch.float64), torch.zeros(1, dtype=torch.float64),
                torch.zeros(1, dtype=torch.int64)).float()
    assert w.boxes.dtype == w.logits.dtype == torch.float32 and w.labels.dtype == torch.int64
