"""The OTLP receiver, fed by the real OTLP/HTTP exporters of the OpenTelemetry SDK.

Every later end-to-end assertion trusts this decoding, so it is checked against what the SDK
itself says it exported (ids, times, parentage), not against hand-written expectations alone.
"""

from __future__ import annotations

import gzip
import http.client
import socket

import pytest
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList
from opentelemetry.proto.metrics.v1.metrics_pb2 import (
    ExponentialHistogram,
    ExponentialHistogramDataPoint,
    Metric,
    ResourceMetrics,
    ScopeMetrics,
    Summary,
    SummaryDataPoint,
)
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import (
    Link,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    set_span_in_context,
)
from opentelemetry.util.types import Attributes
from support.receiving import WaitingReceiver

from kafka_autotrace.tools.receiver import (
    METRICS_PATH,
    TRACES_PATH,
    OtlpReceiver,
    ReceivedEvent,
    ReceivedLink,
    ReceivedMetricPoint,
    ReceivedSpan,
)

SERVICE = "receiver-test"
PROTOBUF = {"Content-Type": "application/x-protobuf"}


def hex_ids(context: SpanContext) -> tuple[str, str]:
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


def post(
    receiver: OtlpReceiver, path: str, body: bytes, headers: dict[str, str]
) -> tuple[int, bytes]:
    host, port = receiver.endpoint.removeprefix("http://").rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def by_name(spans: list[ReceivedSpan]) -> dict[str, ReceivedSpan]:
    return {span.name: span for span in spans}


@pytest.mark.parametrize(
    "compression", [Compression.NoCompression, Compression.Gzip, Compression.Deflate]
)
def test_real_span_export_is_decoded(
    otlp_receiver: WaitingReceiver, compression: Compression
) -> None:
    provider = TracerProvider(resource=Resource.create({"service.name": SERVICE}))
    exporter = OTLPSpanExporter(
        endpoint=otlp_receiver.endpoint + TRACES_PATH, compression=compression
    )
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("receiver.test.scope")

    # Explicit parents, never the ambient context: a span another test left current on this
    # thread must not turn these roots into children.
    root = Context()
    linked = tracer.start_span("linked", context=root)
    linked.end()
    parent_attributes: Attributes = {
        "messaging.system": "kafka",
        "messaging.batch.message_count": 3,
        "ratio": 0.25,
        "retried": False,
        "tags": ("a", "b"),
        "raw": b"\x00\xff",
    }
    parent = tracer.start_span(
        "parent", context=root, kind=SpanKind.PRODUCER, attributes=parent_attributes
    )
    child = tracer.start_span(
        "child",
        context=set_span_in_context(parent, root),
        kind=SpanKind.CONSUMER,
        links=[Link(linked.get_span_context(), {"messaging.operation": "receive"})],
    )
    child.add_event("retry", {"attempt": 2})
    child.set_status(Status(StatusCode.ERROR, "boom"))
    child.end()
    parent.end()
    provider.shutdown()

    spans = by_name(otlp_receiver.wait_for_spans(lambda s: len(s) == 3, timeout=10))
    assert set(spans) == {"linked", "parent", "child"}
    linked_trace, linked_span = hex_ids(linked.get_span_context())
    parent_trace, parent_span = hex_ids(parent.get_span_context())
    child_trace, child_span = hex_ids(child.get_span_context())
    assert isinstance(parent, ReadableSpan)
    assert isinstance(child, ReadableSpan)

    got_parent = spans["parent"]
    assert (got_parent.trace_id, got_parent.span_id) == (parent_trace, parent_span)
    assert got_parent.parent_span_id == ""
    assert got_parent.kind == "PRODUCER"
    expected: dict[str, object] = {
        "messaging.system": "kafka",
        "messaging.batch.message_count": 3,
        "ratio": 0.25,
        "retried": False,
        "tags": ["a", "b"],
        "raw": b"\x00\xff",
    }
    if "raw" not in (parent.attributes or {}):
        del expected["raw"]  # older APIs (1.41, what Python 3.9 gets) drop bytes not UTF-8
    assert got_parent.attributes == expected
    assert got_parent.status_code == "UNSET"
    assert (got_parent.start_time_unix_nano, got_parent.end_time_unix_nano) == (
        parent.start_time,
        parent.end_time,
    )
    assert got_parent.service_name == SERVICE
    assert got_parent.scope_name == "receiver.test.scope"

    got_child = spans["child"]
    assert (got_child.trace_id, got_child.span_id) == (child_trace, child_span)
    assert got_child.trace_id == parent_trace
    assert got_child.parent_span_id == parent_span
    assert got_child.kind == "CONSUMER"
    assert (got_child.status_code, got_child.status_message) == ("ERROR", "boom")
    assert got_child.links == (
        ReceivedLink(linked_trace, linked_span, {"messaging.operation": "receive"}),
    )
    assert got_child.links[0] == (linked_trace, linked_span, {"messaging.operation": "receive"})
    assert got_child.events == (ReceivedEvent("retry", {"attempt": 2}),)
    assert got_child.start_time_unix_nano == child.start_time

    assert spans["linked"].kind == "INTERNAL"
    assert spans["linked"].trace_id != parent_trace


