"""torchvision's compiled operators (``nms``, ``roi_align``) without importing the ``torchvision`` package.

``import torchvision`` (any of its modules) runs its ``__init__``, which imports every model architecture,
the datasets, the transforms and, through ``torchvision.ops``, ``torch._dynamo``: over a second of start-up
that the face cascade never uses. The operators themselves live in torchvision's compiled library, which
registers them with torch (``torch.ops.torchvision.<name>``) when loaded; this module loads that library from
torchvision's folder (found with :func:`importlib.util.find_spec`, not imported). Where that fails (an
unusual install), importing ``torchvision.ops`` registers them, the slow way. The numbers are the same
either way: ``torchvision.ops.nms`` and ``torchvision.ops.roi_align`` call these operators.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
from collections.abc import Callable
from typing import Any

import torch

__all__ = ["torchvision_op"]

#: torchvision >= 0.25 ships its operators as the stable-ABI build ``_C_stable``; older releases as ``_C``.
_LIBRARIES = ("_C_stable", "_C")


def torchvision_op(name: str) -> Callable[..., Any]:
    """The registered operator ``torch.ops.torchvision.<name>`` (loading torchvision's compiled library the
    first time; see the module docstring).

    Raises:
        AttributeError: torchvision has no such operator.
        ImportError: torchvision is not installed.
    """
    namespace = torch.ops.torchvision
    try:
        return getattr(namespace, name)
    except (AttributeError, RuntimeError):
        pass
    if _load_library():
        try:
            return getattr(namespace, name)
        except (AttributeError, RuntimeError):
            pass
    import torchvision.ops  # noqa: F401  (its import loads the library, or says why it cannot)

    return getattr(namespace, name)


def _load_library() -> bool:
    """Load torchvision's compiled operator library from its package folder; whether one loaded."""
    spec = importlib.util.find_spec("torchvision")
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in folders:
        for lib in _LIBRARIES:
            for suffix in importlib.machinery.EXTENSION_SUFFIXES:
                path = os.path.join(folder, lib + suffix)
                if os.path.isfile(path):
                    try:
                        torch.ops.load_library(path)  # type: ignore[no-untyped-call]
                    except (OSError, RuntimeError):
                        continue
                    return True
    return False
