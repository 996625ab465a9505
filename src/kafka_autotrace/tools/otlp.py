"""OTLP export requests decoded into plain, frozen values, as a backend would see them, so
that readers never need the protobuf classes (the ``view`` extra's ``opentelemetry-proto``)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import Metric
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

__all__ = [
    "ReceivedEvent",
    "ReceivedLink",
    "ReceivedMetricPoint",
    "ReceivedSpan",
    "decode_metrics",
    "decode_spans",
]

# Names without the protobuf prefixes, so assertions read like the OTel API ("PRODUCER", "ERROR").
_SPAN_KINDS = {number: name.removeprefix("SPAN_KIND_") for name, number in Span.SpanKind.items()}
_STATUS_CODES = {
    number: name.removeprefix("STATUS_CODE_") for name, number in Status.StatusCode.items()
}


class ReceivedLink(NamedTuple):
    """A span link. A tuple, so it compares equal to ``(trace_id, span_id, attributes)``."""

    trace_id: str
    span_id: str
    attributes: dict[str, Any]


class ReceivedEvent(NamedTuple):
    """A span event. A tuple, so it compares equal to ``(name, attributes)``."""

    name: str
    attributes: dict[str, Any]


@dataclass(frozen=True)
class ReceivedSpan:
    """One span as a backend would see it.

    Ids are lowercase hex (the form every trace UI and W3C ``traceparent`` uses), so they can be
    compared with ``format(span_context.trace_id, "032x")`` directly. ``parent_span_id`` is ""
    for root spans. ``kind`` and ``status_code`` are the enum names without their protobuf
    prefixes, e.g. "CONSUMER" and "ERROR".
    """

    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    kind: str
    start_time_unix_nano: int
    end_time_unix_nano: int
    attributes: dict[str, Any]
    status_code: str
    status_message: str
    links: tuple[ReceivedLink, ...]
    events: tuple[ReceivedEvent, ...]
    service_name: str
    scope_name: str


@dataclass(frozen=True)
class ReceivedMetricPoint:
    """One data point of one metric in one export.

    Exporters resend cumulative points on every interval, so the same series shows up repeatedly
    with growing values; ``time_unix_nano`` tells the exports apart. ``value`` is set for sums
    and gauges; ``count`` and ``sum`` for histograms and summaries (``sum`` may be None when the
    exporter omitted it, which OTLP allows).
    """

    name: str
    kind: str
    unit: str
    service_name: str
    scope_name: str
    attributes: dict[str, Any]
    time_unix_nano: int
    value: int | float | None
    count: int | None
    sum: float | None


def _any_value(value: AnyValue) -> Any:
    field = value.WhichOneof("value")
    if field is None:
        return None
    if field == "array_value":
        return [_any_value(item) for item in value.array_value.values]
    if field == "kvlist_value":
        return _attributes(value.kvlist_value.values)
    return getattr(value, field)


def _attributes(key_values: Iterable[KeyValue]) -> dict[str, Any]:
    return {kv.key: _any_value(kv.value) for kv in key_values}


def _service_name(resource_attributes: Iterable[KeyValue]) -> str:
    return str(_attributes(resource_attributes).get("service.name", ""))


def decode_spans(request: ExportTraceServiceRequest) -> list[ReceivedSpan]:
    spans = []
    for resource_spans in request.resource_spans:
        service = _service_name(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans.append(
                    ReceivedSpan(
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_span_id=span.parent_span_id.hex(),
                        name=span.name,
                        kind=_SPAN_KINDS.get(span.kind, str(span.kind)),
                        start_time_unix_nano=span.start_time_unix_nano,
                        end_time_unix_nano=span.end_time_unix_nano,
                        attributes=_attributes(span.attributes),
                        status_code=_STATUS_CODES.get(span.status.code, str(span.status.code)),
                        status_message=span.status.message,
                        links=tuple(
                            ReceivedLink(
                                link.trace_id.hex(),
                                link.span_id.hex(),
                                _attributes(link.attributes),
                            )
                            for link in span.links
                        ),
                        events=tuple(
                            ReceivedEvent(event.name, _attributes(event.attributes))
                            for event in span.events
                        ),
                        service_name=service,
                        scope_name=scope_spans.scope.name,
                    )
                )
    return spans


def decode_metrics(request: ExportMetricsServiceRequest) -> list[ReceivedMetricPoint]:
    points: list[ReceivedMetricPoint] = []
    for resource_metrics in request.resource_metrics:
        service = _service_name(resource_metrics.resource.attributes)
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                points.extend(_metric_points(metric, service, scope_metrics.scope.name))
    return points


def _metric_points(metric: Metric, service: str, scope: str) -> Iterator[ReceivedMetricPoint]:
    def point(
        kind: str,
        data_point: Any,
        value: float | None = None,
        count: int | None = None,
        total: float | None = None,
    ) -> ReceivedMetricPoint:
        return ReceivedMetricPoint(
            name=metric.name,
            kind=kind,
            unit=metric.unit,
            service_name=service,
            scope_name=scope,
            attributes=_attributes(data_point.attributes),
            time_unix_nano=data_point.time_unix_nano,
            value=value,
            count=count,
            sum=total,
        )

    def optional_sum(data_point: Any) -> float | None:
        # Histogram sums are optional in OTLP (e.g. omitted when negative values were recorded).
        return data_point.sum if data_point.HasField("sum") else None

    data = metric.WhichOneof("data")
    if data in ("sum", "gauge"):
        for p in (metric.sum if data == "sum" else metric.gauge).data_points:
            yield point(
                data.upper(), p, p.as_int if p.WhichOneof("value") == "as_int" else p.as_double
            )
    elif data == "histogram":
        for h in metric.histogram.data_points:
            yield point("HISTOGRAM", h, count=h.count, total=optional_sum(h))
    elif data == "exponential_histogram":
        for e in metric.exponential_histogram.data_points:
            yield point("EXPONENTIAL_HISTOGRAM", e, count=e.count, total=optional_sum(e))
    elif data == "summary":
        for s in metric.summary.data_points:
            yield point("SUMMARY", s, count=s.count, total=s.sum)
