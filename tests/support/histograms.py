"""Histograms as exported over OTLP, with their buckets.

Why: :class:`~kafka_autotrace.tools.receiver.OtlpReceiver` keeps a histogram's count and sum only,
but a claim such as "every message waited at least 0.3 s" is about the distribution: which
buckets have observations, and the exported min and max. :class:`HistogramReceiver` is an
OTLP/HTTP endpoint that keeps the metric exports it answers and decodes their histograms whole.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Any

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)

from kafka_autotrace.tools.receiver import METRICS_PATH, ReceivedMetricPoint
from support.network import OtlpSink


@dataclass(frozen=True)
class HistogramPoint(ReceivedMetricPoint):
    """A histogram data point as the receiver's, plus its buckets: ``bounds`` are the upper
    bounds of all buckets but the last, which is unbounded. ``minimum`` and ``maximum`` are
    None when not exported."""

    bounds: tuple[float, ...]
    bucket_counts: tuple[int, ...]
    minimum: float | None
    maximum: float | None

    def observations_up_to(self, limit: float) -> int:
        """How many observations lie in buckets that end at or below ``limit``: a lower
        bound on those <= ``limit``, exact when ``limit`` is a bucket boundary."""
        upper = (*self.bounds, math.inf)
        return sum(n for bound, n in zip(upper, self.bucket_counts) if bound <= limit)


class HistogramReceiver(OtlpSink):
    """An OTLP/HTTP endpoint keeping every histogram point it is sent; ``endpoint`` is the base
    URL for ``OTEL_EXPORTER_OTLP_ENDPOINT``. Other signals are answered and dropped."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._points: list[HistogramPoint] = []
        super().__init__(keep=self._keep)

    def points(self, name: str, service_name: str | None = None) -> list[HistogramPoint]:
        """The points of histogram ``name`` (of one service, if given), in arrival order."""
        with self._lock:
            return [
                point
                for point in self._points
                if point.name == name and service_name in (None, point.service_name)
            ]

    def latest(self, name: str, service_name: str, **attributes: Any) -> HistogramPoint:
        """The last exported point of the series with these attributes: with cumulative
        export, everything it recorded. Fails the test if there is none."""
        matching = [
            point
            for point in self.points(name, service_name)
            if all(point.attributes.get(key) == value for key, value in attributes.items())
        ]
        seen = {p.service_name: p.attributes for p in self.points(name)}
        assert matching, f"no {name} point of {service_name} with {attributes}; seen: {seen}"
        return max(matching, key=lambda point: point.time_unix_nano)

    def _keep(self, path: str, body: bytes) -> None:
        if path.split("?", 1)[0] != METRICS_PATH:
            return
        decoded = _histogram_points(ExportMetricsServiceRequest.FromString(body))
        with self._lock:
            self._points.extend(decoded)


def _attributes(key_values: Any) -> dict[str, Any]:
    return {kv.key: getattr(kv.value, kv.value.WhichOneof("value")) for kv in key_values}


def _histogram_points(request: ExportMetricsServiceRequest) -> list[HistogramPoint]:
    points = []
    for resource_metrics in request.resource_metrics:
        service = _attributes(resource_metrics.resource.attributes).get("service.name", "")
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                if metric.WhichOneof("data") != "histogram":
                    continue
                for point in metric.histogram.data_points:
                    points.append(
                        HistogramPoint(
                            name=metric.name,
                            kind="HISTOGRAM",
                            unit=metric.unit,
                            service_name=service,
                            scope_name=scope_metrics.scope.name,
                            attributes=_attributes(point.attributes),
                            time_unix_nano=point.time_unix_nano,
                            value=None,
                            count=point.count,
                            sum=point.sum if point.HasField("sum") else None,
                            bounds=tuple(point.explicit_bounds),
                            bucket_counts=tuple(point.bucket_counts),
                            minimum=point.min if point.HasField("min") else None,
                            maximum=point.max if point.HasField("max") else None,
                        )
                    )
    return points
