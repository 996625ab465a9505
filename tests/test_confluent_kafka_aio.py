"""confluent_kafka.aio clients against a real broker, with an in-process SDK recording spans."""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Iterator
from typing import Any

import confluent_kafka
import pytest
from confluent_kafka.serialization import StringDeserializer, StringSerializer
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.semconv._incubating.attributes.messaging_attributes import (
    MESSAGING_BATCH_MESSAGE_COUNT,
    MESSAGING_DESTINATION_PARTITION_ID,
    MESSAGING_KAFKA_MESSAGE_KEY,
    MESSAGING_KAFKA_OFFSET,
)
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.trace import StatusCode
from support.broker import unique_topic
from support.otel import RecordingSdk, instrumented

from kafka_autotrace.confluent_kafka import ConfluentKafkaInstrumentor

try:
    aio = importlib.import_module("confluent_kafka.aio")
except ImportError:  # 2.12 shipped it as experimental, earlier releases not at all
    aio = pytest.importorskip("confluent_kafka.experimental.aio")


@pytest.fixture
def sdk() -> Iterator[RecordingSdk]:
    with instrumented(ConfluentKafkaInstrumentor()) as recording:
        yield recording
    assert recording.open_spans.names() == [], "every span must end"


def _one(spans: list[ReadableSpan]) -> ReadableSpan:
    assert len(spans) == 1, [span.name for span in spans]
    return spans[0]


def _produce_traced(bootstrap: str, topic: str, count: int) -> None:
    producer = confluent_kafka.Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
    for index in range(count):
        producer.produce(topic, f"m{index}".encode(), b"k")
    assert producer.flush(10) == 0


async def _consumer(bootstrap: str, topic: str, cls: Any = None, **config: Any) -> Any:
    consumer = await _construct(
        cls or aio.AIOConsumer,
        {
            "bootstrap.servers": bootstrap,
            "group.id": unique_topic("group"),
            "enable.auto.commit": False,
            **config,
        },
    )
    await consumer.assign(
        [confluent_kafka.TopicPartition(topic, 0, confluent_kafka.OFFSET_BEGINNING)]
    )
    return consumer


async def _construct(cls: Any, config: dict[str, Any]) -> Any:
    """AIOConsumer is constructed directly, the async (de)serializing classes are awaited."""
    client = cls(config)
    return await client if asyncio.iscoroutine(client) else client


async def _next(consumer: Any) -> Any:
    for _ in range(20):
        message = await consumer.poll(0.5)
        if message is not None and message.error() is None:
            return message
    raise AssertionError("no message within 10 s")


def test_aio_producer_send_spans_end_when_the_future_resolves_and_add_no_headers(
    sdk: RecordingSdk, topic: str, bootstrap: str
) -> None:
    async def run() -> tuple[Any, Any]:
        producer = aio.AIOProducer({"bootstrap.servers": bootstrap}, buffer_timeout=0.05)
        future = await producer.produce(topic, b"v", b"order-1")
        assert sdk.spans() == [], "the span must wait for the delivery"
        await producer.flush()  # 2.12 resolves futures only on flush
        delivered = await asyncio.wait_for(future, 10)
        with pytest.raises(NotImplementedError) as raised:
            await producer.produce(topic, b"v", headers=[("app", b"1")])
        await producer.close()
        consumer = await _consumer(bootstrap, topic)
        received = await _next(consumer)
        await consumer.close()
        return delivered, (raised.value, received)

    delivered, (refused, received) = asyncio.run(run())
    assert isinstance(refused, NotImplementedError)
    assert received.headers() is None, "AIOProducer cannot carry headers; none may be added"
    sent, failed = sorted(sdk.spans("send"), key=lambda s: s.status.status_code.value)
    attributes = sent.attributes or {}
    assert sent.status.status_code is StatusCode.UNSET
    assert attributes[MESSAGING_KAFKA_OFFSET] == delivered.offset() == received.offset()
    assert attributes[MESSAGING_DESTINATION_PARTITION_ID] == str(delivered.partition())
    assert attributes[MESSAGING_KAFKA_MESSAGE_KEY] == "order-1"
    assert failed.status.status_code is StatusCode.ERROR
    assert (failed.attributes or {})[ERROR_TYPE] == "NotImplementedError"
    process = _one(sdk.spans("process"))
    assert process.parent is None


