"""confluent-kafka's figures, from librdkafka's statistics (see
:mod:`~kafka_autotrace.clients.confluent.statistics`), under the Java client's names where
the meaning is the same (docs/metrics.md says which and how).

librdkafka's windowed figures (``int_latency``, ``rtt``, ``batchsize``) cover the last
statistics interval and are in microseconds (times) or bytes; an average over a window with
no samples is left out rather than reported as 0. Brokers not yet identified (bootstrap
connections, id -1) and librdkafka's internal ones are left out of per-broker figures.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Protocol

from kafka_autotrace.clients.confluent.statistics import StatisticsTap
from kafka_autotrace.core.client_metrics import (
    CLIENT_ID,
    CONSUMER_RECORDS_PER_REQUEST_AVG,
    CONSUMER_REQUEST_LATENCY_AVG,
    NODE_ID,
    PRODUCER_BATCH_SIZE_AVG,
    PRODUCER_BUFFER_AVAILABLE_BYTES,
    PRODUCER_QUEUE_LATENCY_AVG,
    PRODUCER_RECORD_ERROR_TOTAL,
    PRODUCER_REQUEST_LATENCY_AVG,
    REQUEST_RETRIES,
    Figure,
)

_US_PER_MS = 1000.0
_FETCH = "Fetch"


class DeliveryErrors(Protocol):
    delivery_errors: int
    """Messages whose delivery report was an error."""
    follows_delivery: bool
    """Whether our delivery callback sees every report (not with only errors reported)."""
    delegated: bool
    """Whether another client (an asyncio one) sends through this one, past our callback."""


class StatisticsFigures:
    """Reads one confluent-kafka client's figures from its latest statistics."""

    __slots__ = ("_client_id", "_errors", "_tap")

    def __init__(self, tap: StatisticsTap, client_id: str | None, errors: DeliveryErrors) -> None:
        self._tap = tap
        self._client_id = client_id
        """The configured ``client.id``; without one, librdkafka's name for the client."""
        self._errors = errors

    def figures(self, client: Any) -> Iterable[Figure]:
        stats = self._tap.latest()
        if stats is None:
            return ()
        own = {CLIENT_ID: self._client_id or str(stats.get("name", ""))}
        brokers = _brokers(stats)
        figures: list[Figure] = []
        if stats.get("type") == "producer":
            latency = PRODUCER_REQUEST_LATENCY_AVG
            errors = self._errors
            counted = errors.follows_delivery and not errors.delegated
            figures.extend(_producer(stats, brokers, own, errors.delivery_errors, counted))
        else:
            latency = CONSUMER_REQUEST_LATENCY_AVG
            per_request = _records_per_fetch(stats, self._tap.earlier())
            if per_request is not None:
                figures.append((CONSUMER_RECORDS_PER_REQUEST_AVG, per_request, own))
        for node, broker in brokers:
            attributes = {**own, NODE_ID: node}
            rtt = _average(broker.get("rtt"))
            if rtt is not None:
                figures.append((latency, rtt / _US_PER_MS, attributes))
            figures.append((REQUEST_RETRIES, _number(broker.get("txretries")), attributes))
        return figures


def _producer(
    stats: Mapping[str, Any],
    brokers: list[tuple[str, Mapping[str, Any]]],
    own: Mapping[str, str],
    delivery_errors: int,
    errors_counted: bool,
) -> Iterator[Figure]:
    queue_time = _weighted(broker.get("int_latency") for _, broker in brokers)
    if queue_time is not None:
        yield PRODUCER_QUEUE_LATENCY_AVG, queue_time / _US_PER_MS, own
    topics = stats.get("topics")
    if isinstance(topics, Mapping):
        batch_size = _weighted(topic.get("batchsize") for topic in topics.values())
        if batch_size is not None:
            yield PRODUCER_BATCH_SIZE_AVG, batch_size, own
    limit, used = stats.get("msg_size_max"), stats.get("msg_size")
    if isinstance(limit, int) and isinstance(used, int):
        yield PRODUCER_BUFFER_AVAILABLE_BYTES, float(max(0, limit - used)), own
    if errors_counted:
        yield PRODUCER_RECORD_ERROR_TOTAL, float(delivery_errors), own


def _records_per_fetch(
    latest: Mapping[str, Any], earlier: Mapping[str, Any] | None
) -> float | None:
    """Records fetched per Fetch request between two readings (since the client started when
    there is one reading only); None without a Fetch request in between."""
    records, requests = _fetched(latest)
    if earlier is not None:
        earlier_records, earlier_requests = _fetched(earlier)
        records, requests = records - earlier_records, requests - earlier_requests
    if requests <= 0:
        return None
    return records / requests


def _fetched(stats: Mapping[str, Any]) -> tuple[float, float]:
    """Records received and Fetch requests sent since the client started."""
    requests = sum(
        _number(_mapping(broker.get("req")).get(_FETCH)) for _, broker in _brokers(stats)
    )
    records = 0.0
    for topic in _mapping(stats.get("topics")).values():
        for partition in _mapping(_mapping(topic).get("partitions")).values():
            records += _number(_mapping(partition).get("rxmsgs"))
    return records, requests


def _brokers(stats: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """``(node-id, statistics)`` of each identified broker."""
    brokers = []
    for broker in _mapping(stats.get("brokers")).values():
        node = _mapping(broker).get("nodeid")
        if isinstance(node, int) and node >= 0 and broker.get("source") != "internal":
            brokers.append((f"node-{node}", broker))
    return brokers


def _weighted(windows: Iterable[object]) -> float | None:
    """The average over several windows, each weighted by its count of samples."""
    total = count = 0.0
    for window in windows:
        average, samples = _mapping(window).get("avg"), _mapping(window).get("cnt")
        if isinstance(average, (int, float)) and isinstance(samples, int) and samples > 0:
            total += average * samples
            count += samples
    return total / count if count else None


def _average(window: object) -> float | None:
    return _weighted((window,))


def _number(value: object) -> float:
    return float(value) if isinstance(value, (int, float)) else 0.0


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}
