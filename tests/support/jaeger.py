"""A real Jaeger (v2, in-memory storage, OTLP in) for tests and for ``make demo-jaeger``.

Why a real one: users look at our traces in Jaeger, and what it shows (one waterfall per
message, the service dependency graph) is computed by Jaeger from parent references and
resources; only Jaeger itself proves those come out right. There is no Debian package and no
prebuilt binary may be downloaded, so it is built from the Go module proxy, once, into the
cache of :mod:`support.maven` (a build takes minutes on two cores), under a file lock.
``go install pkg@version`` refuses the module (its go.mod has replace directives), so the build
runs in a scratch module that requires it as a tool.

Every server here listens on 127.0.0.1 only, on free ports, with its own configuration.
``PYTHONPATH=tests python -m support.jaeger`` builds it up front, as .ci/run does.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from support.maven import cache_dir
from support.processes import ServerProcess, free_port, poll_until, wait_until_serving

VERSION = "v1.75.0"
PACKAGE = "github.com/jaegertracing/jaeger/cmd/jaeger"
GO_INSTALLED = "/usr/local/go/bin"
UI_ENV = "KAFKA_AUTOTRACE_JAEGER_UI"
"""A folder with a built Jaeger web UI to serve. A build from the module proxy has none (release
builds embed one from another repository): without it, Jaeger serves a placeholder page, and
its query API, which the tests read, is all there is."""

_T = TypeVar("_T")


def binary() -> Path:
    return cache_dir() / f"jaeger-{VERSION}" / "jaeger"


def ensure_built() -> Path:
    """The Jaeger binary, built with Go into the cache first when it is not there yet.

    Raises RuntimeError with Go's output if the build fails.
    """
    target = binary()
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with (target.parent.parent / f"jaeger-{VERSION}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not target.exists():
            _build(target)
    return target


def _go() -> str:
    """The Go command: on the PATH, or where Go's own installer puts it."""
    found = shutil.which("go") or shutil.which("go", path=GO_INSTALLED)
    if found is None:
        raise RuntimeError("Go 1.24 or later is needed to build Jaeger: install it")
    return found


def _build(target: Path) -> None:
    go = _go()
    # No toolchain download: the Go that is installed builds it.
    env = {**os.environ, "GOTOOLCHAIN": "local"}
    with tempfile.TemporaryDirectory(prefix="jaeger-build-", dir=target.parent) as work:
        Path(work, "go.mod").write_text("module jaeger-build\n\ngo 1.24\n")
        staged = Path(work) / "jaeger"
        for command in (
            [go, "get", "-tool", f"{PACKAGE}@{VERSION}"],
            [go, "build", "-o", str(staged), PACKAGE],
        ):
            done = subprocess.run(
                command, cwd=work, env=env, capture_output=True, text=True, check=False
            )
            if done.returncode != 0:
                raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout}{done.stderr}")
        staged.rename(target)


def _config(query: int, query_grpc: int, otlp_http: int) -> dict[str, Any]:
    """Jaeger's all-in-one configuration cut down to what is used: OTLP/HTTP in, memory
    storage, the query API and UI; every address on loopback, its own metrics off."""
    store = "memory_store"
    ui = os.environ.get(UI_ENV)
    return {
        "service": {
            "extensions": ["jaeger_storage", "jaeger_query"],
            "pipelines": {
                "traces": {
                    "receivers": ["otlp"],
                    "processors": ["batch"],
                    "exporters": ["jaeger_storage_exporter"],
                }
            },
            "telemetry": {"metrics": {"level": "none"}, "logs": {"level": "warn"}},
        },
        "extensions": {
            "jaeger_storage": {"backends": {store: {"memory": {"max_traces": 100000}}}},
            "jaeger_query": {
                "storage": {"traces": store},
                **({"ui": {"assets_path": ui}} if ui else {}),
                # On by default: it would export Jaeger's own spans to localhost:4317, and its
                # shutdown would wait for that export to time out.
                "enable_tracing": False,
                "http": {"endpoint": f"127.0.0.1:{query}"},
                "grpc": {"endpoint": f"127.0.0.1:{query_grpc}"},
            },
        },
        "receivers": {"otlp": {"protocols": {"http": {"endpoint": f"127.0.0.1:{otlp_http}"}}}},
        "processors": {"batch": {"timeout": "100ms"}},
        "exporters": {"jaeger_storage_exporter": {"trace_storage": store}},
    }


