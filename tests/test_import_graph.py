"""No import cycles in workbench/ (issue 19, item 3).

The graph is read from the source with ast: an edge A -> B for every `import workbench...` / `from workbench...
import ...` in A, at module level or inside a function (a function-level import is how a cycle hides until the
function runs), leaving out `if TYPE_CHECKING:` blocks. `from pkg import name` points at pkg.name where that is
a module, else at pkg (its __init__). A cycle fails the test with its path printed. A dotted path resolved at
load time (the registry's family modules, a seed family's `model_class` in its modeling file) is a name, not an
import statement: such a module imports the file that names it, never the other way round.

Between subpackages the model zoo is the bottom layer: workbench.models imports no workbench.attention,
workbench.memory, workbench.explore or workbench.quality module (they all import it), so the zoo and its users
cannot cycle through different files either (attention -> models -> attention, as before the layout moved).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "workbench"

# Known cycles another helper owns, allowed until they are cut (owner named); nothing else may cycle.
ALLOWED: dict[frozenset[str], str] = {}
# allowances whose cut is on its way: not reported as stale while the cycle is already gone
PENDING: set[frozenset[str]] = set()
# Subpackages the model zoo must not import (each imports workbench.models).
ABOVE_MODELS = ("workbench.attention", "workbench.memory", "workbench.explore", "workbench.quality")


def modules() -> dict[str, Path]:
    found = {}
    for path in ROOT.rglob("*.py"):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _is_type_checking(node: ast.If) -> bool:
    return "TYPE_CHECKING" in ast.unparse(node.test)


def imports_of(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The workbench modules `name` imports (anywhere but under `if TYPE_CHECKING:`)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    stack: list[ast.AST] = [ast.parse(path.read_text(), str(path))]
    while stack:
        node = stack.pop()
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                stack.extend(child.orelse)
                continue
            if isinstance(child, ast.Import):
                found.update(alias.name for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = package.split(".")
                    anchor = anchor[: len(anchor) - (child.level - 1)]
                    base = ".".join(anchor + ([base] if base else []))
                for alias in child.names:
                    sub = f"{base}.{alias.name}"
                    found.add(sub if sub in known else base)
            stack.append(child)
    return {m for m in found if m in known and m != name}


def module_graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports_of(name, path, known) for name, path in known.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan), each as one path through it."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return components


def describe(component: list[str], graph: dict[str, set[str]]) -> str:
    members = set(component)
    return "; ".join(f"{m} -> {', '.join(sorted(graph[m] & members))}" for m in component)


def test_the_cycle_finder_finds_a_cycle_and_its_members() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_relative_and_function_level_imports_are_edges(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    source = tmp_path / "pkg" / "mod.py"
    source.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from workbench import hidden\n"
                      "def f():\n    from . import other\n    import workbench.paths\n")
    known = {"workbench.pkg.mod": source, "workbench.pkg.other": source, "workbench.paths": source,
             "workbench.hidden": source}
    assert imports_of("workbench.pkg.mod", source, known) == {"workbench.pkg.other", "workbench.paths"}


def test_no_module_imports_another_that_imports_it_back() -> None:
    graph = module_graph()
    assert "workbench.memory.predictor" in graph and graph["workbench.memory.predictor"]
    found = [c for c in cycles(graph) if frozenset(c) not in ALLOWED]
    assert not found, "import cycles:\n" + "\n".join(describe(c, graph) for c in found)


def test_the_model_zoo_imports_none_of_its_users() -> None:
    graph = module_graph()
    found = [f"{m} -> {t}" for m, targets in sorted(graph.items()) if m.startswith("workbench.models")
             for t in sorted(targets) if t.startswith(ABOVE_MODELS)]
    assert not found, "workbench.models imports a package above it:\n" + "\n".join(found)


def test_allowed_cycles_still_exist() -> None:
    """An allowance goes when its cycle does, so it cannot hide a new one."""
    graph = module_graph()
    present = {frozenset(c) for c in cycles(graph)}
    stale = [f"{sorted(pair)} ({owner})" for pair, owner in ALLOWED.items()
             if pair <= set(graph) and pair not in present and pair not in PENDING]
    assert not stale, f"these allowed cycles are gone: remove them from ALLOWED: {stale}"
