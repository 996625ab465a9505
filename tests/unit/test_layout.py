"""The package's three rooms stay apart: the core owns the messaging lifecycle and imports no
Kafka client, tool or OTLP protobuf; each client adapter leans on the core, never on another
adapter; the developer tools are imported by neither."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "kafka_autotrace"
CLIENT_LIBRARIES = ("kafka", "confluent_kafka", "aiokafka")
ADAPTERS = (
    "kafka_autotrace.clients.kafka_python",
    "kafka_autotrace.clients.confluent.classic",
    "kafka_autotrace.clients.confluent.aio",
    "kafka_autotrace.clients.aiokafka",
)


def _imports(path: Path) -> set[str]:
    """Every module a file imports, at any depth of its code."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
    return found


def _room(name: str) -> list[Path]:
    return sorted((PACKAGE / name).rglob("*.py"))


def _within(module: str, packages: tuple[str, ...]) -> bool:
    return any(module == package or module.startswith(f"{package}.") for package in packages)


@pytest.mark.parametrize("path", _room("core"), ids=lambda path: path.name)
def test_the_core_imports_no_client_no_tool_and_no_protobuf(path: Path) -> None:
    forbidden = (
        *CLIENT_LIBRARIES,
        "kafka_autotrace.clients",
        "kafka_autotrace.tools",
        "kafka_autotrace.kafka_python",
        "kafka_autotrace.confluent_kafka",
        "kafka_autotrace.aiokafka",
        "opentelemetry.proto",
    )
    assert sorted(m for m in _imports(path) if _within(m, forbidden)) == []


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_adapters_lean_on_the_core_never_on_each_other_or_the_tools(adapter: str) -> None:
    """Of the package, an adapter imports the core, the registry and the common module of its
    own client only."""
    package = adapter.rsplit(".", 1)[0]
    allowed = ("kafka_autotrace.core", "kafka_autotrace.clients.registry", f"{package}.common")
    path = PACKAGE.joinpath(*adapter.split(".")[1:]).with_suffix(".py")
    ours = [m for m in _imports(path) if _within(m, ("kafka_autotrace",))]
    assert sorted(m for m in ours if not _within(m, allowed)) == []


def test_importing_the_core_loads_no_client_and_no_protobuf() -> None:
    """What the source says, checked at run time in a fresh interpreter."""
    modules = sorted(
        "kafka_autotrace.core." + path.stem for path in _room("core") if path.stem != "__init__"
    )
    probe = (
        f"import sys\nfor m in {modules!r}: __import__(m)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        f"{CLIENT_LIBRARIES!r} or m.startswith('opentelemetry.proto')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _package_graph() -> dict[str, set[str]]:
    """Per module of the package, the modules of the package it imports, type-checking
    imports included; ``from package import module`` counts as importing the module."""
    paths = sorted(PACKAGE.rglob("*.py"))
    modules = {_module_name(path) for path in paths}
    graph: dict[str, set[str]] = {}
    for path in paths:
        name = _module_name(path)
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                edges.update(alias.name for alias in node.names if alias.name in modules)
            elif isinstance(node, ast.ImportFrom) and node.module in modules and not node.level:
                for alias in node.names:
                    submodule = f"{node.module}.{alias.name}"
                    edges.add(submodule if submodule in modules else node.module)
        edges.discard(name)
        graph[name] = edges
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle through each strongly connected group of modules (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for imported in sorted(graph[module]):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == module:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return found


def test_no_module_of_the_package_imports_itself_through_others() -> None:
    """No import cycle, not even one closed only by imports made for type checking."""
    assert _cycles(_package_graph()) == []


def test_the_cycle_check_sees_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_module_of_the_package_imports_two_client_libraries() -> None:
    """Each client's code (adapter, probe) stays in modules of its own."""
    mixed = {
        path.name: libraries
        for path in sorted(PACKAGE.rglob("*.py"))
        if len(libraries := {m.split(".")[0] for m in _imports(path)} & set(CLIENT_LIBRARIES)) > 1
    }
    assert mixed == {}


ROOT = PACKAGE.parents[1]
LONGEST = {"src": 450, "tests": 700, "e2e": 700, "bench": 700}
"""The most lines a module may have, per top-level folder: a longer one holds several jobs."""


@pytest.mark.parametrize("folder", sorted(LONGEST))
def test_modules_stay_short(folder: str) -> None:
    long = {
        str(path.relative_to(ROOT)): lines
        for path in sorted((ROOT / folder).rglob("*.py"))
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > LONGEST[folder]
    }
    assert long == {}
