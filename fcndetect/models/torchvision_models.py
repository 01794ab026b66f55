"""torchvision classifiers as detectors: architectures, weights (never downloaded), classes, checkpoints.

Weights:
  * ``DEFAULT`` or a weight name (``IMAGENET1K_V1`` or ``MobileNet_V2_Weights.IMAGENET1K_V1``): the file that
    torchvision would download, looked up in torch hub's cache (``$TORCH_HOME/hub/checkpoints``); when absent,
    the error names the file and where to put it. Nothing is fetched at run time.
  * a PATH: a state dict (or a dict holding one under ``state_dict``/``model``), loaded with
    ``torch.load(weights_only=True)``: a pickle that would run code on load is refused, and TorchScript or
    full-model pickles are never executed. Without ``num_classes`` it is taken as ImageNet weights (1000
    classes, the architecture's usual preprocessing and class names).
"""

from __future__ import annotations

import os
import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch
import torchvision
from torch import nn

from .known import is_torchvision_name

__all__ = [
    "CLASS_GROUPS",
    "ModelLoadError",
    "TorchvisionModel",
    "build_torchvision_model",
    "is_torchvision_arch",
    "list_architectures",
    "load_checkpoint",
    "load_state",
    "parse_classes",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: Named groups of ImageNet-1k classes; a group's score is the sum of its classes' softmax probabilities.
CLASS_GROUPS: dict[str, tuple[int, ...]] = {
    "cat": tuple(range(281, 286)),  # tabby, tiger cat, Persian cat, Siamese cat, Egyptian cat
    "dog": tuple(range(151, 269)),  # Chihuahua ... Mexican hairless (the 118 domestic dog breeds)
    "big-cat": tuple(range(286, 294)),  # cougar, lynx, leopard, snow leopard, jaguar, lion, tiger, cheetah
}
#: Things people ask for that ImageNet-1k has no class for.
NOT_IMAGENET = {
    "person": "ImageNet-1k has no 'person' class (people appear only in context, e.g. 'scuba diver', "
    "'groom'); use a person classifier checkpoint with --num-classes/--positive",
    "face": "ImageNet-1k has no 'face' class; use --model face",
    "human": "ImageNet-1k has no 'human' class",
    "people": "ImageNet-1k has no 'people' class",
}


class ModelLoadError(ValueError):
    """A model or its weights cannot be loaded (the message says what to do)."""


def _list_archs() -> dict[str, int]:
    from ..convert import TORCHVISION_ARCHS

    return TORCHVISION_ARCHS


def is_torchvision_arch(name: str) -> bool:
    """Whether ``name`` is a torchvision classification builder (:func:`fcndetect.models.known.is_torchvision_name`)."""
    return is_torchvision_name(name)


def _weights_enum(arch: str):
    try:
        return torchvision.models.get_model_weights(arch)
    except (ValueError, KeyError):
        return None


def _resolve_named_weights(arch: str, name: str):
    enum = _weights_enum(arch)
    if enum is None:
        raise ModelLoadError(f"torchvision has no pretrained weights for '{arch}'")
    if name.upper() == "DEFAULT":
        return enum.DEFAULT
    short = name.split(".")[-1]
    try:
        return enum[short]
    except KeyError:
        raise ModelLoadError(
            f"'{name}' is not a weight of {arch}; known: {', '.join(w.name for w in enum)}"
        ) from None


def _cached_file(weights) -> Path:
    hub = Path(torch.hub.get_dir()) / "checkpoints"
    fname = os.path.basename(weights.url)
    path = hub / fname
    if not path.is_file():
        raise ModelLoadError(
            f"weights {type(weights).__name__}.{weights.name} are not in the torch hub cache and fcndetect never "
            f"downloads: put {fname} (from {weights.url}) at {path} (set TORCH_HOME to use another cache), "
            f"or pass --weights PATH"
        )
    return path


def hub_cache_file(arch: str, weights: str | None) -> Path | None:
    """Where torch hub caches ``arch``'s named ``weights`` (``None``/``DEFAULT`` or a weight name), whether or
    not the file is there; ``None`` for a weights path, ``none``, or an architecture without such weights."""
    wname = weights if weights is not None else "DEFAULT"
    if wname.lower() == "none" or os.sep in wname or "/" in wname or Path(wname).exists() \
            or Path(wname).suffix in {".pt", ".pth", ".bin", ".ckpt"}:
        return None
    try:
        meta_w = _resolve_named_weights(arch, wname)
    except ModelLoadError:
        return None
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(meta_w.url)


def require_regular_file(path: Path, what: str) -> None:
    """Raise :class:`ModelLoadError` (one line naming ``path``) unless it is a regular file: missing, a folder,
    or a device, pipe or socket (``/dev/zero`` would be read forever) each say so."""
    import stat

    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise ModelLoadError(f"{path}: {what} not found") from None
    except OSError as exc:
        raise ModelLoadError(f"{path}: cannot read the {what} ({exc.strerror or exc})") from None
    if stat.S_ISDIR(mode):
        raise ModelLoadError(f"{path}: is a folder, not a file ({what} expected)")
    if not stat.S_ISREG(mode):
        raise ModelLoadError(f"{path}: is a device, pipe or socket, not a regular file ({what} expected)")


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """A state dict from a file, loaded without executing anything.

    Accepts a plain state dict or a dict holding one under ``state_dict``, ``model`` or ``model_state_dict``
    (``module.`` prefixes from DataParallel are stripped).

    Raises:
        ModelLoadError: missing file, TorchScript archive, a pickle that needs code execution (refused by
            ``weights_only=True``: nothing is run), or no state dict inside.
    """
    p = Path(path)
    require_regular_file(p, "weights file")
    if zipfile.is_zipfile(p):
        with zipfile.ZipFile(p) as zf:
            names = zf.namelist()
        if any(n.endswith("/constants.pkl") or "/code/" in n for n in names):
            raise ModelLoadError(f"{p}: a TorchScript archive contains code and is not loaded; save a state_dict")
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(
            f"{p}: refused: the checkpoint holds objects that safe loading rejects, so nothing in it was "
            f"executed (save model.state_dict() instead) [{first}]"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise ModelLoadError(f"{p}: not a readable PyTorch checkpoint ({' '.join(str(exc).split())[:200]})") from None
    if isinstance(obj, dict):
        for key in ("state_dict", "model_state_dict", "model"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ModelLoadError(f"{p}: no state dict (name -> tensor) found in the checkpoint")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def load_state(model: nn.Module, state: dict[str, torch.Tensor], what: str, hint: str) -> None:
    """Load ``state`` into ``model`` strictly, or raise one :class:`ModelLoadError` line: ``"{what} (missing
    N: ...; unexpected N: ...; shape mismatch: ...); {hint}"``."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    mismatched = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in own.items()
                  if k in state and state[k].shape != v.shape]
    if missing or unexpected or mismatched:
        detail = "; ".join(part for part in (
            f"missing {len(missing)}: {', '.join(missing[:3])}" if missing else "",
            f"unexpected {len(unexpected)}: {', '.join(unexpected[:3])}" if unexpected else "",
            f"shape mismatch: {', '.join(mismatched[:2])}" if mismatched else "",
        ) if part)
        raise ModelLoadError(f"{what} ({detail}); {hint}")
    model.load_state_dict(state)


def parse_classes(spec: list[str] | tuple[str, ...] | str | None, categories: list[str] | None) -> list[tuple[str, tuple[int, ...]]]:
    """``--classes`` entries to ``(label, class indices)`` groups.

    Each entry is a named group (``cat``, ``dog``, ``big-cat``), an ImageNet class name (case-insensitive) or
    an index; entries may be comma-separated. ``None`` means every class on its own.
    """
    if spec is None:
        if categories is None:
            raise ModelLoadError("no class names known for this model: pass --classes or --positive indices")
        return [(name, (i,)) for i, name in enumerate(categories)]
    entries = [e.strip() for item in ([spec] if isinstance(spec, str) else spec) for e in str(item).split(",")]
    lookup = {c.lower(): i for i, c in enumerate(categories or [])}
    n = len(categories) if categories is not None else None
    groups = []
    for e in filter(None, entries):
        key = e.lower()
        if key.lstrip("-").isdigit():
            idx = int(key)
            if n is not None and not 0 <= idx < n:
                raise ModelLoadError(f"class index {idx} is out of range (the model has {n} classes)")
            groups.append((categories[idx] if categories else str(idx), (idx,)))
        elif key in CLASS_GROUPS and n == 1000:
            groups.append((key, CLASS_GROUPS[key]))
        elif key in lookup:
            groups.append((categories[lookup[key]], (lookup[key],)))
        elif key in NOT_IMAGENET and n == 1000:
            raise ModelLoadError(NOT_IMAGENET[key])
        else:
            hint = f"groups: {', '.join(CLASS_GROUPS)}; or an ImageNet class name or index" if n == 1000 else \
                "use class indices"
            raise ModelLoadError(f"unknown class '{e}' ({hint})")
    if not groups:
        raise ModelLoadError("--classes is empty")
    return groups


@dataclass(frozen=True)
class ArchInfo:
    """A convertible torchvision architecture: native input size and its DEFAULT weights file."""

    name: str
    input_size: int
    default_file: str | None
    cached: bool


def list_architectures() -> list[ArchInfo]:
    """Every convertible torchvision classification architecture, with whether its DEFAULT weights are in
    the torch hub cache (nothing is downloaded)."""
    hub = Path(torch.hub.get_dir()) / "checkpoints"
    out = []
    for name, size in sorted(_list_archs().items()):
        enum = _weights_enum(name)
        fname = os.path.basename(enum.DEFAULT.url) if enum is not None else None
        out.append(ArchInfo(name, size, fname, bool(fname) and (hub / fname).is_file()))
    return out


@dataclass
class TorchvisionModel:
    """A torchvision classifier with its weights, preprocessing and class names."""

    arch: str
    model: nn.Module
    input_size: int
    mean: tuple[float, float, float]  # 0..1 units
    std: tuple[float, float, float]
    categories: list[str] | None
    source: str


def build_torchvision_model(
    arch: str,
    weights: str | None = "DEFAULT",
    num_classes: int | None = None,
    input_size: int | None = None,
    mean: tuple[float, ...] | None = None,
    std: tuple[float, ...] | None = None,
) -> TorchvisionModel:
    """Build ``arch`` with ``weights`` (``DEFAULT``, a weight name, a PATH, or ``"none"`` for random)."""
    archs = _list_archs()
    from ..convert import UNSUPPORTED_ARCHS

    if arch in UNSUPPORTED_ARCHS:
        raise ModelLoadError(f"{arch}: {UNSUPPORTED_ARCHS[arch]}")
    if arch not in archs:
        raise ModelLoadError(f"unknown architecture '{arch}'; see `fcndetect models`")
    enum = _weights_enum(arch)
    meta_w = enum.DEFAULT if enum is not None else None
    state = None
    source = "random weights"
    wname = weights if weights is not None else "DEFAULT"
    is_path = wname.lower() != "none" and (
        os.sep in wname or "/" in wname or Path(wname).suffix in {".pt", ".pth", ".bin", ".ckpt"} or Path(wname).exists()
    )
    if wname.lower() == "none":
        pass
    elif is_path:
        state = load_checkpoint(wname)
        source = f"{wname}"
        if num_classes is None:
            num_classes = 1000  # an unqualified checkpoint of a torchvision architecture: ImageNet
    else:
        meta_w = _resolve_named_weights(arch, wname)
        state = load_checkpoint(_cached_file(meta_w))
        source = f"{type(meta_w).__name__}.{meta_w.name}"
    classes = num_classes if num_classes is not None else 1000
    kwargs: dict[str, object] = {"weights": None, "num_classes": classes}
    if arch in ("googlenet", "inception_v3"):
        # as torchvision does for its ImageNet weights: inputs normalised with ImageNet mean/std are
        # re-normalised inside forward() to what these nets were trained on
        kwargs.update(aux_logits=False, init_weights=False, transform_input=state is not None and classes == 1000)
    model = torchvision.models.get_model(arch, **kwargs)
    if state is not None:
        if arch in ("googlenet", "inception_v3"):
            state = {k: v for k, v in state.items() if not k.startswith("aux")}
        load_state(model, state, f"{source}: weights do not fit {arch} with {classes} classes",
                   "check --arch and --num-classes")
    imagenet = classes == 1000 and meta_w is not None
    t = meta_w.transforms() if imagenet else None
    size = input_size or (int(t.crop_size[0]) if t is not None else archs[arch])
    m = tuple(mean) if mean else (tuple(t.mean) if t is not None else IMAGENET_MEAN)
    s = tuple(std) if std else (tuple(t.std) if t is not None else IMAGENET_STD)
    categories = list(meta_w.meta["categories"]) if imagenet else None
    return TorchvisionModel(arch, model.eval(), size, m, s, categories, source)  # type: ignore[arg-type]
