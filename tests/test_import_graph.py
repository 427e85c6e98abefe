"""House rules on the source itself (read with `ast`, nothing imported): `sonic_model` has no
import cycles and never imports Prefect, `tasks` or `flows`.

Every import statement counts, module-level or inside a function (a deferred import still ties
the modules together), and importing `a.b.c` counts as importing the packages `a.b` and `a` too
(their `__init__` runs). A module's own parent packages are left out: Python runs them first
anyway, and a package re-exporting its children is not a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "sonic_model"
FORBIDDEN = ("prefect", "tasks", "flows")


def _modules(package: str) -> dict[str, tuple[Path, bool]]:
    """Dotted module name -> (file, is a package's __init__)."""
    modules = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        modules[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return modules


def _imported_names(path: Path, module: str, is_package: bool) -> set[str]:
    """Every dotted name an import statement in the file names (relative imports resolved)."""
    names = set()
    base = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            target = node.module or ""
            if node.level:
                anchor = base
                for _ in range(node.level - 1):
                    anchor = anchor.rpartition(".")[0]
                target = f"{anchor}.{target}" if target else anchor
            names.add(target)
            names.update(f"{target}.{alias.name}" for alias in node.names)
    return names


def import_graph(package: str = PACKAGE) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """(module -> modules of `package` it imports, module -> names it imports from outside)."""
    modules = _modules(package)
    inside: dict[str, set[str]] = {name: set() for name in modules}
    outside: dict[str, set[str]] = {name: set() for name in modules}
    for module, (path, is_package) in modules.items():
        for name in _imported_names(path, module, is_package):
            if name != package and not name.startswith(package + "."):
                outside[module].add(name)
                continue
            parts = name.split(".")
            for end in range(2, len(parts) + 1):  # a.b.c -> a.b, a.b.c (the top package has no code)
                target = ".".join(parts[:end])
                if target in modules and target != module and not module.startswith(target + "."):
                    inside[module].add(target)
    return inside, outside


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(graph[node]):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_sonic_model_has_no_import_cycles():
    inside, _ = import_graph()
    assert len(inside) > 20 and sum(map(len, inside.values())) > 50  # the walk sees the package
    assert cycles(inside) == []


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_generator_registry_is_a_leaf_below_the_generators():
    inside, _ = import_graph()
    implementations = {name for name in inside if name.startswith(("sonic_model.preview", "sonic_model.sonic"))}
    assert not inside["sonic_model.generators"] & (implementations | {"sonic_model.render"})
    assert not inside["sonic_model.render"] & implementations
    assert "sonic_model.generators" in inside["sonic_model.preview.generator"]
    assert "sonic_model.generators" in inside["sonic_model.sonic.generator"]


def test_sonic_model_never_imports_prefect_tasks_or_flows():
    _, outside = import_graph()
    offenders = {
        module: sorted(name for name in names if name.split(".")[0] in FORBIDDEN) for module, names in outside.items()
    }
    assert {module: names for module, names in offenders.items() if names} == {}
