"""What only the confluent_kafka.aio classes do, against a real broker; what every adapter does
is tested once for all clients in tests/contract/."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka.serialization import StringDeserializer, StringSerializer
from contract.drivers.base import driver_fixture
from contract.drivers.confluent_aio import ConfluentAio, aio_module
from opentelemetry.semconv._incubating.attributes.messaging_attributes import (
    MESSAGING_KAFKA_MESSAGE_KEY,
    MESSAGING_KAFKA_OFFSET,
)
from support.otel import RecordingSdk, instrumented
from support.spans import one

from kafka_autotrace.confluent_kafka import ConfluentKafkaInstrumentor

try:
    aio = aio_module()
except ImportError:
    pytest.skip("this confluent-kafka has no asyncio classes", allow_module_level=True)


@pytest.fixture
def sdk() -> Iterator[RecordingSdk]:
    with instrumented(ConfluentKafkaInstrumentor()) as recording:
        yield recording
    assert recording.open_spans.names() == [], "every span must end"


driver = driver_fixture(ConfluentAio)


def test_aio_producer_adds_no_headers_so_its_consumers_start_their_own_traces(
    sdk: RecordingSdk, driver: ConfluentAio, topic: str
) -> None:
    """AIOProducer sends through produce_batch(), which cannot carry headers (given some, it
    raises NotImplementedError: see the contract's invalid calls)."""
    ack = driver.send(topic, b"v", b"order-1")
    received = driver.read(topic)
    assert received.offset == ack.offset
    assert received.headers == [], "AIOProducer cannot carry headers; none may be added"
    assert one(sdk.spans("process")).parent is None


def test_async_serializing_classes_are_traced_once_with_app_values(
    sdk: RecordingSdk, driver: ConfluentAio, topic: str
) -> None:
    if not hasattr(aio, "AsyncSerializingProducer"):
        pytest.skip("this confluent-kafka has no asyncio serializing classes")
    driver.carrier.send(topic, b"m0", b"k")

    async def send() -> None:
        producer = await aio.AsyncSerializingProducer(
            {
                "bootstrap.servers": driver.bootstrap,
                "key.serializer": StringSerializer(),
                "value.serializer": StringSerializer(),
            },
            buffer_timeout=0.05,
        )
        future = await producer.produce(topic, "order-2", "hello")
        await producer.flush()
        await asyncio.wait_for(future, 10)
        await producer.close()

    driver.run(send())
    consumer = driver.consumer(
        topic,
        cls=aio.AsyncDeserializingConsumer,
        **{"value.deserializer": StringDeserializer()},
    )
    values: list[Any] = [driver.next_record(consumer).value, driver.next_record(consumer).value]
    driver.close(consumer)

    assert values == ["m0", "hello"]
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
