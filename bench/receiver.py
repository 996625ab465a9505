"""A counting OTLP/HTTP receiver for the benchmark, run in the driver's process.

The workers export through the real OTLP/HTTP exporters, as a service would; something has to
answer them. ``kafka_autotrace.tools.receiver.OtlpReceiver`` decodes and stores every span,
which is more than the benchmark needs: this one only counts the spans in each trace request
(to check that none was dropped on the way) and, in the metric requests, the measurements that
kafka-autotrace's histograms handed the SDK (what the SDK's histogram floor is paid for per
message, budget and all), and answers 200 with an empty response, as a collector that accepted
everything does. It counts a request before answering it, and the exporters wait for the
answer, so a worker's counts are complete when it has exited. It runs on threads of the
driver (``bench/run.py``), never inside the measured worker, so its cost is not measured.
"""

from __future__ import annotations

import gzip
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from worker import FLOOR_HISTOGRAM, SCOPE

TRACES_PATH = "/v1/traces"
METRICS_PATH = "/v1/metrics"
_TRACES_RESPONSE = ExportTraceServiceResponse().SerializeToString()
_METRICS_RESPONSE = ExportMetricsServiceResponse().SerializeToString()

Stream = tuple[str, str, tuple[bytes, ...], int]
"""A histogram's data points over time: scope version, metric name, attributes, start time."""


def histogram_counts(request: ExportMetricsServiceRequest) -> dict[Stream, int]:
    """The ``count`` of every histogram data point in ``request`` from kafka-autotrace's meter
    (scope :data:`SCOPE`), the worker's floor histogram left out.

    Keyed by stream with its start time: an export of a cumulative stream repeats the count of
    the one before, so the last is kept rather than the two added; delta points each start
    afresh, so each has a key of its own."""
    counts: dict[Stream, int] = {}
    for resource in request.resource_metrics:
        for scope in resource.scope_metrics:
            if scope.scope.name != SCOPE:
                continue
            for metric in scope.metrics:
                if metric.name == FLOOR_HISTOGRAM:
                    continue
                for point in metric.histogram.data_points:
                    attributes = tuple(pair.SerializeToString() for pair in point.attributes)
                    stream = (
                        scope.scope.version,
                        metric.name,
                        attributes,
                        point.start_time_unix_nano,
                    )
                    counts[stream] = point.count
    return counts


class CountingReceiver:
    """Counts spans, metric export requests and histogram measurements until :meth:`reset`.

    ``with CountingReceiver() as receiver: ... receiver.endpoint`` is the base URL to give
    ``OTEL_EXPORTER_OTLP_ENDPOINT``; :meth:`counts` gives the counts since the last reset.
    Keep-alive (HTTP/1.1), as the exporters' sessions expect of a collector.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.spans = 0
        self.trace_requests = 0
        self.metric_requests = 0
        self._histograms: dict[Stream, int] = {}
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                encoding = (self.headers.get("Content-Encoding") or "").lower()
                if encoding == "gzip":
                    body = gzip.decompress(body)
                elif encoding == "deflate":
                    body = zlib.decompress(body)
                path = self.path.split("?", 1)[0]
                if path == TRACES_PATH:
                    request = ExportTraceServiceRequest()
                    request.ParseFromString(body)
                    count = sum(
                        len(scope.spans)
                        for resource in request.resource_spans
                        for scope in resource.scope_spans
                    )
                    with receiver._lock:
                        receiver.spans += count
                        receiver.trace_requests += 1
                    self._answer(200, _TRACES_RESPONSE)
                elif path == METRICS_PATH:
                    metrics = ExportMetricsServiceRequest()
                    metrics.ParseFromString(body)
                    counts = histogram_counts(metrics)
                    with receiver._lock:
                        receiver.metric_requests += 1
                        receiver._histograms.update(counts)
                    self._answer(200, _METRICS_RESPONSE)
                else:
                    self._answer(404, b"")

            def _answer(self, status: int, payload: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        host, port = self._server.server_address[:2]
        self.endpoint = f"http://{host!s}:{port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="bench-otlp-receiver", daemon=True
        )

    def reset(self) -> None:
        with self._lock:
            self.spans = self.trace_requests = self.metric_requests = 0
            self._histograms.clear()

    def counts(self) -> dict[str, int]:
        with self._lock:
            return {
                "spans_received": self.spans,
                "trace_requests": self.trace_requests,
                "metric_requests": self.metric_requests,
                "histogram_measurements": sum(self._histograms.values()),
            }

    def __enter__(self) -> CountingReceiver:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
