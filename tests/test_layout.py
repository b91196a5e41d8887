"""The package's shape: no import cycles, and each package of ``otel_tokens._internal`` imports only the
packages its ``__init__`` docstring allows ("May import: ..."). Every import counts, deferred ones too:
a deferred import is still a dependency."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import otel_tokens

PACKAGE_DIR = Path(otel_tokens.__file__).parent
INTERNAL = "otel_tokens._internal"
# Leaves every layer may use: the names module and the version string.
LEAVES = frozenset({"otel_tokens.semconv", "otel_tokens.version"})


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE_DIR.rglob("*.py"):
        parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


MODULES = _modules()


def _imports(module: str, path: Path) -> set[str]:
    """The otel_tokens modules ``module`` imports anywhere in its code (``from X import name`` counts as
    ``X.name`` when that is a module, else as ``X``)."""
    found = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            if not base.startswith("otel_tokens"):
                continue
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base)
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("otel_tokens")}
    return {name for name in found if name != module}


GRAPH = {module: _imports(module, path) for module, path in MODULES.items()}


def _layer(module: str) -> str | None:
    """The _internal package a module belongs to, or None for the public modules."""
    if not module.startswith(INTERNAL + "."):
        return None
    return module.split(".")[2]


def _allowed() -> dict[str, set[str] | None]:
    """package -> the packages its docstring lets it import (None: everything)."""
    allowed = {}
    for init in sorted((PACKAGE_DIR / "_internal").glob("*/__init__.py")):
        docstring = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))) or ""
        match = re.search(r"^May import: (.+?)\.?$", docstring, re.M)
        assert match, f"{init} does not say what it may import ('May import: ...')"
        text = match.group(1)
        if text.startswith("everything"):
            allowed[init.parent.name] = None
        elif text.startswith("nothing"):
            allowed[init.parent.name] = set()
        else:
            allowed[init.parent.name] = {name.strip() for name in text.split(",")}
    return allowed


ALLOWED = _allowed()


def test_the_graph_is_read() -> None:
    assert len(MODULES) > 60 and sum(map(len, GRAPH.values())) > 150
    assert "otel_tokens._internal.calls.recorder" in GRAPH["otel_tokens._internal.calls.engine"]


def test_every_package_names_only_packages_that_exist() -> None:
    assert set(ALLOWED) >= {"base", "pricing", "budgets", "accounting", "calls", "providers", "outputs", "setup",
                            "commands"}
    for package, names in ALLOWED.items():
        assert names is None or names <= set(ALLOWED), package


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_a_package_imports_only_what_its_docstring_allows(package: str) -> None:
    allowed = ALLOWED[package]
    if allowed is None:
        return
    wrong = sorted(
        f"{module} -> {target}"
        for module, targets in GRAPH.items() if _layer(module) == package
        for target in targets
        if target not in LEAVES and _layer(target) != package and _layer(target) not in allowed
    )
    assert wrong == []


def test_the_packages_form_layers() -> None:
    """The allowed imports themselves have no cycle: there is an order, lowest first."""
    edges = {package: names or set() for package, names in ALLOWED.items() if names is not None}
    order: list[str] = []
    while edges:
        ready = sorted(package for package, names in edges.items() if names <= set(order))
        assert ready, f"the allowed imports go round in a circle: {edges}"
        order += ready
        for package in ready:
            del edges[package]


def test_no_import_cycles() -> None:
    """Tarjan's strongly connected components over every module; any with two or more is a cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for target in GRAPH.get(module, ()):
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in on_stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in sorted(GRAPH):
        if module not in index:
            visit(module)
    # The public package and its instrumentors import each other on purpose (instrument() finds the
    # instrumentors; they reach the runtime through it); nothing inside _internal may be in a cycle.
    internal_cycles = [cycle for cycle in cycles if any(_layer(module) for module in cycle)]
    assert internal_cycles == []


def test_internal_packages_do_not_reach_up_into_the_public_api() -> None:
    """Only the commands may use ``otel_tokens`` itself (the demo is an app of it)."""
    wrong = sorted(
        f"{module} -> {target}"
        for module, targets in GRAPH.items() if _layer(module) not in (None, "commands")
        for target in targets if _layer(target) is None and target not in LEAVES
    )
    assert wrong == []


def test_the_layer_table_lists_every_package_below_what_it_imports() -> None:
    docstring = ast.get_docstring(ast.parse((PACKAGE_DIR / "_internal" / "__init__.py").read_text())) or ""
    rows = [re.split(r"\s{2,}", line.strip())[0] for line in docstring.splitlines() if line.startswith("    ")]
    layers = [{name.strip() for name in row.split("|")} for row in rows]
    assert set().union(*layers) == set(ALLOWED) == {
        path.parent.name for path in (PACKAGE_DIR / "_internal").glob("*/__init__.py")
    }
    below: set[str] = set()
    for layer in layers:
        for package in layer:
            assert ALLOWED[package] is None or ALLOWED[package] <= below, package
        below |= layer
