"""The house's shape holds: no import cycle between everloop's modules, and no import arrow up
the layers (``api``/``cli`` → ``services`` → ``engine`` → ``domain``, with ``store``, ``llm``,
``capabilities`` and ``egress`` below services). Imports under ``TYPE_CHECKING`` count: a cycle
that only the type checker sees is still a cycle in the design."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"

# Higher may import lower, never the reverse. Top-level modules (bootstrap, config, errors,
# ids, ...) are not in a layer: bootstrap wires everything, the rest are leaves.
LAYERS = {
    "api": 4,
    "cli": 4,
    "services": 3,
    "engine": 2,
    "store": 1,
    "llm": 1,
    "capabilities": 1,
    "egress": 1,
    "domain": 0,
}

# Known debt, to shrink, never to grow (empty: the storage tools' logic moved below the
# services with workspaces, issue 19; a capability never imports a service).
KNOWN_UPWARD: set[tuple[str, str]] = set()


def modules() -> dict[str, Path]:
    found = {}
    for path in (SRC / "everloop").rglob("*.py"):
        name = ".".join(path.relative_to(SRC).with_suffix("").parts)
        found[name.removesuffix(".__init__")] = path
    return found


def imports(path: Path, known: dict[str, Path]) -> Iterator[str]:
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for target in (node.module, *(f"{node.module}.{a.name}" for a in node.names)):
                if target in known:
                    yield target
        elif isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names if alias.name in known)


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: set(imports(path, known)) - {name} for name, path in known.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
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
    return found


def layer(module: str) -> int | None:
    parts = module.split(".")
    return LAYERS.get(parts[1]) if len(parts) > 1 else None


def test_no_import_cycles() -> None:
    assert cycles(graph()) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_goes_up_a_layer() -> None:
    upward = set()
    for source, targets in graph().items():
        for target in targets:
            low, high = layer(source), layer(target)
            if low is not None and high is not None and high > low:
                upward.add((source, target))
    assert sorted(upward - KNOWN_UPWARD) == []
    # Debt paid off is taken off the list, so it cannot come back unnoticed.
    assert sorted(KNOWN_UPWARD - upward) == []


def test_no_capability_imports_a_service() -> None:
    # The tools run in the engine's step transaction; the storage rules they use live in
    # ``store`` (store/workspace_files.py, store/session_storage_rules.py, ...).
    found = sorted(
        (source, target)
        for source, targets in graph().items()
        if source.startswith("everloop.capabilities")
        for target in targets
        if target.startswith("everloop.services")
    )
    assert found == []


def test_no_route_imports_the_store() -> None:
    # Routes go through services: what a request may read or write is decided there.
    found = sorted(
        (source, target)
        for source, targets in graph().items()
        if source.startswith("everloop.api")
        for target in targets
        if target.startswith("everloop.store")
    )
    assert found == []
