"""The package's shape: imports run one way (no cycles, lazy imports included), and each
target keeps what it knows in its own module (the front ends name no target)."""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "od_export"


def _modules() -> dict[str, Path]:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        modules[name.removesuffix(".__init__")] = path
    return modules


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """Every od_export module ``path`` imports: at the top, inside a function, or for type checking only."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("od_export"):
            submodules = [f"{node.module}.{alias.name}" for alias in node.names]
            found.update(m for m in submodules if m in modules)
            if any(m not in modules for m in submodules):
                found.add(node.module)  # names from the module itself
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in modules)
    return found


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in graph.get(node, ()):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_imports_have_no_cycles():
    modules = _modules()
    graph = {name: _imports(path, modules) - {name} for name, path in modules.items()}
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_one():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_front_ends_name_no_converter_target():
    """Flags, batch keys and inspect come from the registry: the CLI, the batch parser and inspect name no target."""
    from od_export.targets import TARGETS

    converters = [name for name in TARGETS if name not in ("saved_model", "frozen_graph")]
    for path in [*sorted((PACKAGE / "cli").glob("*.py")), PACKAGE / "pipelines" / "jobs.py",
                 *sorted((PACKAGE / "inspect").glob("*.py"))]:
        code = "\n".join(line for line in path.read_text(encoding="utf-8").splitlines()
                         if not line.lstrip().startswith("#"))
        named = [name for name in converters if f'"{name}"' in code or f"'{name}'" in code]
        assert not named, f"{path.relative_to(PACKAGE)} names {named}"
