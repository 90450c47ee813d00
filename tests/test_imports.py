"""The ``analysis`` package has no import cycles, and keeps the direction the design card gives it.

The graph is built from the source with ``ast``, not by importing: every ``import`` and
``from ... import`` anywhere in a module counts, at the top level and inside functions alike. A
function-level import defers a cycle to run time but does not remove it: the two modules still
depend on each other, and whichever is imported first runs with the other half-initialised. So a
cycle hidden in a function is a cycle here too.

An edge goes to the module named: ``from .x import y`` is an edge to ``x`` (or to ``x.y`` when
``y`` is a submodule); ``from . import y`` is an edge to the package's ``__init__`` unless ``y`` is
a submodule. Importing ``a.b.c`` also runs ``a/__init__`` and ``a/b/__init__``; those implicit
parent imports are not edges (every submodule would otherwise be in a cycle with a package
``__init__`` that re-exports it, which is the re-export the design wants).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "analysis"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    """Every module: the Python ones, and the Cython ones (``.pyx``: compiled, imported like the rest)."""
    return {_module_name(p): p for p in sorted([*ROOT.rglob("*.py"), *ROOT.rglob("*.pyx")])}


def _resolve(module: str, is_package: bool, level: int, target: str | None) -> str:
    """The absolute name of a relative import's base."""
    base = module.split(".") if is_package else module.split(".")[:-1]
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join(base + ([target] if target else []))


def import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports (anywhere in its body)."""
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        if path.suffix == ".pyx":  # not Python syntax; the compiled modules import only numpy and CPython
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        is_package = path.name == "__init__.py"
        for node in ast.walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(name, is_package, node.level, node.module) if node.level else (node.module or "")
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    targets.append(sub if sub in modules else base)
            for target in targets:
                # ``import analysis.x.y`` names the deepest module that exists.
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name and target.split(".")[0] == "analysis":
                    graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
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


def test_the_graph_sees_the_package():
    graph = import_graph()
    assert "analysis.turnout" in graph and "analysis.report.runner" in graph
    # A known edge at the top level and one inside a function are both seen.
    assert "analysis.election" in graph["analysis.report.data"]
    assert any(target.startswith("analysis.turnout") for target in graph["analysis.report.battery"])


def test_cycle_finder_finds_a_planted_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    found = cycles(import_graph())
    assert not found, "import cycles: " + "; ".join(" <-> ".join(c) for c in found)


#: The direction of the data flow (design card): a method never imports a source reader, the
#: report, the CLI or the demo generator.
METHODS = ["analysis.digits", "analysis.eft", "analysis.consistency", "analysis.dynamics", "analysis.tsm",
           "analysis.turnout"]
FORBIDDEN = ("analysis.sources", "analysis.report", "analysis.cli", "analysis.synth")
#: Not a method: the harness that runs Rozenas' R package on the shared reference files, which it
#: reads with the tabular source's mappings.
HARNESSES = {"analysis.turnout.spikes_r"}


@pytest.mark.parametrize("method", METHODS)
def test_methods_do_not_import_readers_report_or_generator(method):
    graph = import_graph()
    own = [name for name in graph if (name == method or name.startswith(method + ".")) and name not in HARNESSES]
    bad = sorted({(name, target) for name in own for target in graph[name] if target.startswith(FORBIDDEN)})
    assert not bad, f"{method} imports {bad}"
