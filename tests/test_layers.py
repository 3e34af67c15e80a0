"""Imports point down only: every module's package imports (read with ast) must follow the layer table, no
layer's modules import each other in a circle, and the cost layer renders nothing."""

from __future__ import annotations

import ast
import graphlib
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

# Layer -> third-party packages it must not import: the cost layer is numbers only (no rendering, no device).
FORBIDDEN = {"costs": {"rich", "torch", "transformers", "typer"}}


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


def _module_of(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(name: str) -> bool:
    rel = Path(*name.split(".")[1:])
    return (PACKAGE / rel).is_dir() or (PACKAGE / rel).with_suffix(".py").is_file()


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    """Ids of the import nodes under `if TYPE_CHECKING:`: they never run, so they close no import cycle."""
    hidden = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            hidden |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    return hidden


def _runtime_edges():
    """(module, module it imports when run), deferred imports inside functions included: `from pkg import sub`
    points at pkg.sub when sub is a module (importing a submodule is not an import of its package's code)."""
    for path in sorted(PACKAGE.rglob("*.py")):
        module = _module_of(path)
        tree = ast.parse(path.read_text(), str(path))
        hidden = _type_checking_nodes(tree)
        for node in ast.walk(tree):
            if id(node) in hidden:
                continue
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mixedclf"):
                subs = [f"{node.module}.{a.name}" for a in node.names]
                targets = [t for t in subs if _is_module(t)] or [node.module]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names if a.name.startswith("mixedclf")]
            else:
                continue
            for target in targets:
                if target != module:
                    yield module, target


def _cycle(edges) -> list[str] | None:
    graph: dict[str, set[str]] = {}
    for src, dst in edges:
        graph.setdefault(src, set()).add(dst)
    try:
        tuple(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as e:
        return list(e.args[1])
    return None


def test_cycle_finder_sees_a_cycle():
    assert _cycle([("a", "b"), ("b", "c"), ("c", "a")])
    assert _cycle([("a", "b"), ("b", "c")]) is None


def test_no_import_cycle_inside_a_layer():
    inside = [(m, t) for m, t in _runtime_edges() if _layer(m) == _layer(t)]
    cycle = _cycle(inside)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_layers_import_no_forbidden_library():
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = _module_of(path)
        banned = FORBIDDEN.get(_layer(module), set())
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level else [])
            wrong += [f"{module} imports {n}" for n in names if n.split(".")[0] in banned]
    assert not wrong, wrong
