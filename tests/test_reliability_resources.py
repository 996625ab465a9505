"""Bounded resources: the cap on send spans waiting for the broker's acknowledgement.

A send span lives until the broker answers, so a broker that stops answering (or a producer
that is never polled) would otherwise make the SDK hold one span per queued message. Past
``max_inflight_spans`` a send gets no span of its own, but its record still carries the current
trace context and is still counted in the metrics; spans resume once acknowledgements come in.
Memory over a long run is measured by ``soak/run.py``.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Iterator
from typing import Any, Callable

import aiokafka
import confluent_kafka
import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from opentelemetry.trace import use_span
from support.otel import INSTRUMENTORS, RecordingSdk, instrumented, traceparent

from kafka_autotrace.core.client import ClientInfo
from kafka_autotrace.core.settings import Settings
from kafka_autotrace.core.telemetry import KafkaTelemetry

CAP = 5
SENT = 12
CAP_WARNING = "KAFKA_AUTOTRACE_MAX_INFLIGHT_SPANS"


def kafka_python_burst(bootstrap: str, topic: str, count: int) -> Callable[[], None]:
    """Send ``count`` records that stay unacknowledged until the returned flush is called."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=60_000)
    for index in range(count):
        producer.send(topic, str(index).encode())

    def flush() -> None:
        producer.flush(timeout=10)
        producer.close(timeout=5)

    return flush


def confluent_burst(bootstrap: str, topic: str, count: int) -> Callable[[], None]:
    producer = confluent_kafka.Producer({"bootstrap.servers": bootstrap, "linger.ms": 60_000})
    for index in range(count):
        producer.produce(topic, str(index).encode())

    def flush() -> None:
        assert producer.flush(10) == 0

    return flush


def consumed_traceparents(bootstrap: str, topic: str, count: int) -> list[bytes | None]:
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, auto_offset_reset="earliest", consumer_timeout_ms=10_000
    )
    consumer.assign([TopicPartition(topic, 0)])
    found = []
    for record in consumer:
        found.append(dict(record.headers).get("traceparent"))
        if len(found) == count:
            break
    consumer.close()
    return found


def aiokafka_burst(bootstrap: str, topic: str, count: int) -> Callable[[], None]:
    """The sends are enqueued on a loop that is not run again until the flush, so none can
    be acknowledged before it. aiokafka's flush waits out the linger, hence a short one."""
    loop = asyncio.new_event_loop()

    async def send() -> aiokafka.AIOKafkaProducer:
        producer = aiokafka.AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=3_000)
        await producer.start()
        for index in range(count):
            await producer.send(topic, str(index).encode())
        return producer

    producer = loop.run_until_complete(send())

    def flush() -> None:
        loop.run_until_complete(producer.flush())
        loop.run_until_complete(producer.stop())
        loop.close()

    return flush


BURSTS = {
    "kafka-python": kafka_python_burst,
    "confluent-kafka": confluent_burst,
    "aiokafka": aiokafka_burst,
}


@pytest.fixture(params=sorted(BURSTS))
def client(request: pytest.FixtureRequest) -> Iterator[tuple[str, RecordingSdk]]:
    with instrumented(
        INSTRUMENTORS[request.param](), settings=Settings(max_inflight_spans=CAP)
    ) as sdk:
        yield request.param, sdk


def test_sends_past_the_cap_get_no_span_but_keep_the_trace_and_the_count(
    client: tuple[str, RecordingSdk],
    bootstrap: str,
    topic: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    name, sdk = client
    request = sdk.tracer_provider.get_tracer("app").start_span("request")
    with caplog.at_level(logging.WARNING), use_span(request, end_on_exit=False):
        flush = BURSTS[name](bootstrap, topic, SENT)
        waiting = sdk.open_spans.names()
        flush()
    request.end()
    with caplog.at_level(logging.WARNING):  # acknowledged: the next send gets its span again
        BURSTS[name](bootstrap, topic, 1)()

    assert waiting == sorted(["request"] + [f"send {topic}"] * CAP)
    sends = sorted(sdk.spans("send"), key=lambda span: span.start_time or 0)
    assert len(sends) == CAP + 1
    assert [span.parent.span_id for span in sends[:CAP] if span.parent] == [
        request.get_span_context().span_id
    ] * CAP
    expected = [traceparent(span.context) for span in sends[:CAP]]
    expected += [traceparent(request.get_span_context())] * (SENT - CAP)
    expected.append(traceparent(sends[CAP].context))
    assert consumed_traceparents(bootstrap, topic, SENT + 1) == expected
    sent = sdk.metric_points("messaging.client.sent.messages")
    assert sum(point.value for point in sent) == SENT + 1, "every message is still counted"
    assert caplog.text.count(CAP_WARNING) == 1
    assert sdk.open_spans.names() == []


def test_past_the_cap_without_a_current_trace_no_header_is_added(
    client: tuple[str, RecordingSdk], bootstrap: str, topic: str
) -> None:
    name, _ = client
    BURSTS[name](bootstrap, topic, CAP + 2)()
    found = consumed_traceparents(bootstrap, topic, CAP + 2)
    assert all(found[:CAP]) and found[CAP:] == [None, None]


def test_a_send_the_client_drops_unanswered_stops_counting() -> None:
    sdk = RecordingSdk()
    telemetry = KafkaTelemetry(
        sdk.tracer_provider.get_tracer("test"),
        sdk.meter_provider.get_meter("test"),
        Settings(max_inflight_spans=2),
    )

    def send() -> Any:
        return telemetry.start_send(ClientInfo(), "orders", None, b"v", None, None)

    kept = [send(), send()]
    assert [pending.span.is_recording() for pending in (*kept, send())] == [True, True, False]
    kept.pop()  # the client let go of a message it never answered for
    gc.collect()
    assert send().span.is_recording()
