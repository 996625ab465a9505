"""The clients' own statistics as metrics, under the names the OpenTelemetry Java agent gives
the Java client's (``kafka.producer.*``, ``kafka.consumer.*``), so that one dashboard serves
Java and Python services.

As the Java agent's bridge does, the instruments carry no unit: a figure is in the unit the
Kafka metric of that name has (milliseconds for times, bytes for sizes), and the series are
named alike in Prometheus. Attributes are the Java client's tag names: ``client-id`` always,
``topic``/``partition`` only on per-topic/per-partition figures, ``node-id`` (a broker id) on
per-broker ones. A figure whose meaning differs from the Java client's gets a name of our own
(``kafka_autotrace.*``) instead.

Each client adapter gives a :class:`FigureReader`. Nothing is read per message: the readers are
asked when the SDK collects, at most once per :data:`READ_INTERVAL_S` for all instruments,
from the clients tracked then (weakly held: a closed or collected client drops out).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from opentelemetry.metrics import CallbackOptions, Meter, Observation

from kafka_autotrace.core.tracking import TrackedClients

_logger = logging.getLogger(__name__)

CLIENT_ID = "client-id"
TOPIC = "topic"
PARTITION = "partition"
NODE_ID = "node-id"

PRODUCER_RECORD_QUEUE_TIME_AVG = "kafka.producer.record_queue_time_avg"
PRODUCER_BATCH_SIZE_AVG = "kafka.producer.batch_size_avg"
PRODUCER_REQUEST_LATENCY_AVG = "kafka.producer.request_latency_avg"
PRODUCER_RECORD_RETRY_TOTAL = "kafka.producer.record_retry_total"
PRODUCER_RECORD_ERROR_TOTAL = "kafka.producer.record_error_total"
PRODUCER_RECORD_RETRY_RATE = "kafka.producer.record_retry_rate"
PRODUCER_RECORD_ERROR_RATE = "kafka.producer.record_error_rate"
PRODUCER_BUFFER_AVAILABLE_BYTES = "kafka.producer.buffer_available_bytes"
CONSUMER_FETCH_LATENCY_AVG = "kafka.consumer.fetch_latency_avg"
CONSUMER_RECORDS_PER_REQUEST_AVG = "kafka.consumer.records_per_request_avg"
CONSUMER_COMMIT_LATENCY_AVG = "kafka.consumer.commit_latency_avg"
CONSUMER_REQUEST_LATENCY_AVG = "kafka.consumer.request_latency_avg"
PRODUCER_QUEUE_LATENCY_AVG = "kafka_autotrace.producer.queue_latency_avg"
"""Not a Java client metric: the average time in ms a message waited in the client before its
request was written (librdkafka's ``int_latency``), per message where the Java client's
``record_queue_time_avg`` is per batch (its first record's wait): with batches closed by
``linger.ms`` it reads about half of it, where the Java figure reads about all of it."""
REQUEST_RETRIES = "kafka_autotrace.client.request_retries"
"""Not a Java client metric: requests a client sent again (librdkafka counts retried requests,
not records, so its count cannot be ``record_retry_total``)."""

READ_INTERVAL_S = 1.0
"""One collection asks every instrument's callback in turn; the clients are read once for all
of them (and again for a collection this much later)."""


@dataclass(frozen=True)
class Instrument:
    name: str
    description: str
    counter: bool = False
    """A monotonic total (an observable counter), else a gauge."""


INSTRUMENTS = (
    Instrument(
        PRODUCER_RECORD_QUEUE_TIME_AVG,
        "The average time in ms record batches spent in the client before being sent.",
    ),
    Instrument(
        PRODUCER_QUEUE_LATENCY_AVG,
        "The average time in ms a message waited in the client before its request was written.",
    ),
    Instrument(PRODUCER_BATCH_SIZE_AVG, "The average number of bytes sent per partition batch."),
    Instrument(PRODUCER_REQUEST_LATENCY_AVG, "The average request latency in ms."),
    Instrument(
        PRODUCER_RECORD_RETRY_TOTAL, "The total number of retried record sends.", counter=True
    ),
    Instrument(
        PRODUCER_RECORD_ERROR_TOTAL,
        "The total number of record sends that resulted in errors.",
        counter=True,
    ),
    Instrument(
        PRODUCER_RECORD_RETRY_RATE, "The average per-second number of retried record sends."
    ),
    Instrument(
        PRODUCER_RECORD_ERROR_RATE,
        "The average per-second number of record sends that resulted in errors.",
    ),
    Instrument(
        PRODUCER_BUFFER_AVAILABLE_BYTES,
        "The amount of buffer memory (bytes) the producer is not using.",
    ),
    Instrument(CONSUMER_FETCH_LATENCY_AVG, "The average time in ms taken for a fetch request."),
    Instrument(
        CONSUMER_RECORDS_PER_REQUEST_AVG, "The average number of records in each fetch request."
    ),
    Instrument(CONSUMER_COMMIT_LATENCY_AVG, "The average time in ms taken for a commit request."),
    Instrument(CONSUMER_REQUEST_LATENCY_AVG, "The average request latency in ms, per broker."),
    Instrument(REQUEST_RETRIES, "Requests the client sent again, per broker.", counter=True),
)

Figure = tuple[str, float, Mapping[str, str]]
"""``(instrument name, value, attributes)``; the attributes include :data:`CLIENT_ID`."""


class FigureReader(Protocol):
    """How one client library's clients tell their own figures."""

    def figures(self, client: Any) -> Iterable[Figure]:
        """The figures ``client`` knows now; called in the metric reader's thread, beside the
        application's use of the client, so it must only read what the client keeps."""
        ...


class ClientMetrics:
    """The clients whose own figures are reported, and the instruments that report them."""

    __slots__ = ("_clients", "_lock", "_observations", "_read_at")

    def __init__(self) -> None:
        self._clients: TrackedClients[FigureReader] = TrackedClients()
        self._lock = threading.Lock()
        self._observations: dict[str, list[Observation]] = {}
        self._read_at = float("-inf")

    def track(self, client: Any, reader: FigureReader) -> None:
        """Report ``client``'s figures, read with ``reader``, until it is closed or collected."""
        self._clients.track(client, reader)

    def forget(self, client: Any) -> None:
        """Stop reporting ``client`` (closed), from the next collection on."""
        self._clients.forget(client)
        with self._lock:
            self._read_at = float("-inf")

    def register(self, meter: Meter) -> None:
        """Create the instruments on ``meter``."""
        for instrument in INSTRUMENTS:
            create = (
                meter.create_observable_counter
                if instrument.counter
                else (meter.create_observable_gauge)
            )
            create(
                instrument.name,
                callbacks=[self._callback(instrument.name)],
                description=instrument.description,
            )

    def _callback(self, name: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def observe(options: CallbackOptions) -> Iterable[Observation]:
            return self._current().get(name, ())

        return observe

    def _current(self) -> dict[str, list[Observation]]:
        with self._lock:
            now = time.monotonic()
            if now - self._read_at >= READ_INTERVAL_S:
                self._observations = self._read()
                self._read_at = now
            return self._observations

    def _read(self) -> dict[str, list[Observation]]:
        observations: dict[str, list[Observation]] = {}
        for client, reader in self._clients.items():
            try:
                figures = list(reader.figures(client))
            except Exception:
                _logger.debug("kafka-autotrace: reading a client's figures failed", exc_info=True)
                continue
            for name, value, attributes in figures:
                observations.setdefault(name, []).append(Observation(value, attributes))
        return observations
