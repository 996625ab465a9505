"""Fixtures shared by tests/ and e2e/: one real broker per session, a fresh topic and OTLP
receiver per test.

The broker is session-scoped because starting it costs seconds while topics cost milliseconds;
isolation between tests comes from unique topic (and group) names instead.
"""

from __future__ import annotations

import sys
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import context as otel_context

# ``support`` is a helper package under tests/, not an installed one; putting that directory on
# sys.path works the same under every pytest import mode, for tests/ and e2e/ alike.
sys.path.insert(0, str(Path(__file__).resolve().parent / "tests"))

from support.broker import Broker, create_topic, start_broker, unique_topic
from support.exports import Services
from support.receiving import WaitingReceiver

from kafka_autotrace.clients.registry import CLIENTS

_BROKER = pytest.StashKey[Broker]()


def pytest_addoption(parser: pytest.Parser) -> None:
    # Here rather than in tests/contract/conftest.py: pytest reads a conftest below the root
    # at start-up only when its folder is named, and an option must be known by then.
    parser.addoption(
        "--client",
        action="append",
        choices=sorted(client.distribution for client in CLIENTS),
        help="run the adapter contract (tests/contract) for this client library only "
        "(every driver of it); repeatable",
    )


@pytest.fixture(scope="session")
def broker(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Broker]:
    # The log lives under pytest's basetemp (not the broker's data dir, which is deleted on
    # stop) so it can still be read after the session; pytest prunes old basetemps itself.
    running = start_broker(tmp_path_factory.mktemp("broker"))
    request.config.stash[_BROKER] = running
    try:
        yield running
    finally:
        del request.config.stash[_BROKER]
        running.stop()


@pytest.fixture
def bootstrap(broker: Broker) -> str:
    return broker.bootstrap_servers


@pytest.fixture
def topic(bootstrap: str, request: pytest.FixtureRequest) -> str:
    """A new single-partition topic named after the test, so leftovers are easy to attribute."""
    return create_topic(bootstrap, unique_topic(request.node.name), partitions=1)


@pytest.fixture
def otlp_receiver() -> Iterator[WaitingReceiver]:
    with WaitingReceiver() as receiver:
        yield receiver


@pytest.fixture
def services(otlp_receiver: WaitingReceiver) -> Iterator[Services]:
    """Hand-timed spans of named services, exported over OTLP/HTTP to ``otlp_receiver``."""
    exporting = Services(otlp_receiver.endpoint)
    yield exporting
    exporting.shutdown()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item) -> Generator[None, Any, None]:
    """Attach the broker log's tail to failures of tests that used the broker.

    Many Kafka failures (a group that never stabilises, a produce that times out) are only
    explained by the broker's side of the story, which would otherwise be lost with its temp dir.
    """
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    running = item.config.stash.get(_BROKER, None)
    if report.failed and running is not None and "broker" in getattr(item, "fixturenames", ()):
        log = running.log_tail(100)
        if log:
            report.sections.append(("broker log", log))


@pytest.fixture(autouse=True)
def empty_context_per_test() -> Iterator[None]:
    """Each test ends in the context it started in: a test whose consumer keeps its last
    process span current (as a consumer that is not closed does, by design) must not parent
    the spans of the tests after it."""
    before = otel_context.get_current()
    yield
    if otel_context.get_current() is not before:
        otel_context.attach(before)