@dataclass
class JaegerQuery:
    """Jaeger's HTTP query API (what its UI reads) at :attr:`url`."""

    url: str

    def api(self, path: str, **params: str | int) -> Any:
        """The ``data`` of an answer, e.g. ``api("/api/traces", service="billing")``."""
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}{path}?{query}", timeout=10) as response:
            return json.load(response)["data"]

    def traces(self, service: str) -> list[dict[str, Any]]:
        """Every trace (Jaeger's JSON: spans, processes) that has a span of ``service``."""
        data: list[dict[str, Any]] = self.api(
            "/api/traces", service=service, limit=1000, lookback="1h"
        )
        return data

    def dependencies(self) -> list[dict[str, Any]]:
        """The service graph's edges of the last hour: parent, child and callCount."""
        now_ms = int(time.time() * 1000)
        data: list[dict[str, Any]] = self.api("/api/dependencies", endTs=now_ms, lookback=3_600_000)
        return data

    def wait_for(
        self, fetch: Callable[[], _T], predicate: Callable[[_T], bool], timeout: float = 30.0
    ) -> _T:
        """``fetch()`` again until ``predicate`` holds for its result, which is returned:
        Jaeger stores what it receives in batches, so callers wait for a condition."""
        return poll_until(
            fetch, predicate, timeout, lambda got: f"Jaeger never gave the expected answer: {got}"
        )


@dataclass
class Jaeger(ServerProcess, JaegerQuery):
    """A running Jaeger: the UI and query API at :attr:`url`, OTLP/HTTP in at
    :attr:`otlp_endpoint` (a base URL, as ``OTEL_EXPORTER_OTLP_ENDPOINT`` takes it). Use it as
    a context manager so it is always stopped."""

    LOG = "jaeger.log"
    otlp_endpoint: str


def start_jaeger(ready_timeout: float = 60.0) -> Jaeger:
    """Start a private Jaeger (building it first if needed); returns once its query API
    answers. Raises RuntimeError with its log if it exits or never becomes ready."""
    executable = ensure_built()
    workdir = Path(tempfile.mkdtemp(prefix="kafka-autotrace-jaeger-"))
    query, query_grpc, otlp_http = free_port(), free_port(), free_port()
    config = workdir / "jaeger.yaml"
    config.write_text(json.dumps(_config(query, query_grpc, otlp_http), indent=2))  # JSON is YAML
    with (workdir / Jaeger.LOG).open("wb") as log:
        process = subprocess.Popen(
            [str(executable), "--config", str(config)], stdout=log, stderr=subprocess.STDOUT
        )
    jaeger = Jaeger(
        process=process,
        workdir=workdir,
        url=f"http://127.0.0.1:{query}",
        otlp_endpoint=f"http://127.0.0.1:{otlp_http}",
    )
    try:
        _wait_until_ready(jaeger, ready_timeout)
    except BaseException:
        jaeger.stop()
        raise
    return jaeger


def _wait_until_ready(jaeger: Jaeger, timeout: float) -> None:
    otlp = urllib.parse.urlsplit(jaeger.otlp_endpoint)

    def serving() -> None:
        jaeger.api("/api/services")
        # The collector starts its receivers after the query extension.
        socket.create_connection((otlp.hostname, otlp.port), timeout=1).close()

    wait_until_serving(jaeger.process, serving, timeout, f"Jaeger at {jaeger.url}", jaeger.log_tail)


if __name__ == "__main__":
    started = time.monotonic()
    print(f"Jaeger {VERSION}: {ensure_built()} ({time.monotonic() - started:.0f} s)")
