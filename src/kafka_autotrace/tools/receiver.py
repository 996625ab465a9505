"""A small OTLP/HTTP receiver (protobuf bodies, optionally gzip- or deflate-compressed: what
``OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf`` sends), so that the real exporters have something
to talk to where no collector runs.

:class:`OtlpServer` answers the exporters and hands each request to a sink;
:class:`OtlpReceiver` is the one ``kafka-autotrace view`` and the tests read, keeping what it
receives in memory, decoded (:mod:`kafka_autotrace.tools.otlp`). Requires the ``view`` extra.
"""

from __future__ import annotations

import gzip
import logging
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Protocol, TypeVar

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from kafka_autotrace.tools.otlp import (
    ReceivedEvent,
    ReceivedLink,
    ReceivedMetricPoint,
    ReceivedSpan,
    decode_metrics,
    decode_spans,
)

__all__ = [
    "METRICS_PATH",
    "TRACES_PATH",
    "OtlpReceiver",
    "OtlpServer",
    "OtlpSink",
    "ReceivedEvent",
    "ReceivedLink",
    "ReceivedMetricPoint",
    "ReceivedSpan",
]

_logger = logging.getLogger(__name__)

TRACES_PATH = "/v1/traces"
METRICS_PATH = "/v1/metrics"
_PROTOBUF = "application/x-protobuf"

# What a successful export is answered with: an empty response, i.e. no partial-success report.
_TRACES_RESPONSE: bytes = ExportTraceServiceResponse().SerializeToString()
_METRICS_RESPONSE: bytes = ExportMetricsServiceResponse().SerializeToString()

_M = TypeVar("_M", ExportTraceServiceRequest, ExportMetricsServiceRequest)


class OtlpSink(Protocol):
    """What an :class:`OtlpServer` does with the requests it receives; called on the server's
    request threads, before the exporter gets its answer."""

    def traces(self, request: ExportTraceServiceRequest) -> None: ...

    def metrics(self, request: ExportMetricsServiceRequest) -> None: ...

    def rejected(self, reason: str) -> None:
        """A request that was refused, and why."""
        ...


class _Rejected(Exception):
    """A request the receiver refuses; carries the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class _Server(ThreadingHTTPServer):
    def __init__(self, address: tuple[str, int], sink: OtlpSink, keep_alive: bool) -> None:
        super().__init__(address, _KeepAliveHandler if keep_alive else _Handler)
        self.sink = sink


class _Handler(BaseHTTPRequestHandler):
    """Speaks just enough OTLP/HTTP (protobuf encoding) for the standard exporters.

    HTTP/1.0 (one request per connection) unless the server keeps connections alive: stopping
    then never has to wait for, or strand, idle keep-alive connections.
    """

    server: _Server

    def do_POST(self) -> None:
        try:
            response = self._ingest()
        except _Rejected as exc:
            self.server.sink.rejected(f"{self.command} {self.path}: {exc.status} {exc}")
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
        sink = self.server.sink
        if path == TRACES_PATH:
            sink.traces(_parse(ExportTraceServiceRequest, body))
            return _TRACES_RESPONSE
        sink.metrics(_parse(ExportMetricsServiceRequest, body))
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


class _KeepAliveHandler(_Handler):
    protocol_version = "HTTP/1.1"


def _parse(message_type: type[_M], body: bytes) -> _M:
    try:
        message: _M = message_type.FromString(body)
    # Really google.protobuf's DecodeError, which cannot be named here: protobuf has no stubs.
    except Exception as exc:
        raise _Rejected(400, f"body is not a valid {message_type.__name__}: {exc}") from exc
    return message


class OtlpServer:
    """An OTLP/HTTP endpoint in a background thread, handing what it receives to ``sink``.

    Use it as a context manager and point exporters at :attr:`endpoint` (the *base* URL, as
    ``OTEL_EXPORTER_OTLP_ENDPOINT`` expects). Port 0 (the default) lets the OS pick a free
    port. ``keep_alive`` serves HTTP/1.1, as the exporters' sessions expect of a collector.
    """

    def __init__(
        self, sink: OtlpSink, host: str = "127.0.0.1", port: int = 0, keep_alive: bool = False
    ) -> None:
        self._sink = sink
        self._host = host
        self._port = port
        self._keep_alive = keep_alive
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> OtlpServer:
        if self._server is not None:
            raise RuntimeError(f"{type(self).__name__} is already running")
        server = _Server((self._host, self._port), self._sink, self._keep_alive)
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
        """Stop serving. Safe to call twice."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join()

    def __enter__(self) -> OtlpServer:
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
            raise RuntimeError(f"{type(self).__name__} is not running")
        return f"http://{self._host}:{self._server.server_address[1]}"


class _Store:
    """Everything received so far, decoded, shared between request threads and readers. A
    version counter bumped on every change lets readers sleep until something new arrives."""

    def __init__(self) -> None:
        self.changed = threading.Condition()
        self.version = 0
        self.spans: list[ReceivedSpan] = []
        self.points: list[ReceivedMetricPoint] = []
        self.rejections: list[str] = []

    def traces(self, request: ExportTraceServiceRequest) -> None:
        spans = decode_spans(request)
        with self.changed:
            self.spans.extend(spans)
            self._bump()

    def metrics(self, request: ExportMetricsServiceRequest) -> None:
        points = decode_metrics(request)
        with self.changed:
            self.points.extend(points)
            self._bump()

    def rejected(self, reason: str) -> None:
        with self.changed:
            self.rejections.append(reason)
            self._bump()

    def _bump(self) -> None:
        self.version += 1
        self.changed.notify_all()


class OtlpReceiver(OtlpServer):
    """An :class:`OtlpServer` that keeps the spans and metric points it receives, decoded, and
    the requests it refused, for :meth:`spans`, :meth:`metric_points` and :meth:`take_spans`."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._store = _Store()
        super().__init__(self._store, host, port)

    def __enter__(self) -> OtlpReceiver:
        self.start()
        return self

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
        store = self._store
        with store.changed:
            store.changed.wait_for(lambda: bool(store.spans), timeout)
            taken, store.spans = store.spans, []
            return taken

    def metric_points(self) -> list[ReceivedMetricPoint]:
        """A snapshot of every metric data point received so far, in arrival order."""
        with self._store.changed:
            return list(self._store.points)

    def rejections(self) -> list[str]:
        """Why each refused request was refused, in arrival order."""
        with self._store.changed:
            return list(self._store.rejections)

    @property
    def version(self) -> int:
        """A count that grows with every request received, accepted or refused."""
        with self._store.changed:
            return self._store.version

    def wait_for_change(self, seen: int, timeout: float) -> None:
        """Block until :attr:`version` is no longer ``seen``, or ``timeout`` seconds passed."""
        store = self._store
        with store.changed:
            store.changed.wait_for(lambda: store.version != seen, timeout)
