"""How opentelemetry-instrument finds and vets our instrumentors."""

from __future__ import annotations

import dataclasses
import logging
from importlib.metadata import distribution

import pytest
from opentelemetry.instrumentation.dependencies import get_dist_dependency_conflicts
from opentelemetry.util._importlib_metadata import entry_points

from kafka_autotrace.clients.registry import CLIENTS, KAFKA_PYTHON
from kafka_autotrace.core.instrumentor import KafkaClientInstrumentor
from kafka_autotrace.core.telemetry import KafkaTelemetry, TelemetrySlot


def _instrumentor_entry_points() -> dict[str, object]:
    # OpenTelemetry's entry_points(), which opentelemetry-instrument calls: the standard
    # library's takes no group= before Python 3.10.
    return {
        entry_point.name: entry_point
        for entry_point in entry_points(group="opentelemetry_instrumentor")
        if entry_point.value.startswith("kafka_autotrace.")
    }


def test_the_entry_points_are_the_registry_s_and_load_its_instrumentors() -> None:
    """pyproject.toml declares the entry points; the registry states the same facts for the
    doctor, the tests and the client matrix: the two must not drift apart."""
    registered = _instrumentor_entry_points()
    assert {name: ep.value for name, ep in registered.items()} == {  # type: ignore[attr-defined]
        client.entry_point: client.instrumentor for client in CLIENTS
    }
    for client in CLIENTS:
        instrumentor = registered[client.entry_point].load()  # type: ignore[attr-defined]
        assert issubclass(instrumentor, KafkaClientInstrumentor)
        assert instrumentor.client is client


def test_distribution_level_dependency_check_never_skips_us() -> None:
    """opentelemetry-instrument vets a distribution's ``instruments`` extra as a whole: had we
    listed both clients there, a service with only one of them would get no tracing at all."""
    assert get_dist_dependency_conflicts(distribution("kafka-autotrace")) is None


class _Recorder(KafkaClientInstrumentor):
    patched: list[KafkaTelemetry | None]

    def _patch(self) -> None:
        self.patched.append(self.telemetry_slot.telemetry)

    def _unpatch(self) -> None:
        self.patched.clear()


class _MissingClient(_Recorder):
    client = dataclasses.replace(KAFKA_PYTHON, requirement="kafka-autotrace-no-such-client >= 1")
    telemetry_slot = TelemetrySlot()
    patched: list[KafkaTelemetry | None] = []  # noqa: RUF012 - per-class record of _patch calls


class _TooOldClient(_Recorder):
    client = dataclasses.replace(KAFKA_PYTHON, requirement="pytest >= 999")
    telemetry_slot = TelemetrySlot()
    patched: list[KafkaTelemetry | None] = []  # noqa: RUF012 - per-class record of _patch calls


# opentelemetry-instrument vets the distribution itself and then instruments with
# skip_dep_check=True, so the per-client check below is the one that guards auto-instrumentation.


def test_a_missing_client_is_skipped_quietly(caplog: pytest.LogCaptureFixture) -> None:
    instrumentor = _MissingClient()
    with caplog.at_level(logging.DEBUG, logger="kafka_autotrace"):
        instrumentor.instrument(skip_dep_check=True)
    try:
        assert _MissingClient.patched == []
        assert "is not installed" in caplog.text
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    finally:
        instrumentor.uninstrument()


def test_an_unsupported_client_version_is_skipped_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    instrumentor = _TooOldClient()
    with caplog.at_level(logging.WARNING, logger="kafka_autotrace"):
        instrumentor.instrument(skip_dep_check=True)
    try:
        assert _TooOldClient.patched == []
        assert "is not supported" in caplog.text and "pytest >= 999" in caplog.text
    finally:
        instrumentor.uninstrument()
