"""confluent-kafka's own statistics, bridged: librdkafka's statistics tapped at construction
(the application's stats_cb still called with the same JSON, every time), read when metrics are
collected, against a real broker."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import confluent_kafka
import pytest
from contract.drivers.confluent_aio import aio_module
from contract.drivers.confluent_kafka import unreachable
from support.broker import create_topic, unique_topic
from support.figures import collect, serve_until, values
from support.otel import RecordingSdk, instrumented

from kafka_autotrace.clients.confluent import statistics
from kafka_autotrace.clients.confluent.common import ConfluentState, statistics_of
from kafka_autotrace.confluent_kafka import ConfluentKafkaInstrumentor
from kafka_autotrace.core import client_metrics
from kafka_autotrace.core.client import state_of
from kafka_autotrace.core.client_metrics import (
    CONSUMER_RECORDS_PER_REQUEST_AVG,
    CONSUMER_REQUEST_LATENCY_AVG,
    PRODUCER_BATCH_SIZE_AVG,
    PRODUCER_BUFFER_AVAILABLE_BYTES,
    PRODUCER_QUEUE_LATENCY_AVG,
    PRODUCER_RECORD_ERROR_TOTAL,
    PRODUCER_REQUEST_LATENCY_AVG,
    REQUEST_RETRIES,
)
from kafka_autotrace.core.settings import Settings

INTERVAL_MS = 200
VALUE = b"v" * 100


@pytest.fixture(autouse=True)
def _every_collection_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client_metrics, "READ_INTERVAL_S", 0.0)


@pytest.fixture
def sdk() -> Iterator[RecordingSdk]:
    with instrumented(ConfluentKafkaInstrumentor()) as recording:
        yield recording


def _emitted(client: Any, count: int = 1) -> None:
    """Serve ``client`` until librdkafka emitted ``count`` more statistics."""
    seen: list[str] = []
    tap = _tap(client)
    before = tap._latest

    def served() -> bool:
        latest = tap._latest
        if latest is not before and (not seen or seen[-1] is not latest):
            seen.append(latest)
        return len(seen) >= count

    serve_until(lambda: client.poll(0.05), served)


def _tap(client: Any) -> statistics.StatisticsTap:
    state = state_of(client)
    assert isinstance(state, ConfluentState) and state.statistics is not None
    return state.statistics


def test_a_busy_producer_reports_queue_time_batch_size_latency_and_no_retry(
    sdk: RecordingSdk, bootstrap: str
) -> None:
    topic = create_topic(bootstrap, unique_topic("figures-producer"))
    producer = confluent_kafka.Producer(
        {
            "bootstrap.servers": bootstrap,
            "client.id": "busy",
            "linger.ms": 20,
            "statistics.interval.ms": INTERVAL_MS,
        }
    )
    sent = 0
    deadline = time.monotonic() + 2 * INTERVAL_MS / 1000 + 0.5
    while time.monotonic() < deadline:  # busy across whole statistics intervals
        producer.produce(topic, VALUE)
        sent += 1
        producer.poll(0.001)
    assert producer.flush(10) == 0
    figures = collect(sdk)

    [queue_time] = values(figures, PRODUCER_QUEUE_LATENCY_AVG, client_id="busy")
    assert 0 < queue_time < 10_000
    [batch_size] = values(figures, PRODUCER_BATCH_SIZE_AVG, client_id="busy")
    assert len(VALUE) <= batch_size <= sent * (len(VALUE) + 100)
    [latency] = values(figures, PRODUCER_REQUEST_LATENCY_AVG, client_id="busy")
    assert latency > 0
    assert values(figures, REQUEST_RETRIES, client_id="busy") == [0]
    assert values(figures, PRODUCER_RECORD_ERROR_TOTAL, client_id="busy") == [0]
    [available] = values(figures, PRODUCER_BUFFER_AVAILABLE_BYTES, client_id="busy")
    stats = statistics_of(producer)
    assert stats is not None and 0 < available <= stats["msg_size_max"]


def test_a_failed_delivery_counts_as_a_record_error(sdk: RecordingSdk) -> None:
    producer = confluent_kafka.Producer(
        {**unreachable(), "client.id": "failing", "statistics.interval.ms": INTERVAL_MS}
    )
    reports: list[Any] = []
    producer.produce("nowhere", b"lost", on_delivery=lambda error, message: reports.append(error))
    producer.produce("nowhere", b"kept")
    serve_until(lambda: producer.poll(0.05), lambda: len(reports) == 1)
    producer.flush(5)
    _emitted(producer)
    assert reports[0] is not None
    assert values(collect(sdk), PRODUCER_RECORD_ERROR_TOTAL, client_id="failing") == [2]


def test_without_every_delivery_report_failures_are_not_claimed_counted(
    sdk: RecordingSdk,
) -> None:
    """With only errors reported, our delivery callback is not passed: no error total then,
    rather than a 0 that would say nothing failed."""
    producer = confluent_kafka.Producer(
        {
            **unreachable(),
            "client.id": "only-errors",
            "delivery.report.only.error": True,
            "statistics.interval.ms": INTERVAL_MS,
        }
    )
    producer.produce("nowhere", b"lost")
    producer.flush(5)
    _emitted(producer)
    figures = collect(sdk)
    assert values(figures, PRODUCER_BUFFER_AVAILABLE_BYTES, client_id="only-errors") != []
    assert values(figures, PRODUCER_RECORD_ERROR_TOTAL, client_id="only-errors") == []


def test_a_consumer_reports_records_per_fetch_and_latency_per_broker(
    sdk: RecordingSdk, bootstrap: str
) -> None:
    topic = create_topic(bootstrap, unique_topic("figures-consumer"))
    producer = confluent_kafka.Producer({"bootstrap.servers": bootstrap})
    for _ in range(100):
        producer.produce(topic, VALUE)
    assert producer.flush(10) == 0
    consumer = confluent_kafka.Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": unique_topic("figures-group"),
            "client.id": "reader",
            "auto.offset.reset": "earliest",
            # Longer than a fetch waits for data on Apache Kafka (fetch.wait.max.ms 500), so
            # that each statistics window sees fetch responses.
            "statistics.interval.ms": 1000,
        }
    )
    consumer.subscribe([topic])
    received: list[Any] = []

    def poll() -> None:
        message = consumer.poll(0.1)
        if message is not None and message.error() is None:
            received.append(message)

    serve_until(poll, lambda: len(received) == 100)
    _emitted(consumer)
    figures = collect(sdk)
    [per_request] = values(figures, CONSUMER_RECORDS_PER_REQUEST_AVG, client_id="reader")
    assert 0 < per_request <= 100
    assert [value > 0 for value in values(figures, CONSUMER_REQUEST_LATENCY_AVG)] == [True]
    assert values(figures, REQUEST_RETRIES, client_id="reader") == [0]

    consumer.close()
    assert values(collect(sdk), CONSUMER_REQUEST_LATENCY_AVG, client_id="reader") == []


def test_the_applications_stats_cb_gets_every_callback_with_the_same_json(
    sdk: RecordingSdk, bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    tapped: list[str] = []
    original = statistics.StatisticsTap.__call__

    def counting(tap: statistics.StatisticsTap, stats_json: str) -> Any:
        tapped.append(stats_json)
        return original(tap, stats_json)

    monkeypatch.setattr(statistics.StatisticsTap, "__call__", counting)
    own: list[str] = []
    producer = confluent_kafka.Producer(
        {
            "bootstrap.servers": bootstrap,
            "statistics.interval.ms": INTERVAL_MS,
            "stats_cb": own.append,
        }
    )
    _emitted(producer, 3)
    assert len(own) >= 3
    assert own == tapped
    assert all(mine is theirs for mine, theirs in zip(own, tapped))


def test_without_an_interval_of_its_own_a_client_gets_the_default(
    sdk: RecordingSdk, bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(statistics, "DEFAULT_INTERVAL_MS", INTERVAL_MS)
    own: list[str] = []
    producer = confluent_kafka.Producer({"bootstrap.servers": bootstrap}, stats_cb=own.append)
    _emitted(producer)
    assert own and statistics_of(producer) == json.loads(own[-1])


def test_turned_off_the_configuration_is_the_applications(bootstrap: str) -> None:
    with instrumented(ConfluentKafkaInstrumentor(), settings=Settings(client_metrics=False)) as sdk:
        own: list[str] = []
        producer = confluent_kafka.Producer(
            {
                "bootstrap.servers": bootstrap,
                "statistics.interval.ms": INTERVAL_MS,
                "stats_cb": own.append,
            }
        )
        serve_until(lambda: producer.poll(0.05), lambda: len(own) >= 2)
        assert statistics_of(producer) is None
        assert collect(sdk) == {}
        silent = confluent_kafka.Producer({"bootstrap.servers": bootstrap})
        state = state_of(silent)
        assert isinstance(state, ConfluentState) and state.statistics is None


def test_broken_statistics_are_skipped_and_the_next_ones_read(
    sdk: RecordingSdk, bootstrap: str
) -> None:
    """Statistics that are not JSON, or JSON of another shape, give no figures for their
    client, break nothing, and still reach the application; the other clients' figures are
    reported all along."""
    own: list[str] = []
    config = {"bootstrap.servers": bootstrap, "statistics.interval.ms": INTERVAL_MS}
    producer = confluent_kafka.Producer({**config, "client.id": "broken", "stats_cb": own.append})
    healthy = confluent_kafka.Producer({**config, "client.id": "healthy"})
    _emitted(producer)
    _emitted(healthy)
    tap = _tap(producer)
    for broken in ("{not json", "[]", json.dumps({"brokers": "none", "topics": [1]})):
        tap(broken)
        assert own[-1] is broken
        figures = collect(sdk)
        assert values(figures, PRODUCER_BUFFER_AVAILABLE_BYTES, client_id="broken") == []
        assert values(figures, PRODUCER_BUFFER_AVAILABLE_BYTES, client_id="healthy") != []
    _emitted(producer)
    assert values(collect(sdk), PRODUCER_BUFFER_AVAILABLE_BYTES, client_id="broken") != []


def test_an_aio_consumer_is_reported_through_the_client_it_wraps(
    sdk: RecordingSdk, bootstrap: str
) -> None:
    """The asyncio classes construct a Consumer of the module, so theirs is tapped too; the
    application's stats_cb (run on its event loop by confluent-kafka) still gets the JSON."""
    try:
        aio = aio_module()
    except ImportError:
        pytest.skip("this confluent-kafka has no asyncio classes")
    own: list[str] = []

    async def stats_cb(stats_json: str) -> None:  # confluent-kafka's asyncio callbacks are async
        own.append(stats_json)

    async def run() -> None:
        consumer = aio.AIOConsumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": unique_topic("aio-figures"),
                "client.id": "aio-reader",
                "statistics.interval.ms": INTERVAL_MS,
                "stats_cb": stats_cb,
            }
        )
        deadline = time.monotonic() + 20
        while len(own) < 2:
            assert time.monotonic() < deadline, "no statistics"
            await consumer.poll(0.1)
        assert statistics_of(consumer._consumer) == json.loads(own[-1])
        assert values(collect(sdk), REQUEST_RETRIES, client_id="aio-reader") != []
        await consumer.close()

    asyncio.run(run())
