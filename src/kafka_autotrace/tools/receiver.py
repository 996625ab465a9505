"""A small, dependency-light OTLP/HTTP receiver that keeps what it receives in memory.

Why this exists: verifying an instrumentation end to end needs the *real* exporters to talk to
something, and a full OpenTelemetry Collector (or Jaeger) is not available everywhere the tests
run. Receiving the real protobuf wire format, rather than swapping in an in-memory SDK exporter,
means the tests also prove that the data survives serialisation exactly as a backend would see
it. The same module is the basis of the ``kafka-autotrace view`` command, so it is a proper,
typed module rather than a test helper.

Only OTLP/HTTP with protobuf bodies is accepted (optionally gzip- or deflate-compressed), which
is what ``OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf`` produces. Decoded data is stored as frozen
plain dataclasses so callers never need the protobuf classes themselves.

Requires the optional ``opentelemetry-proto`` dependency (``pip install kafka-autotrace[view]``).
"""

from __future__ import annotations

import gzip
import logging
import threading
import time
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Callable, NamedTuple, TypeVar

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import Metric
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

__all__ = [
    "METRICS_PATH",
    "TRACES_PATH",
    "OtlpReceiver",
    "ReceivedEvent",
    "ReceivedLink",
    "ReceivedMetricPoint",
    "ReceivedSpan",
]

_logger = logging.getLogger(__name__)

TRACES_PATH = "/v1/traces"
METRICS_PATH = "/v1/metrics"
_PROTOBUF = "application/x-protobuf"

# Names without the protobuf prefixes, so assertions read like the OTel API ("PRODUCER", "ERROR").
_SPAN_KINDS = {number: name.removeprefix("SPAN_KIND_") for name, number in Span.SpanKind.items()}
_STATUS_CODES = {
    number: name.removeprefix("STATUS_CODE_") for name, number in Status.StatusCode.items()
}

# What a successful export is answered with: an empty response, i.e. no partial-success report.
_TRACES_RESPONSE: bytes = ExportTraceServiceResponse().SerializeToString()
_METRICS_RESPONSE: bytes = ExportMetricsServiceResponse().SerializeToString()

_T = TypeVar("_T")
_M = TypeVar("_M", ExportTraceServiceRequest, ExportMetricsServiceRequest)


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


