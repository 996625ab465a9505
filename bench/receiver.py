"""A counting OTLP sink for the benchmark, served by the receiver core of
``kafka_autotrace.tools.receiver`` in the driver's process.

The workers export through the real OTLP/HTTP exporters, as a service would; something has to
answer them. Decoding and storing every span, as ``kafka-autotrace view``'s receiver does, is
more than the benchmark needs: this sink only counts the spans in each trace request (to check
that none was dropped on the way) and, in the metric requests, the measurements that
kafka-autotrace's histograms handed the SDK (what the SDK's histogram floor is paid for per
message, budget and all). A request is counted before it is answered, and the exporters wait
for the answer, so a worker's counts are complete when it has exited. It runs on threads of the
driver (``bench/run.py``), never inside the measured worker, so its cost is not measured.
"""

from __future__ import annotations

import threading

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from worker import FLOOR_HISTOGRAM, SCOPE

from kafka_autotrace.tools.receiver import OtlpServer

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


class Counts:
    """Counts spans, metric export requests and histogram measurements until :meth:`reset`:
    the sink of :class:`CountingReceiver`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._spans = 0
        self._trace_requests = 0
        self._metric_requests = 0
        self._histograms: dict[Stream, int] = {}

    def traces(self, request: ExportTraceServiceRequest) -> None:
        count = sum(
            len(scope.spans)
            for resource in request.resource_spans
            for scope in resource.scope_spans
        )
        with self._lock:
            self._spans += count
            self._trace_requests += 1

    def metrics(self, request: ExportMetricsServiceRequest) -> None:
        counts = histogram_counts(request)
        with self._lock:
            self._metric_requests += 1
            self._histograms.update(counts)

    def rejected(self, reason: str) -> None:
        """Nothing to count: the exporters' requests are never refused."""

    def reset(self) -> None:
        with self._lock:
            self._spans = self._trace_requests = self._metric_requests = 0
            self._histograms.clear()

    def read(self) -> dict[str, int]:
        with self._lock:
            return {
                "spans_received": self._spans,
                "trace_requests": self._trace_requests,
                "metric_requests": self._metric_requests,
                "histogram_measurements": sum(self._histograms.values()),
            }


class CountingReceiver(OtlpServer):
    """``with CountingReceiver() as receiver: ... receiver.endpoint`` is the base URL to give
    ``OTEL_EXPORTER_OTLP_ENDPOINT``; :attr:`counts` counts what arrives. Keeps connections
    alive, as the exporters' sessions expect of a collector."""

    def __init__(self) -> None:
        self.counts = Counts()
        super().__init__(self.counts, keep_alive=True)

    def __enter__(self) -> CountingReceiver:
        self.start()
        return self
