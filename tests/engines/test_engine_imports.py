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
