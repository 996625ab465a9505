"""An in-process OpenTelemetry SDK that keeps what it records, for tests that inspect spans
and metrics directly instead of through an exporter subprocess."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    ParentBased,
    Sampler,
    SamplingResult,
)
from opentelemetry.trace import Link, SpanContext, SpanKind, TraceState
from opentelemetry.util.types import Attributes

from kafka_autotrace.clients.registry import CLIENTS

INSTRUMENTORS = {client.distribution: client.load() for client in CLIENTS}
"""Each client's instrumentor, by client name, for tests that run against every client."""


class OpenSpans(SpanProcessor):  # type: ignore[misc]
    """The spans started and not yet ended: what a leak of open spans would leave behind."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: dict[tuple[int, int], str] = {}

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        with self._lock:
            self._open[_key(span)] = span.name

    def on_end(self, span: ReadableSpan) -> None:
        with self._lock:
            self._open.pop(_key(span), None)

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._open.values())


def _key(span: ReadableSpan) -> tuple[int, int]:
    # on_end gets a new ReadableSpan object: only the span context identifies the span.
    context = span.context
    return (context.trace_id, context.span_id) if context else (0, id(span))


class RecordingSampler(Sampler):  # type: ignore[misc]
    """The SDK's default sampler (parent-based, always on) until told to drop root spans;
    keeps the attributes each decision since the last :meth:`decide` was shown."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        self._delegate: Sampler = ParentBased(ALWAYS_ON)

    def decide(self, sampled: bool) -> None:
        self._delegate = ParentBased(ALWAYS_ON if sampled else ALWAYS_OFF)
        self.seen = []

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        self.seen.append(dict(attributes or {}))
        return self._delegate.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )

    def get_description(self) -> str:
        return "RecordingSampler"


@dataclass
class RecordingSdk:
    """A tracer and meter provider whose output stays in memory."""

    exporter: InMemorySpanExporter = field(default_factory=InMemorySpanExporter)
    reader: InMemoryMetricReader = field(default_factory=InMemoryMetricReader)
    tracer_provider: TracerProvider = field(
        default_factory=lambda: TracerProvider(sampler=RecordingSampler())
    )
    meter_provider: MeterProvider = field(init=False)
    open_spans: OpenSpans = field(default_factory=OpenSpans)

    def __post_init__(self) -> None:
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.tracer_provider.add_span_processor(self.open_spans)
        self.meter_provider = MeterProvider(metric_readers=[self.reader])

    @property
    def sampler(self) -> RecordingSampler:
        """The default provider's sampler (not there when a test passed its own provider)."""
        sampler = self.tracer_provider.sampler
        assert isinstance(sampler, RecordingSampler)
        return sampler

    def spans(self, name_prefix: str = "") -> list[ReadableSpan]:
        return [
            span for span in self.exporter.get_finished_spans() if span.name.startswith(name_prefix)
        ]

    def metric_points(self, name: str) -> list[Any]:
        """The data points of metric ``name`` collected so far (cumulative)."""
        data = self.reader.get_metrics_data()
        points: list[Any] = []
        for resource_metrics in data.resource_metrics if data else ():
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    if metric.name == name:
                        points.extend(metric.data.data_points)
        return points


def span_ids(spans: Iterable[ReadableSpan]) -> set[int]:
    return {span.context.span_id for span in spans}


@contextmanager
def instrumented(
    instrumentor: Any, sdk: RecordingSdk | None = None, **kwargs: Any
) -> Iterator[RecordingSdk]:
    """``instrumentor`` instrumented into ``sdk`` (a new one by default) for the block;
    ``kwargs`` go to ``instrument()``, e.g. ``settings=``."""
    recording = sdk or RecordingSdk()
    instrumentor.instrument(
        tracer_provider=recording.tracer_provider,
        meter_provider=recording.meter_provider,
        **kwargs,
    )
    try:
        yield recording
    finally:
        instrumentor.uninstrument()


def traceparent(context: SpanContext) -> bytes:
    """The ``traceparent`` header the W3C propagator writes for ``context``."""
    flags = int(context.trace_flags)
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{flags:02x}".encode()
