"""Imports point down only: every module's package imports (read with ast) must follow the layer table."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "mixedclf"

# Layer -> the layers it may import. `errors` and `configs` (exception types, packaged data files) are leaves
# every layer may use; a layer may always import itself.
ALLOWED = {
    "cli": {"engines", "serve", "cloud", "costs", "render", "io", "core", "models"},
    "cloud": {"runtime", "core", "io", "costs", "models"},
    "engines": {"runtime", "core", "io", "costs", "models"},
    "serve": {"runtime", "core", "io", "costs", "models"},
    "render": {"costs"},
    "runtime": {"core"},
    "models": {"core"},
    "io": {"core"},
    "costs": set(),
    "core": set(),
}
LEAVES = {"errors", "configs", "__init__", "__main__"}


def _layer(module: str) -> str:
    """`mixedclf.core.batching` -> core; the package root and names defined in it (__version__) -> __init__."""
    part = module.split(".")[1] if module.count(".") else "__init__"
    exists = (PACKAGE / part).is_dir() or (PACKAGE / f"{part}.py").is_file()
    return part if exists else "__init__"


def _edges():
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module:
                targets = [node.module] if node.module != "mixedclf" else [f"mixedclf.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            for target in targets:
                if target.startswith("mixedclf"):
                    yield module, target


def test_every_module_sits_in_a_known_layer():
    unknown = {m for m, _ in _edges() if _layer(m) not in ALLOWED and _layer(m) not in LEAVES}
    assert not unknown, f"modules outside the layer table: {sorted(unknown)}"


def test_imports_point_down_only():
    wrong = []
    for module, target in _edges():
        src, dst = _layer(module), _layer(target)
        if dst in LEAVES or src == dst or src in LEAVES - {"__init__"}:
            continue
        if dst not in ALLOWED.get(src, set()):
            wrong.append(f"{module} -> {target}")
    assert not wrong, "imports that point up or sideways:\n" + "\n".join(sorted(wrong))


def test_leaves_import_nothing_of_the_package_but_leaves():
    wrong = [f"{m} -> {t}" for m, t in _edges() if _layer(m) in {"errors", "configs"} and _layer(t) not in LEAVES]
    assert not wrong, wrong
