"""Reading the clients' own figures (kafka.producer.*, kafka.consumer.*) from a RecordingSdk."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from support.otel import RecordingSdk

Figures = dict[str, dict[frozenset[tuple[str, Any]], float]]


def collect(sdk: RecordingSdk) -> Figures:
    """One collection: per metric name of the bridge, value per attribute set."""
    data = sdk.reader.get_metrics_data()
    figures: Figures = {}
    for resource_metrics in data.resource_metrics if data else ():
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                if metric.name.startswith(
                    ("kafka.", "kafka_autotrace.client.", "kafka_autotrace.producer.")
                ):
                    figures[metric.name] = {
                        frozenset(point.attributes.items()): point.value
                        for point in metric.data.data_points
                    }
    return figures


def values(figures: Figures, name: str, **attributes: str) -> list[float]:
    """The values of ``name`` whose attributes include ``attributes`` (``client_id`` stands
    for ``client-id``, ``node_id`` for ``node-id``)."""
    wanted = {key.replace("_", "-"): value for key, value in attributes.items()}
    return [
        value
        for point, value in figures.get(name, {}).items()
        if wanted.items() <= dict(point).items()
    ]


def serve_until(serve: Callable[[], object], done: Callable[[], bool], timeout: float = 20) -> None:
    """Call ``serve`` (a client's poll) until ``done()``, at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "timed out"
        serve()
