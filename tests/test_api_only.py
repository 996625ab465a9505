"""With the OpenTelemetry API alone (no SDK set up), against a real broker.

Nothing records spans or measurements then, so kafka-autotrace does what the API's no-op tracer
does and no more: while a consumed record is handled its producer's context is current, so
what the handling produces carries the trace on; a send with no context reaches the client as
the application made it. Both clients, every way of receiving.

The instrumentors here get no providers, as under ``opentelemetry-instrument`` without an SDK:
the API's proxies, with no global provider behind them (no test sets one in this process).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Callable

import confluent_kafka
import kafka
import pytest
from kafka import TopicPartition
from opentelemetry import metrics, trace
from opentelemetry.trace import INVALID_SPAN_CONTEXT, ProxyTracerProvider
from support.broker import create_topic, read_record, unique_topic

from kafka_autotrace.confluent_kafka import ConfluentKafkaInstrumentor
from kafka_autotrace.core.sdk import is_api_meter
from kafka_autotrace.kafka_python import KafkaPythonInstrumentor

TRACE_ID = 0x0AF7651916CD43DD8448EB211C80319C
TRACEPARENT = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
Receive = Callable[[Any], Iterator[Any]]


@pytest.fixture(autouse=True)
def api_only() -> Iterator[None]:
    assert isinstance(trace.get_tracer_provider(), ProxyTracerProvider), "an SDK is set up"
    assert is_api_meter(metrics.get_meter_provider()), "a meter SDK is set up"
    instrumentors = [KafkaPythonInstrumentor(), ConfluentKafkaInstrumentor()]
    for instrumentor in instrumentors:
        instrumentor.instrument()
    yield
    for instrumentor in instrumentors:
        instrumentor.uninstrument()


@pytest.fixture
def incoming(bootstrap: str, topic: str) -> str:
    """``topic``, holding one record that an instrumented producer upstream sent."""
    producer = confluent_kafka.Producer({"bootstrap.servers": bootstrap})
    producer.produce(topic, b"order", headers=[("traceparent", TRACEPARENT)])
    assert producer.flush(10) == 0
    return topic


@pytest.fixture
def outgoing(bootstrap: str) -> str:
    return create_topic(bootstrap, unique_topic("api-only-out"), partitions=1)


def _kafka_python_iterate(consumer: Any) -> Iterator[Any]:
    yield next(consumer)


def _kafka_python_poll(consumer: Any) -> Iterator[Any]:
    for _ in range(50):
        for records in consumer.poll(timeout_ms=200).values():
            yield from records
            return
    raise AssertionError("no record within 10 s")


def _confluent_poll(consumer: Any) -> Iterator[Any]:
    for _ in range(20):
        message = consumer.poll(0.5)
        if message is not None and message.error() is None:
            yield message
            return
    raise AssertionError("no message within 10 s")


def _confluent_consume(consumer: Any) -> Iterator[Any]:
    yield from consumer.consume(1, 10)


def _kafka_python_consumer(bootstrap: str, topic: str) -> Any:
    consumer = kafka.KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=unique_topic("group"),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=10_000,
    )
    consumer.assign([TopicPartition(topic, 0)])
    return consumer


def _confluent_consumer(bootstrap: str, topic: str) -> Any:
    consumer = confluent_kafka.Consumer(
        {"bootstrap.servers": bootstrap, "group.id": unique_topic("group")}
    )
    consumer.assign([confluent_kafka.TopicPartition(topic, 0, confluent_kafka.OFFSET_BEGINNING)])
    return consumer


def _kafka_python_send(bootstrap: str) -> Callable[[str, bytes], None]:
    producer = kafka.KafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)

    def send(topic: str, value: bytes) -> None:
        metadata = producer.send(topic, value).get(timeout=10)
        assert metadata.offset == 0

    return send


def _confluent_send(bootstrap: str) -> Callable[[str, bytes], None]:
    producer = confluent_kafka.Producer({"bootstrap.servers": bootstrap})

    def send(topic: str, value: bytes) -> None:
        reports: list[Any] = []
        producer.produce(topic, value, on_delivery=lambda *report: reports.append(report))
        assert producer.flush(10) == 0
        [(error, message)] = reports
        assert error is None and message.offset() == 0

    return send


CONSUMERS = [
    pytest.param(_kafka_python_consumer, _kafka_python_iterate, id="kafka-python-iterate"),
    pytest.param(_kafka_python_consumer, _kafka_python_poll, id="kafka-python-poll"),
    pytest.param(_confluent_consumer, _confluent_poll, id="confluent-poll"),
    pytest.param(_confluent_consumer, _confluent_consume, id="confluent-consume"),
]
PRODUCERS = [
    pytest.param(_kafka_python_send, id="kafka-python"),
    pytest.param(_confluent_send, id="confluent"),
]


@pytest.mark.parametrize("make_send", PRODUCERS)
@pytest.mark.parametrize(("make_consumer", "receive"), CONSUMERS)
def test_a_consumed_context_is_carried_on_to_what_handling_produces(
    bootstrap: str,
    incoming: str,
    outgoing: str,
    make_consumer: Callable[[str, str], Any],
    receive: Receive,
    make_send: Callable[[str], Callable[[str, bytes], None]],
) -> None:
    send = make_send(bootstrap)
    consumer = make_consumer(bootstrap, incoming)
    handled = 0
    for _ in receive(consumer):
        handled += 1
        assert trace.get_current_span().get_span_context().trace_id == TRACE_ID
        send(outgoing, b"shipped")
    consumer.close()
    assert handled == 1
    assert trace.get_current_span().get_span_context() == INVALID_SPAN_CONTEXT

    forwarded = read_record(bootstrap, outgoing)
    # No span of ours in between: the producer's own context, byte for byte.
    assert forwarded.headers() == [("traceparent", TRACEPARENT)]
    assert forwarded.value() == b"shipped"


@pytest.mark.parametrize("make_send", PRODUCERS)
def test_a_send_with_no_context_is_made_as_the_application_made_it(
    bootstrap: str, outgoing: str, make_send: Callable[[str], Callable[[str, bytes], None]]
) -> None:
    make_send(bootstrap)(outgoing, b"plain")

    record = read_record(bootstrap, outgoing)
    assert record.headers() is None
    assert record.value() == b"plain"