def test_real_metric_export_is_decoded(otlp_receiver: WaitingReceiver) -> None:
    exporter = OTLPMetricExporter(endpoint=otlp_receiver.endpoint + METRICS_PATH)
    # An interval far beyond the test: the only exports are the explicit flush and shutdown.
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
    provider = MeterProvider(
        resource=Resource.create({"service.name": SERVICE}), metric_readers=[reader]
    )
    meter = provider.get_meter("receiver.test.meter")
    counter = meter.create_counter("messages.sent", unit="{message}")
    counter.add(3, {"topic": "orders"})
    counter.add(2, {"topic": "orders"})
    histogram = meter.create_histogram("send.duration", unit="s")
    histogram.record(0.5, {"topic": "orders"})
    histogram.record(1.5, {"topic": "orders"})
    meter.create_gauge("lag", unit="{message}").set(7.5)
    assert provider.force_flush()
    provider.shutdown()

    def first(points: list[ReceivedMetricPoint], name: str) -> ReceivedMetricPoint:
        return next(point for point in points if point.name == name)

    points = otlp_receiver.wait_for_metric_points(
        lambda ps: {"messages.sent", "send.duration", "lag"} <= {p.name for p in ps}
    )
    sent = first(points, "messages.sent")
    assert (sent.kind, sent.value, sent.unit) == ("SUM", 5, "{message}")
    assert isinstance(sent.value, int)
    assert sent.attributes == {"topic": "orders"}
    assert (sent.service_name, sent.scope_name) == (SERVICE, "receiver.test.meter")
    assert (sent.count, sent.sum) == (None, None)

    duration = first(points, "send.duration")
    assert (duration.kind, duration.count, duration.sum, duration.value) == (
        "HISTOGRAM",
        2,
        2.0,
        None,
    )
    assert duration.unit == "s"

    lag = first(points, "lag")
    assert (lag.kind, lag.value) == ("GAUGE", 7.5)


def test_uncommon_values_and_metric_types_are_decoded(otlp_receiver: WaitingReceiver) -> None:
    """Shapes the Python SDK rarely emits but other SDKs and collectors forward."""

    def kv(key: str, value: AnyValue) -> KeyValue:
        return KeyValue(key=key, value=value)

    trace_request = ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                scope_spans=[
                    ScopeSpans(
                        spans=[
                            Span(
                                trace_id=bytes(range(16)),
                                span_id=bytes(range(8)),
                                name="raw",
                                kind=Span.SpanKind.SPAN_KIND_SERVER,
                                attributes=[
                                    kv("empty", AnyValue()),
                                    kv(
                                        "nested",
                                        AnyValue(
                                            kvlist_value=KeyValueList(
                                                values=[kv("n", AnyValue(int_value=1))]
                                            )
                                        ),
                                    ),
                                    kv(
                                        "mixed",
                                        AnyValue(
                                            array_value=ArrayValue(
                                                values=[
                                                    AnyValue(double_value=1.5),
                                                    AnyValue(bool_value=True),
                                                ]
                                            )
                                        ),
                                    ),
                                ],
                            )
                        ]
                    )
                ]
            )
        ]
    )
    status, _ = post(otlp_receiver, TRACES_PATH, trace_request.SerializeToString(), PROTOBUF)
    assert status == 200
    (span,) = otlp_receiver.spans()
    assert (span.trace_id, span.span_id) == ("000102030405060708090a0b0c0d0e0f", "0001020304050607")
    assert (span.kind, span.service_name, span.links, span.events) == ("SERVER", "", (), ())
    assert span.attributes == {"empty": None, "nested": {"n": 1}, "mixed": [1.5, True]}

    metric_request = ExportMetricsServiceRequest(
        resource_metrics=[
            ResourceMetrics(
                scope_metrics=[
                    ScopeMetrics(
                        metrics=[
                            Metric(
                                name="exp",
                                exponential_histogram=ExponentialHistogram(
                                    data_points=[ExponentialHistogramDataPoint(count=4, sum=10.0)]
                                ),
                            ),
                            Metric(
                                name="exp.nosum",
                                exponential_histogram=ExponentialHistogram(
                                    data_points=[ExponentialHistogramDataPoint(count=1)]
                                ),
                            ),
                            Metric(
                                name="summary",
                                summary=Summary(data_points=[SummaryDataPoint(count=2, sum=3.0)]),
                            ),
                        ]
                    )
                ]
            )
        ]
    )
    body = gzip.compress(metric_request.SerializeToString())
    status, _ = post(otlp_receiver, METRICS_PATH, body, {**PROTOBUF, "Content-Encoding": "gzip"})
    assert status == 200
    assert [(p.name, p.kind, p.count, p.sum) for p in otlp_receiver.metric_points()] == [
        ("exp", "EXPONENTIAL_HISTOGRAM", 4, 10.0),
        ("exp.nosum", "EXPONENTIAL_HISTOGRAM", 1, None),
        ("summary", "SUMMARY", 2, 3.0),
    ]


