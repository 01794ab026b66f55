"""Built-in adapters: how to split each classifier family at its flatten (:class:`~.core.Split`).

Sequential classifiers (``... -> nn.Flatten -> nn.Linear ...``) and MTCNN's R-Net/O-Net here; every
convolutional torchvision classifier in :mod:`.torchvision_adapters`, which imports torchvision's models and
registers on first need. Register adapters of your own with :func:`fcndetect.convert.register_adapter`
(later registrations are tried first).
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import nn

from .core import ConversionError, Split, _global_kind, register_builtin_adapter

__all__: list[str] = []

# The adapters take ``model: Any``: each reads its family's children by attribute name, which
# ``nn.Module.__getattr__`` can only type as ``Tensor | Module``; the predicate it is registered with has
# already recognised the family.


@register_builtin_adapter(lambda m: isinstance(m, nn.Sequential))
def _split_sequential(model: Any) -> Split:
    layers = list(model.children())
    idx = next((i for i, m in enumerate(layers) if isinstance(m, nn.Flatten)), None)
    if idx is None:
        raise ConversionError("nn.Sequential classifier has no nn.Flatten before its Linear layers")
    body = layers[:idx]
    pool: Literal["avg", "max"] | None = None
    if body and _global_kind(body[-1]) is not None:
        pool = _global_kind(body[-1])
        body = body[:-1]
    return Split(body=nn.Sequential(*body), head=layers[idx + 1 :], pool=pool)


def _is_mtcnn(m: nn.Module) -> bool:
    return type(m).__name__ in {"ONet", "RNet"} and hasattr(m, "conv3")


@register_builtin_adapter(_is_mtcnn)
def _split_mtcnn(model: Any) -> Split:
    names = [n for n, _ in model.named_children()]
    cut = names.index("dense4" if hasattr(model, "dense4") else "dense5")
    children = dict(model.named_children())
    body = nn.Sequential(*[children[n] for n in names[:cut]])
    if hasattr(model, "dense4"):  # R-Net
        head, reg = [model.dense4, model.prelu4, model.dense5_1], [model.dense5_2]
    else:  # O-Net: box offsets and the five landmarks read the same vector, as one 14-output layer
        head, reg = [model.dense5, model.prelu5, model.dense6_1], [_stacked(model.dense6_2, model.dense6_3)]
    return Split(body=body, head=head, flatten="whc", regressor=reg)


def _stacked(*layers: nn.Linear) -> nn.Linear:
    """One ``Linear`` whose outputs are those of ``layers`` in order (same input): O-Net's box regression
    (4) then its landmarks (10: ``x1..x5, y1..y5`` in window sides from the window's top-left corner)."""
    out = nn.Linear(layers[0].in_features, sum(m.out_features for m in layers))
    with torch.no_grad():
        out.weight.copy_(torch.cat([m.weight for m in layers]))
        out.bias.copy_(torch.cat([m.bias for m in layers]))
    return out.to(device=layers[0].weight.device, dtype=layers[0].weight.dtype)
