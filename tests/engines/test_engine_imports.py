"""Engines and per-image rendering never import the detector or the runner (not even lazily)."""

from __future__ import annotations

import ast
from pathlib import Path

import fcndetect

PKG = Path(fcndetect.__file__).parent


def _imports(path: Path) -> set[str]:
    """Absolute module names imported anywhere in ``path`` but under ``if TYPE_CHECKING:``."""
    tree = ast.parse(path.read_text())
    skip = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
            for n in ast.walk(node)}
    package = ".".join(path.relative_to(PKG.parent).with_suffix("").parts[:-1])
    out = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - (node.level - 1)] if node.level else []
            mod = ".".join(base + ([node.module] if node.module else []))
            out |= {mod} | {f"{mod}.{a.name}" for a in node.names}
    return out


def test_engines_and_render_import_neither_detector_nor_runner():
    files = sorted((PKG / "engines").rglob("*.py")) + [PKG / "io" / "render.py"]
    assert len(files) >= 8
    for path in files:
        bad = {m for m in _imports(path) if m.startswith(("fcndetect.detector", "fcndetect.runner"))
               or m in ("fcndetect.Detector",)}
        assert not bad, f"{path.relative_to(PKG)} imports {bad}"


def test_ray_submodules_never_import_their_package():
    for path in sorted((PKG / "engines" / "ray").glob("*.py")):
        if path.name != "__init__.py":
            assert "fcndetect.engines.ray" not in _imports(path), path.name


def test_no_engine_name_is_compared_outside_the_engine_registry():
    """An engine is chosen in one place: only the registry and each engine's own module spell its name."""
    from fcndetect.engines.registry import engine_names

    own = {PKG / "engines" / "registry.py", PKG / "engines" / "local.py", *(PKG / "engines" / "ray").glob("*.py")}
    for path in sorted(PKG.rglob("*.py")):
        if path in own:
            continue
        text = path.read_text(encoding="utf-8")
        for name in engine_names():
            assert f'"{name}"' not in text and f"'{name}'" not in text, f"{path.relative_to(PKG)} spells {name!r}"


def test_the_registry_makes_every_engine_and_refuses_unknown_names():
    import pytest

    from fcndetect.engines.registry import engine_names, make_engine

    assert engine_names()[0] == "local"
    for name in engine_names():
        engine = make_engine(name)
        assert engine.name == name
        schemes, hint = engine.uri_support()
        assert isinstance(schemes, tuple) and hint
    with pytest.raises(ValueError, match="unknown engine 'nope'"):
        make_engine("nope")
