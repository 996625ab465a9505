"""The shape of one client library's entry in the registry: plain data, stated once."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from kafka_autotrace.clients.probes import Reached
    from kafka_autotrace.core.instrumentor import KafkaClientInstrumentor


@dataclass(frozen=True)
class Upstream:
    """The contrib instrumentor of the same client, e.g. ``opentelemetry.instrumentation.kafka``
    ``KafkaInstrumentor``, registered as entry point ``kafka`` by
    ``opentelemetry-instrumentation-kafka-python``."""

    module: str
    class_name: str
    entry_point: str
    distribution: str


@dataclass(frozen=True)
class ClientSpec:
    """The facts about one supported client library, stated once."""

    distribution: str
    """Its distribution name, e.g. ``kafka-python``."""
    requirement: str
    """The supported range, e.g. ``"kafka-python >= 2.0.2, < 4"``."""
    entry_point: str
    """Our ``opentelemetry_instrumentor`` entry point name for it."""
    instrumentor: str
    """Where that entry point leads, as ``module:attribute``."""
    upstream: Upstream
    """The contrib instrumentor we take over from."""
    tested_releases: tuple[str, ...]
    """Releases the test suite runs against besides the newest (the oldest supported first)."""
    probe: str
    """Where the doctor's broker probe for it is, as ``module:function``: ``probe(bootstrap
    servers, timeout s)`` reaches the broker as an application would, or raises."""
    negotiates_api_version: bool = False
    """Whether its probe learns the broker's API version, which the doctor's record header
    check needs."""

    def load(self) -> type[KafkaClientInstrumentor]:
        """The instrumentor class, imported as ``opentelemetry-instrument`` would."""
        loaded: type[KafkaClientInstrumentor] = _attribute(self.instrumentor)
        return loaded

    def load_probe(self) -> Callable[[str, float], Reached]:
        """The probe, imported only when called for: it imports the client library."""
        probe: Callable[[str, float], Reached] = _attribute(self.probe)
        return probe


def _attribute(reference: str) -> Any:
    module, _, attribute = reference.partition(":")
    return getattr(importlib.import_module(module), attribute)
