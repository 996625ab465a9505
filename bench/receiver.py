"""A counting OTLP/HTTP receiver for the benchmark, run in the driver's process.

The workers export through the real OTLP/HTTP exporters, as a service would; something has to
answer them. ``kafka_autotrace.tools.receiver.OtlpReceiver`` decodes and stores every span,
which is more than the benchmark needs: this one only counts the spans in each trace request
(to check that none was dropped on the way) and the metric requests, and answers 200 with an
empty response, as a collector that accepted everything does. It runs on threads of the
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
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

TRACES_PATH = "/v1/traces"
METRICS_PATH = "/v1/metrics"
_TRACES_RESPONSE = ExportTraceServiceResponse().SerializeToString()
_METRICS_RESPONSE = ExportMetricsServiceResponse().SerializeToString()


class CountingReceiver:
    """Counts spans and metric export requests until :meth:`reset`.

    ``with CountingReceiver() as receiver: ... receiver.endpoint`` is the base URL to give
    ``OTEL_EXPORTER_OTLP_ENDPOINT``; ``spans`` and ``metric_requests`` are the counts since the
    last reset. Keep-alive (HTTP/1.1), as the exporters' sessions expect of a collector.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.spans = 0
        self.trace_requests = 0
        self.metric_requests = 0
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
                    with receiver._lock:
                        receiver.metric_requests += 1
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

    def counts(self) -> dict[str, int]:
        with self._lock:
            return {
                "spans_received": self.spans,
                "trace_requests": self.trace_requests,
                "metric_requests": self.metric_requests,
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