@pytest.mark.parametrize(
    ("path", "headers", "body", "expected_status"),
    [
        ("/v1/logs", PROTOBUF, b"", 404),
        (TRACES_PATH, {"Content-Type": "application/json"}, b"{}", 415),
        (TRACES_PATH, PROTOBUF, b"\xff\xff\xff", 400),
        (METRICS_PATH, {**PROTOBUF, "Content-Encoding": "gzip"}, b"not gzip", 400),
        (METRICS_PATH, {**PROTOBUF, "Content-Encoding": "br"}, b"", 415),
    ],
)
def test_bad_requests_are_rejected_and_reported(
    otlp_receiver: WaitingReceiver,
    path: str,
    headers: dict[str, str],
    body: bytes,
    expected_status: int,
) -> None:
    status, _ = post(otlp_receiver, path, body, headers)
    assert status == expected_status
    with pytest.raises(TimeoutError, match=rf"rejected 1 request\(s\), last: POST {path}: "):
        otlp_receiver.wait_for_spans(lambda spans: bool(spans), timeout=0.1)


def test_request_without_content_length_is_rejected(otlp_receiver: WaitingReceiver) -> None:
    host, port = otlp_receiver.endpoint.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(b"POST /v1/traces HTTP/1.0\r\nContent-Type: application/x-protobuf\r\n\r\n")
        status_line = sock.makefile("rb").readline()
    assert status_line.split()[1] == b"411"


def test_wait_for_spans_timeout_lists_what_arrived(otlp_receiver: WaitingReceiver) -> None:
    provider = TracerProvider(resource=Resource.create({"service.name": SERVICE}))
    exporter = OTLPSpanExporter(endpoint=otlp_receiver.endpoint + TRACES_PATH)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    provider.get_tracer("t").start_span("only-span", context=Context()).end()
    provider.shutdown()

    assert len(otlp_receiver.wait_for_spans(lambda spans: len(spans) == 1, timeout=5)) == 1
    with pytest.raises(TimeoutError) as raised:
        otlp_receiver.wait_for_spans(lambda spans: len(spans) == 2, timeout=0.2)
    message = str(raised.value)
    assert "waiting for spans; received 1:" in message
    assert f"[{SERVICE}] INTERNAL 'only-span' status=UNSET" in message


def test_lifecycle() -> None:
    receiver = OtlpReceiver()
    with pytest.raises(RuntimeError, match="not running"):
        _ = receiver.endpoint
    with receiver:
        endpoint = receiver.endpoint
        assert endpoint.startswith("http://127.0.0.1:")
        with pytest.raises(RuntimeError, match="already running"):
            receiver.start()
        status, body = post(
            receiver, TRACES_PATH, ExportTraceServiceRequest().SerializeToString(), PROTOBUF
        )
        assert (status, body) == (200, b"")
    receiver.stop()  # idempotent
    host, port = endpoint.removeprefix("http://").rsplit(":", 1)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((host, int(port)), timeout=2).close()
    assert receiver.spans() == []
