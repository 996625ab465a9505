"""Hand-timed spans from several services, exported over real OTLP/HTTP to a receiver.

Why: the waterfall and the viewer must be tested on what an exporter really sends (protobuf
through HTTP, decoded by :class:`~kafka_autotrace.tools.receiver.OtlpReceiver`), yet their output
depends on exact times and ids. The real SDK lets both be chosen: explicit start/end times and
an id generator that counts, so rendered text can be compared exactly.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.semconv._incubating.attributes.messaging_attributes import (
    MESSAGING_DESTINATION_NAME,
    MESSAGING_DESTINATION_PARTITION_ID,
    MESSAGING_KAFKA_MESSAGE_KEY,
    MESSAGING_KAFKA_OFFSET,
    MESSAGING_SYSTEM,
)
from opentelemetry.trace import (
    Link,
    Span,
    SpanKind,
    Status,
    StatusCode,
    Tracer,
    set_span_in_context,
)

from kafka_autotrace.tools.receiver import TRACES_PATH

T0 = 1_700_000_000_000_000_000
"""An arbitrary epoch time in ns; span times are given in ms after it."""


class CountingIds(IdGenerator):
    """Trace ids 1, 2, 3 … and span ids 1, 2, 3 … (hex ``…0001``), shared by all services."""

    def __init__(self) -> None:
        self._traces = itertools.count(1)
        self._spans = itertools.count(1)

    def generate_trace_id(self) -> int:
        return next(self._traces)

    def generate_span_id(self) -> int:
        return next(self._spans)


def trace_id(number: int) -> str:
    return format(number, "032x")


class Services:
    """One tracer provider per service name, all exporting synchronously to ``endpoint``, so a
    span is in the receiver as soon as :meth:`hop` returns."""

    def __init__(self, endpoint: str) -> None:
        self._endpoint = endpoint
        self._ids = CountingIds()
        self._providers: dict[str, TracerProvider] = {}

    def hop(
        self,
        service: str,
        name: str,
        kind: SpanKind,
        start_ms: float,
        end_ms: float,
        parent: Span | None = None,
        links: Sequence[Span] = (),
        error: str | None = None,
        partition: int | None = 0,
        offset: int | None = None,
        key: str | None = None,
        extra: Mapping[str, str | float] | None = None,
    ) -> Span:
        """A finished Kafka span (``messaging.system=kafka``) named like ours: "send orders",
        with ``extra`` attributes besides."""
        attributes: dict[str, str | int | float] = {
            MESSAGING_SYSTEM: "kafka",
            MESSAGING_DESTINATION_NAME: name.split(" ", 1)[-1],
        }
        if partition is not None:
            attributes[MESSAGING_DESTINATION_PARTITION_ID] = str(partition)
        if offset is not None:
            attributes[MESSAGING_KAFKA_OFFSET] = offset
        if key is not None:
            attributes[MESSAGING_KAFKA_MESSAGE_KEY] = key
        if error is not None:
            attributes["error.type"] = error
        attributes.update(extra or {})
        span = self._tracer(service).start_span(
            name,
            context=set_span_in_context(parent) if parent else Context(),
            kind=kind,
            attributes=attributes,
            links=[Link(linked.get_span_context()) for linked in links],
            start_time=T0 + int(start_ms * 1_000_000),
        )
        if error is not None:
            span.set_status(Status(StatusCode.ERROR, f"delivery failed: {error}"))
        span.end(end_time=T0 + int(end_ms * 1_000_000))
        return span

    def shutdown(self) -> None:
        for provider in self._providers.values():
            provider.shutdown()

    def _tracer(self, service: str) -> Tracer:
        provider = self._providers.get(service)
        if provider is None:
            provider = TracerProvider(
                resource=Resource.create({"service.name": service}), id_generator=self._ids
            )
            exporter = OTLPSpanExporter(endpoint=self._endpoint + TRACES_PATH)
            provider.add_span_processor(SimpleSpanProcessor(exporter))
            self._providers[service] = provider
        return provider.get_tracer("kafka_autotrace")