class _Rejected(Exception):
    """A request the receiver refuses; carries the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class _Store:
    """Everything received so far, shared between handler threads and readers.

    A version counter bumped on every change lets waiters sleep until something new arrives
    instead of re-evaluating their predicate in a busy loop.
    """

    def __init__(self) -> None:
        self.changed = threading.Condition()
        self.version = 0
        self.spans: list[ReceivedSpan] = []
        self.points: list[ReceivedMetricPoint] = []
        self.rejections: list[str] = []

    def add_spans(self, spans: Iterable[ReceivedSpan]) -> None:
        with self.changed:
            self.spans.extend(spans)
            self._bump()

    def add_points(self, points: Iterable[ReceivedMetricPoint]) -> None:
        with self.changed:
            self.points.extend(points)
            self._bump()

    def add_rejection(self, reason: str) -> None:
        with self.changed:
            self.rejections.append(reason)
            self._bump()

    def take_spans(self, timeout: float) -> list[ReceivedSpan]:
        with self.changed:
            self.changed.wait_for(lambda: bool(self.spans), timeout)
            taken, self.spans = self.spans, []
            return taken

    def wait_for_change(self, seen_version: int, timeout: float) -> None:
        with self.changed:
            self.changed.wait_for(lambda: self.version != seen_version, timeout)

    def _bump(self) -> None:
        self.version += 1
        self.changed.notify_all()


class _Server(ThreadingHTTPServer):
    def __init__(self, address: tuple[str, int], store: _Store) -> None:
        super().__init__(address, _Handler)
        self.store = store


class _Handler(BaseHTTPRequestHandler):
    """Speaks just enough OTLP/HTTP (protobuf encoding) for the standard exporters.

    Stays on HTTP/1.0 (one request per connection): stopping the receiver then never has to wait
    for, or strand, idle keep-alive connections.
    """

    server: _Server

    def do_POST(self) -> None:
        try:
            response = self._ingest()
        except _Rejected as exc:
            self.server.store.add_rejection(f"{self.command} {self.path}: {exc.status} {exc}")
            self._reply(exc.status, str(exc).encode(), "text/plain; charset=utf-8")
        else:
            self._reply(200, response, _PROTOBUF)

    def _ingest(self) -> bytes:
        path = self.path.split("?", 1)[0]
        if path not in (TRACES_PATH, METRICS_PATH):
            raise _Rejected(404, f"no OTLP signal at {path}; use {TRACES_PATH} or {METRICS_PATH}")
        content_type = self.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
        if content_type != _PROTOBUF:
            raise _Rejected(415, f"only {_PROTOBUF} is supported, got {content_type or 'none'}")
        body = self._read_body()
        store = self.server.store
        if path == TRACES_PATH:
            store.add_spans(_decode_spans(_parse(ExportTraceServiceRequest, body)))
            return _TRACES_RESPONSE
        store.add_points(_decode_metrics(_parse(ExportMetricsServiceRequest, body)))
        return _METRICS_RESPONSE

    def _read_body(self) -> bytes:
        length = self.headers.get("Content-Length")
        if length is None or not length.strip().isdigit():
            raise _Rejected(411, "a numeric Content-Length is required")
        raw = self.rfile.read(int(length))
        encoding = self.headers.get("Content-Encoding", "identity").strip().lower()
        try:
            if encoding == "gzip":
                return gzip.decompress(raw)
            if encoding == "deflate":
                return zlib.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise _Rejected(400, f"cannot decompress {encoding} body: {exc}") from exc
        if encoding in ("", "identity"):
            return raw
        raise _Rejected(415, f"unsupported Content-Encoding {encoding}")

    def _reply(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        # The base class writes every request to stderr, which would drown test output.
        _logger.debug("%s - " + format, self.address_string(), *args)


class OtlpReceiver:
    """An OTLP/HTTP endpoint in a background thread, collecting spans and metric points.

    Use it as a context manager, point exporters at :attr:`endpoint` (it is the *base* URL, as
    ``OTEL_EXPORTER_OTLP_ENDPOINT`` expects; exporters append ``/v1/traces`` themselves), then
    read :meth:`spans` / :meth:`metric_points` or block in :meth:`wait_for_spans`.

    Port 0 (the default) lets the OS pick a free port, so parallel receivers never collide.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._host = host
        self._port = port
        self._store = _Store()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> OtlpReceiver:
        if self._server is not None:
            raise RuntimeError("OtlpReceiver is already running")
        server = _Server((self._host, self._port), self._store)
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},  # keeps stop() fast
            name=f"otlp-receiver-{server.server_address[1]}",
            daemon=True,
        )
        self._server = server
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; data received so far stays readable. Safe to call twice."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join()

    def __enter__(self) -> OtlpReceiver:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def endpoint(self) -> str:
        """Base URL such as ``http://127.0.0.1:41234``; only valid while running."""
        if self._server is None:
            raise RuntimeError("OtlpReceiver is not running")
        return f"http://{self._host}:{self._server.server_address[1]}"

    def spans(self) -> list[ReceivedSpan]:
        """A snapshot of every span received so far, in arrival order."""
        with self._store.changed:
            return list(self._store.spans)

    def take_spans(self, timeout: float = 0.0) -> list[ReceivedSpan]:
        """Remove and return the spans received so far, waiting up to ``timeout`` seconds for
        at least one (an empty list when none came).

        For long-running readers such as ``kafka-autotrace view``: what was taken is no longer
        kept, so memory does not grow with everything ever received. Taken spans no longer
        appear in :meth:`spans`.
        """
        return self._store.take_spans(timeout)

    def metric_points(self) -> list[ReceivedMetricPoint]:
        """A snapshot of every metric data point received so far, in arrival order."""
        with self._store.changed:
            return list(self._store.points)

    def wait_for_spans(
        self, predicate: Callable[[list[ReceivedSpan]], bool], timeout: float = 10.0
    ) -> list[ReceivedSpan]:
        """Block until ``predicate(spans)`` holds, then return that snapshot.

        Exporters batch and send asynchronously, so tests must wait for a *condition* rather
        than sleep for a guessed time. On timeout the error lists what did arrive, which is
        usually enough to see why the condition never held.
        """
        return self._wait(self.spans, predicate, timeout, "spans", _describe_span)

    def wait_for_metric_points(
        self, predicate: Callable[[list[ReceivedMetricPoint]], bool], timeout: float = 10.0
    ) -> list[ReceivedMetricPoint]:
        """Like :meth:`wait_for_spans`, for metric points (which arrive once per interval)."""
        return self._wait(self.metric_points, predicate, timeout, "metric points", _describe_point)

    def _wait(
        self,
        snapshot: Callable[[], list[_T]],
        predicate: Callable[[list[_T]], bool],
        timeout: float,
        what: str,
        describe: Callable[[_T], str],
    ) -> list[_T]:
        deadline = time.monotonic() + timeout
        while True:
            with self._store.changed:
                version = self._store.version
            items = snapshot()
            # The predicate runs outside the lock: it is caller code and may be slow.
            if predicate(items):
                return items
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(self._timeout_summary(items, timeout, what, describe))
            self._store.wait_for_change(version, remaining)

    def _timeout_summary(
        self, items: list[_T], timeout: float, what: str, describe: Callable[[_T], str]
    ) -> str:
        limit = 40
        lines = [f"timed out after {timeout:g} s waiting for {what}; received {len(items)}:"]
        lines += [f"  {describe(item)}" for item in items[:limit]]
        if len(items) > limit:
            lines.append(f"  ... and {len(items) - limit} more")
        with self._store.changed:
            rejections = list(self._store.rejections)
        if rejections:
            lines.append(f"rejected {len(rejections)} request(s), last: {rejections[-1]}")
        return "\n".join(lines)


def _describe_span(span: ReceivedSpan) -> str:
    parent = span.parent_span_id or "root"
    return (
        f"[{span.service_name}] {span.kind} {span.name!r} status={span.status_code} "
        f"trace={span.trace_id} span={span.span_id} parent={parent}"
    )


def _describe_point(point: ReceivedMetricPoint) -> str:
    shown = f"value={point.value}" if point.value is not None else f"count={point.count}"
    return f"[{point.service_name}] {point.kind} {point.name} {shown} {point.attributes}"


def _parse(message_type: type[_M], body: bytes) -> _M:
    try:
        message: _M = message_type.FromString(body)
    # Really google.protobuf's DecodeError, which cannot be named here: protobuf has no stubs.
    except Exception as exc:
        raise _Rejected(400, f"body is not a valid {message_type.__name__}: {exc}") from exc
    return message


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


def _decode_spans(request: ExportTraceServiceRequest) -> list[ReceivedSpan]:
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


def _decode_metrics(request: ExportMetricsServiceRequest) -> list[ReceivedMetricPoint]:
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
