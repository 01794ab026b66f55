"""The engines, chosen in one place: ``--engine NAME`` -> an :class:`~fcndetect.engines.base.Engine`.

No other module tests an engine's name; they ask the engine object what it needs. Each engine's module is
imported when it is made (the Ray engine imports Ray only when it runs).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .base import Engine
    from .ray.options import RayOptions

__all__ = ["ENGINES", "engine_names", "make_engine", "DEFAULT_ENGINE"]

DEFAULT_ENGINE = "local"


def _local(ray: RayOptions | None) -> Engine:  # noqa: ARG001 - every factory takes the same options
    from .local import LocalEngine

    return LocalEngine()


def _ray(ray: RayOptions | None) -> Engine:
    # absolute: an import of "ray.*" (relative or not) reads as the optional package to import hooks
    from fcndetect.engines.ray.engine import RayEngine

    return RayEngine(ray)


#: ``name -> factory(ray_options)``, in ``--engine``'s order.
ENGINES: dict[str, Callable[["RayOptions | None"], "Engine"]] = {"local": _local, "ray": _ray}


def engine_names() -> list[str]:
    """The ``--engine`` choices."""
    return list(ENGINES)


def make_engine(name: str, ray: RayOptions | None = None) -> Engine:
    """The engine called ``name``; ``ray``: where and how wide the Ray engine runs (the others ignore it).
    Raises :class:`ValueError` for an unknown name."""
    try:
        factory = ENGINES[name]
    except KeyError:
        raise ValueError(f"unknown engine {name!r}; choose from {', '.join(ENGINES)}") from None
    return factory(ray)