def test_aio_consumer_spans_are_parented_from_headers_and_current_in_the_task(
    sdk: RecordingSdk, topic: str, bootstrap: str
) -> None:
    _produce_traced(bootstrap, topic, 3)

    async def run() -> list[tuple[bytes, int]]:
        consumer = await _consumer(bootstrap, topic)
        handled = []
        message = await _next(consumer)
        handled.append((message.value(), trace.get_current_span().get_span_context().span_id))
        messages: list[Any] = []
        while len(messages) < 2:
            messages.extend(await consumer.consume(2 - len(messages), 5))
        for message in messages:
            handled.append((message.value(), trace.get_current_span().get_span_context().span_id))
        await consumer.close()
        return handled

    handled = asyncio.run(run())
    sends = {span.context.span_id: span for span in sdk.spans("send")}
    processes = {span.context.span_id: span for span in sdk.spans("process")}
    assert [value for value, _ in handled] == [b"m0", b"m1", b"m2"]
    assert len(processes) == 3, "the wrapped consumer must not add spans of its own"
    for _, current in handled:
        process = processes[current]
        assert process.parent is not None and process.parent.span_id in sends
        assert process.context.trace_id == sends[process.parent.span_id].context.trace_id
    poll = _one(sdk.spans("poll"))
    assert (poll.attributes or {})[MESSAGING_BATCH_MESSAGE_COUNT] == 2
    assert len(poll.links) == 2


def test_a_span_ended_from_another_task_logs_no_detach_error(
    sdk: RecordingSdk, topic: str, bootstrap: str, caplog: pytest.LogCaptureFixture
) -> None:
    _produce_traced(bootstrap, topic, 2)

    async def run() -> None:
        consumer = await _consumer(bootstrap, topic)
        await asyncio.create_task(_next(consumer))
        await asyncio.create_task(_next(consumer))
        await consumer.close()

    asyncio.run(run())
    assert len(sdk.spans("process")) == 2
    assert "Failed to detach context" not in caplog.text


def test_async_serializing_classes_are_traced_once_with_app_values(
    sdk: RecordingSdk, topic: str, bootstrap: str
) -> None:
    if not hasattr(aio, "AsyncSerializingProducer"):
        pytest.skip("this confluent-kafka has no asyncio serializing classes")
    _produce_traced(bootstrap, topic, 1)

    async def run() -> list[Any]:
        producer = await aio.AsyncSerializingProducer(
            {
                "bootstrap.servers": bootstrap,
                "key.serializer": StringSerializer(),
                "value.serializer": StringSerializer(),
            },
            buffer_timeout=0.05,
        )
        future = await producer.produce(topic, "order-2", "hello")
        await producer.flush()
        await asyncio.wait_for(future, 10)
        await producer.close()
        consumer = await _consumer(
            bootstrap,
            topic,
            aio.AsyncDeserializingConsumer,
            **{"value.deserializer": StringDeserializer()},
        )
        values = [(await _next(consumer)).value(), (await _next(consumer)).value()]
        await consumer.close()
        return values

    assert asyncio.run(run()) == ["m0", "hello"]
    keys = sorted(
        (span.attributes or {})[MESSAGING_KAFKA_MESSAGE_KEY] for span in sdk.spans("send")
    )
    assert keys == ["k", "order-2"]
    processes = sorted(
        sdk.spans("process"), key=lambda s: (s.attributes or {})[MESSAGING_KAFKA_OFFSET]
    )
    assert len(processes) == 2
    assert processes[0].parent is not None, "the sync producer's context is continued"
    assert processes[1].parent is None, "the aio producer could not propagate its context"
