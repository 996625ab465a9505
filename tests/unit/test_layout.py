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
