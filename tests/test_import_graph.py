"""statek's modules import one way: no cycle, counting imports made inside functions.

Only imports under ``if TYPE_CHECKING:`` are left out (they never run). Importing ``a.b.c`` also runs
the packages ``a.b`` and ``a``, so those count as edges too (except a module's own ancestors, which
are running already when it is imported).
"""

from __future__ import annotations

import ast
from pathlib import Path

import statek

PACKAGE = Path(statek.__file__).parent


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for inner in node.body:
                skipped.update(id(each) for each in ast.walk(inner))
    return skipped


def _imported(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped = _type_checking_nodes(tree)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            submodules = [f"{target}.{alias.name}" for alias in node.names]
            names.update(name for name in submodules if name in modules)
            if any(name not in modules for name in submodules):
                names.add(target)
    edges: set[str] = set()
    ancestors = {module.rsplit(".", i)[0] for i in range(module.count(".") + 1)}
    for name in names:
        while name and name not in modules:  # an attribute of a module: the module
            name = name.rpartition(".")[0]
        while name.startswith("statek"):  # the module and the packages above it all run
            if name not in ancestors:
                edges.add(name)
            name = name.rpartition(".")[0]
    return edges


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycle_among_statek_modules() -> None:
    modules = _modules()
    graph = {name: _imported(name, path, modules) for name, path in modules.items()}
    cycles = _cycles(graph)
    described = [
        " <-> ".join(cycle)
        + "\n  "
        + "\n  ".join(f"{name} -> {sorted(graph[name] & set(cycle))}" for name in cycle)
        for cycle in cycles
    ]
    assert not cycles, "import cycles:\n" + "\n".join(described)


def test_the_checker_finds_a_function_level_cycle(tmp_path: Path) -> None:
    """The check itself would see a cycle closed by an import inside a function."""
    graph = {"statek.a": {"statek.b"}, "statek.b": {"statek.a"}, "statek.c": {"statek.a"}}
    assert _cycles(graph) == [["statek.a", "statek.b"]]
    source = tmp_path / "b.py"
    source.write_text("def f():\n    from . import a\n", encoding="utf-8")
    modules = {"statek.a": tmp_path / "a.py", "statek.b": source}
    assert _imported("statek.b", source, modules) == {"statek.a"}


def test_the_metering_path_knows_its_consumers_interface_only() -> None:
    """The pipeline imports no consumer but the budget (which it needs for a call reserved off the
    wire); job code imports no telemetry at all."""
    modules = _modules()
    pipeline = _imported("statek.telemetry.pipeline", modules["statek.telemetry.pipeline"], modules)
    assert not pipeline & {"statek.telemetry.span", "statek.telemetry.jobs", "statek.telemetry.job_span"}
    job = _imported("statek.executors.job", modules["statek.executors.job"], modules)
    assert not any(name.startswith("statek.telemetry") for name in job)
    llm_api = _imported("statek.llm_api", modules["statek.llm_api"], modules)
    assert not any(name.startswith("statek.providers") for name in llm_api)
