"""kafka-python's own figures, bridged from its metrics registry when metrics are collected,
against a real broker."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import kafka
import pytest
from support.broker import create_topic, unique_topic
from support.figures import collect, serve_until, values
from support.otel import RecordingSdk, instrumented

from kafka_autotrace.core import client_metrics
from kafka_autotrace.core.client_metrics import (
    CONSUMER_COMMIT_LATENCY_AVG,
    CONSUMER_FETCH_LATENCY_AVG,
    CONSUMER_RECORDS_PER_REQUEST_AVG,
    CONSUMER_REQUEST_LATENCY_AVG,
    PRODUCER_BATCH_SIZE_AVG,
    PRODUCER_RECORD_ERROR_RATE,
    PRODUCER_RECORD_QUEUE_TIME_AVG,
    PRODUCER_RECORD_RETRY_RATE,
    PRODUCER_REQUEST_LATENCY_AVG,
)
from kafka_autotrace.core.settings import Settings
from kafka_autotrace.kafka_python import KafkaPythonInstrumentor

VALUE = b"v" * 100
SENT = 300


@pytest.fixture(autouse=True)
def _every_collection_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client_metrics, "READ_INTERVAL_S", 0.0)


@pytest.fixture
def sdk() -> Iterator[RecordingSdk]:
    with instrumented(KafkaPythonInstrumentor()) as recording:
        yield recording


def _produce(bootstrap: str, topic: str, pace: float = 0.0, **config: Any) -> Any:
    """SENT records, ``pace`` seconds apart, with linger.ms 20."""
    producer = kafka.KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, **config)
    for _ in range(SENT):
        producer.send(topic, VALUE)
        time.sleep(pace)
    producer.flush(10)
    return producer


def test_a_producer_reports_queue_time_batch_size_latency_and_no_retry(
    sdk: RecordingSdk, bootstrap: str
) -> None:
    topic = create_topic(bootstrap, unique_topic("kp-figures-producer"))
    producer = _produce(bootstrap, topic, pace=0.002, client_id="busy")
    figures = collect(sdk)
    [queue_time] = values(figures, PRODUCER_RECORD_QUEUE_TIME_AVG, client_id="busy")
    assert 1 <= queue_time < 10_000, "in ms: batches closed by linger.ms (20) waited for it"
    [batch_size] = values(figures, PRODUCER_BATCH_SIZE_AVG, client_id="busy")
    assert len(VALUE) <= batch_size <= SENT * (len(VALUE) + 100)
    latencies = values(figures, PRODUCER_REQUEST_LATENCY_AVG, client_id="busy")
    assert latencies and all(latency > 0 for latency in latencies)
    assert values(figures, PRODUCER_RECORD_RETRY_RATE, client_id="busy") == [0]
    assert values(figures, PRODUCER_RECORD_ERROR_RATE, client_id="busy") == [0]

    producer.close()
    assert values(collect(sdk), PRODUCER_BATCH_SIZE_AVG, client_id="busy") == []


def test_a_consumer_reports_fetch_and_commit_figures_per_topic_and_broker(
    sdk: RecordingSdk, bootstrap: str
) -> None:
    topic = create_topic(bootstrap, unique_topic("kp-figures-consumer"))
    _produce(bootstrap, topic).close()
    consumer = kafka.KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=unique_topic("kp-figures-group"),
        client_id="reader",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    received: list[Any] = []
    serve_until(
        lambda: [received.extend(r) for r in consumer.poll(200).values()],
        lambda: len(received) == SENT,
    )
    consumer.commit()
    figures = collect(sdk)
    [fetch_latency] = values(figures, CONSUMER_FETCH_LATENCY_AVG, client_id="reader")
    assert fetch_latency > 0
    [per_request] = values(figures, CONSUMER_RECORDS_PER_REQUEST_AVG, client_id="reader")
    assert 0 < per_request <= SENT
    assert values(figures, CONSUMER_RECORDS_PER_REQUEST_AVG, topic=topic) == [per_request]
    [commit_latency] = values(figures, CONSUMER_COMMIT_LATENCY_AVG, client_id="reader")
    assert commit_latency > 0
    latencies = values(figures, CONSUMER_REQUEST_LATENCY_AVG, client_id="reader")
    assert latencies and all(latency >= 0 for latency in latencies)

    consumer.close()
    assert values(collect(sdk), CONSUMER_FETCH_LATENCY_AVG, client_id="reader") == []


def test_turned_off_nothing_is_reported(bootstrap: str) -> None:
    topic = create_topic(bootstrap, unique_topic("kp-figures-off"))
    settings = Settings(client_metrics=False)
    with instrumented(KafkaPythonInstrumentor(), settings=settings) as sdk:
        producer = _produce(bootstrap, topic, client_id="off")
        assert collect(sdk) == {}
        producer.close()


@pytest.mark.skipif(
    "metrics_enabled" not in kafka.KafkaProducer.DEFAULT_CONFIG,
    reason="kafka-python before 2.1 always keeps metrics",
)
def test_a_producer_without_metrics_reports_nothing_and_still_sends(
    sdk: RecordingSdk, bootstrap: str
) -> None:
    topic = create_topic(bootstrap, unique_topic("kp-figures-disabled"))
    producer = _produce(bootstrap, topic, client_id="disabled", metrics_enabled=False)
    assert values(collect(sdk), PRODUCER_BATCH_SIZE_AVG, client_id="disabled") == []
    assert len(sdk.spans("send")) == SENT
    producer.close()
