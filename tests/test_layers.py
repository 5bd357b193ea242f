"""The package's import graph: no cycles between files or packages, and every import points down.

Read from the source with ``ast`` (nothing is imported): every ``import``/``from ... import`` in a
file counts, at module level or inside a function, except those under ``if TYPE_CHECKING:``
(annotations only; they run nowhere). ``from fpsynth.x import name`` counts as an edge to the
module ``fpsynth.x.name`` when that is a module, else to ``fpsynth.x``.

Layers are the top-level modules and packages of ``fpsynth``; an import between two of them must
go to a strictly lower row of :data:`LAYERS` (same-row neighbours do not import each other).
Inside one package any direction is allowed, as long as no files form a cycle. Run alone with
``python -m pytest -q tests/test_layers.py``; a failure lists every offending edge.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "fpsynth"

# Lowest first. A name is a top-level module (fpsynth/x.py) or package (fpsynth/x/); "fpsynth" is
# the package root (its __init__), which only the outside world imports.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("errors", "version", "reference", "seeds"),
    ("device", "config", "demo_config"),
    ("outputs",),
    ("stages",),
    ("stage", "lock", "safeload"),
    ("weights",),
    ("nets",),
    ("models",),
    ("diffusion",),
    ("published",),
    ("data",),
    ("metrics",),
    ("train",),
    ("generate",),
    ("report", "utility"),
    ("pipeline",),
    ("demo",),
    ("api",),
    ("cli",),
    ("fpsynth",),
)
RANK = {name: i for i, row in enumerate(LAYERS) for name in row}


def _modules(package: Path) -> dict[str, tuple[Path, bool]]:
    """Dotted module name -> (file, is a package __init__)."""
    found = {}
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        if is_pkg:
            parts = parts[:-1]
        found[".".join(parts)] = (path, is_pkg)
    return found


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    """ids of the nodes inside ``if TYPE_CHECKING:`` blocks."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            test = node.test
            name = test.id if isinstance(test, ast.Name) else test.attr if isinstance(test, ast.Attribute) else None
            if name == "TYPE_CHECKING":
                for child in node.body:
                    skip.update(id(n) for n in ast.walk(child))
    return skip


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """Module -> the fpsynth modules it imports (function-level imports included)."""
    modules = _modules(package)

    def owner(name: str) -> str | None:  # the longest prefix of ``name`` that is a module
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for name, (path, is_pkg) in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        skip = _type_checking_nodes(tree)
        here = name if is_pkg else name.rpartition(".")[0]
        targets: set[str | None] = set()
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            if isinstance(node, ast.Import):
                targets.update(owner(a.name) for a in node.names if a.name.split(".")[0] == "fpsynth")
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = here.split(".")[: len(here.split(".")) - (node.level - 1)]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                if source.split(".")[0] != "fpsynth":
                    continue
                for alias in node.names:
                    sub = f"{source}.{alias.name}"
                    targets.add(sub if sub in modules else owner(source))
        targets.discard(None)
        targets.discard(name)
        graph[name] = {t for t in targets if t is not None}
    return graph


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "fpsynth"


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def _describe(cycles: list[list[str]], graph: dict[str, set[str]]) -> str:
    lines = []
    for component in cycles:
        members = set(component)
        edges = [f"{a} -> {b}" for a in component for b in sorted(graph.get(a, ())) if b in members]
        lines.append(f"{{{', '.join(component)}}}: " + "; ".join(edges))
    return "\n".join(lines)


def test_every_layer_is_in_the_table() -> None:
    unlisted = sorted({_layer(m) for m in _modules(PACKAGE)} - set(RANK))
    assert not unlisted, f"top-level modules missing from LAYERS in {__file__}: {unlisted}"


def test_no_cycle_between_files() -> None:
    graph = import_graph()
    cycles = _cycles(graph)
    assert not cycles, "files that import each other (directly or around a loop):\n" + _describe(cycles, graph)


def test_no_cycle_between_packages() -> None:
    graph = import_graph()
    layers: dict[str, set[str]] = {}
    for a, targets in graph.items():
        layers.setdefault(_layer(a), set()).update(_layer(b) for b in targets if _layer(b) != _layer(a))
    cycles = _cycles(layers)
    assert not cycles, "packages that import each other:\n" + _describe(cycles, layers)


def test_imports_point_down_the_layer_table() -> None:
    graph = import_graph()
    upward = sorted(
        f"{a} -> {b} ({_layer(a)} is row {RANK.get(_layer(a))}, {_layer(b)} row {RANK.get(_layer(b))})"
        for a, targets in graph.items()
        for b in targets
        if _layer(a) != _layer(b) and RANK.get(_layer(a), -1) <= RANK.get(_layer(b), -1)
    )
    assert not upward, f"imports that do not point down LAYERS ({len(upward)}):\n" + "\n".join(upward)


def test_the_graph_sees_function_level_imports(tmp_path: Path) -> None:
    package = tmp_path / "fpsynth"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("")
    (package / "a.py").write_text("def f():\n    from fpsynth.sub import b\n")
    (package / "sub" / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from fpsynth import a\nfrom . import c\n"
    )
    (package / "sub" / "c.py").write_text("import fpsynth.a\n")
    graph = import_graph(package)
    assert graph["fpsynth.a"] == {"fpsynth.sub.b"}
    assert graph["fpsynth.sub.b"] == {"fpsynth.sub.c"}  # the TYPE_CHECKING import is left out
    assert _cycles(graph) == [["fpsynth.a", "fpsynth.sub.b", "fpsynth.sub.c"]]
