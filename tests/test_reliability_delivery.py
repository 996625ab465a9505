"""Nothing lost: every message an instrumented producer sends arrives, unchanged, in order.

10,000 messages per client go through an instrumented producer and an instrumented consumer
on a three-partition topic. Values (tombstones included), keys and the application's own
headers (duplicates, empty and non-UTF-8 values) must arrive byte for byte, in send order
within each partition, and the only header added is the propagator's, carrying the context of
that very message's send span. Every span started must have ended.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import aiokafka
import confluent_kafka
import kafka
import pytest
from confluent_kafka.cimpl import Producer as UntracedProducer
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from opentelemetry.propagate import get_global_textmap
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.semconv._incubating.attributes.messaging_attributes import (
    MESSAGING_DESTINATION_PARTITION_ID,
    MESSAGING_KAFKA_OFFSET,
)
from support.broker import create_topic, read_record, unique_topic
from support.otel import RecordingSdk, instrumented, traceparent

from kafka_autotrace.aiokafka import AIOKafkaInstrumentor
from kafka_autotrace.confluent_kafka import ConfluentKafkaInstrumentor
from kafka_autotrace.kafka_python import KafkaPythonInstrumentor

MESSAGES = 10_000
PARTITIONS = 3

Headers = list[tuple[str, bytes]]


@dataclass(frozen=True)
class Message:
    key: bytes | None
    value: bytes | None
    headers: Headers


def messages(count: int, seed: int = 4) -> list[Message]:
    """Varied messages: keyed and unkeyed, tombstones, header lists with repeated keys, empty
    and non-UTF-8 values, or none at all. Never a propagator header: replacing a stale one is
    the documented behaviour, tested elsewhere."""
    rng = random.Random(seed)
    made = []
    for index in range(count):
        key = None if index % 7 == 0 else f"key-{rng.randrange(100)}".encode()
        value = None if key is not None and index % 97 == 0 else rng.randbytes(rng.randrange(64))
        headers: Headers = [
            rng.choice([("app", b"1"), ("app", b""), ("bin", b"\xff\xfe\x00"), ("", b"x")])
            for _ in range(rng.randrange(4))
        ]
        made.append(Message(key, value, headers))
    return made


def send_spans_by_position(sdk: RecordingSdk) -> dict[tuple[int, int], ReadableSpan]:
    """Send spans by the (partition, offset) the broker acknowledged."""
    spans = {}
    for span in sdk.spans("send"):
        attributes = span.attributes or {}
        position = (
            int(str(attributes[MESSAGING_DESTINATION_PARTITION_ID])),
            int(str(attributes[MESSAGING_KAFKA_OFFSET])),
        )
        assert position not in spans, f"two send spans for {position}"
        spans[position] = span
    return spans


def assert_delivered_intact(
    sent: dict[tuple[int, int], Message],
    received: dict[tuple[int, int], Message],
    sdk: RecordingSdk,
) -> None:
    """Every message arrived where the broker said it was stored, byte for byte, with exactly
    one header added: the traceparent of its own send span (a send that starts a pipeline
    carries no origin header)."""
    assert get_global_textmap().fields >= {"traceparent"}
    assert sorted(received) == sorted(sent), "messages lost or duplicated"
    spans = send_spans_by_position(sdk)
    assert len(spans) == len(sent)
    for position, message in sent.items():
        arrived = received[position]
        assert (arrived.key, arrived.value) == (message.key, message.value), position
        added = [("traceparent", traceparent(spans[position].context))]
        assert arrived.headers == message.headers + added, position
    assert len(sdk.spans("process")) == len(sent)
    assert sdk.open_spans.names() == []


def assert_in_send_order(sent: list[tuple[int, int]]) -> None:
    """Within each partition, offsets grow in the order the messages were sent."""
    last: dict[int, int] = {}
    for partition, offset in sent:
        assert offset > last.get(partition, -1), f"partition {partition} out of order"
        last[partition] = offset


@pytest.fixture
def three_partitions(bootstrap: str, request: pytest.FixtureRequest) -> str:
    return create_topic(bootstrap, unique_topic(request.node.name), partitions=PARTITIONS)


@pytest.fixture
def kafka_python_sdk() -> Iterator[RecordingSdk]:
    with instrumented(KafkaPythonInstrumentor()) as sdk:
        yield sdk


def test_kafka_python_delivers_every_message_intact_and_in_order(
    kafka_python_sdk: RecordingSdk, bootstrap: str, three_partitions: str
) -> None:
    batch = messages(MESSAGES)
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    futures = [
        producer.send(three_partitions, m.value, m.key, list(m.headers) or None) for m in batch
    ]
    producer.flush(timeout=60)
    producer.close(timeout=10)
    positions = [(future.get(0).partition, future.get(0).offset) for future in futures]
    assert_in_send_order(positions)

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, auto_offset_reset="earliest", consumer_timeout_ms=10_000
    )
    consumer.assign([TopicPartition(three_partitions, p) for p in range(PARTITIONS)])
    received: dict[tuple[int, int], Message] = {}
    for record in consumer:
        received[(record.partition, record.offset)] = Message(
            record.key, record.value, list(record.headers)
        )
        if len(received) == MESSAGES:
            break
    consumer.close()
    assert_delivered_intact(dict(zip(positions, batch)), received, kafka_python_sdk)


def test_kafka_python_record_that_fits_only_without_our_headers_is_still_delivered(
    kafka_python_sdk: RecordingSdk, bootstrap: str, topic: str
) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, max_request_size=1000)
    original_send = kafka.KafkaProducer.send.__wrapped__
    size = 1000
    while True:  # the largest value the uninstrumented producer accepts
        try:
            original_send(producer, topic, b"x" * size).get(timeout=10)
            break
        except kafka.errors.MessageSizeTooLargeError:
            size -= 1
    metadata = producer.send(topic, b"y" * size).get(timeout=10)
    with pytest.raises(kafka.errors.MessageSizeTooLargeError):
        producer.send(topic, b"z" * (size + 1))
    producer.close(timeout=5)

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, consumer_timeout_ms=10_000)
    consumer.assign([TopicPartition(topic, 0)])
    consumer.seek(TopicPartition(topic, 0), metadata.offset)
    record = next(consumer)
    consumer.close()
    assert (record.value, record.headers) == (b"y" * size, [])
    delivered = [s for s in kafka_python_sdk.spans("send") if s.status.is_ok]
    assert [(s.attributes or {})[MESSAGING_KAFKA_OFFSET] for s in delivered] == [metadata.offset]


@pytest.fixture
def confluent_sdk() -> Iterator[RecordingSdk]:
    with instrumented(ConfluentKafkaInstrumentor()) as sdk:
        yield sdk


def test_confluent_delivers_every_message_intact_and_in_order(
    confluent_sdk: RecordingSdk, bootstrap: str, three_partitions: str
) -> None:
    batch = messages(MESSAGES)
    producer = confluent_kafka.Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    positions: dict[int, tuple[int, int]] = {}
    for index, message in enumerate(batch):

        def delivered(error: object, report: Any, index: int = index) -> None:
            assert error is None, error
            positions[index] = (report.partition(), report.offset())

        producer.produce(
            three_partitions,
            message.value,
            message.key,
            on_delivery=delivered,
            headers=list(message.headers) or None,
        )
        producer.poll(0)
    assert producer.flush(60) == 0
    assert len(positions) == MESSAGES
    assert_in_send_order([positions[index] for index in range(MESSAGES)])

    consumer = confluent_kafka.Consumer(
        {"bootstrap.servers": bootstrap, "group.id": three_partitions, "log_level": 3}
    )
    consumer.assign(
        [
            confluent_kafka.TopicPartition(three_partitions, p, confluent_kafka.OFFSET_BEGINNING)
            for p in range(PARTITIONS)
        ]
    )
    received: dict[tuple[int, int], Message] = {}
    while len(received) < MESSAGES:
        record = consumer.poll(10)
        assert record is not None, f"only {len(received)} of {MESSAGES} arrived"
        assert record.error() is None, record.error()
        received[(record.partition(), record.offset())] = Message(
            record.key(), record.value(), list(record.headers() or [])
        )
    consumer.close()
    sent = {positions[index]: message for index, message in enumerate(batch)}
    assert_delivered_intact(sent, received, confluent_sdk)


def test_confluent_record_that_fits_only_without_our_headers_is_still_delivered(
    confluent_sdk: RecordingSdk, bootstrap: str, topic: str
) -> None:
    producer = confluent_kafka.Producer({"bootstrap.servers": bootstrap, "message.max.bytes": 1000})
    size = 1000
    while True:  # the largest value the uninstrumented producer accepts
        try:
            UntracedProducer.produce(producer, topic, b"x" * size)
            break
        except confluent_kafka.KafkaException:
            size -= 1
    reports: list[Any] = []
    producer.produce(topic, b"y" * size, on_delivery=lambda error, report: reports.append(report))
    with pytest.raises(confluent_kafka.KafkaException):
        producer.produce(topic, b"z" * (size + 1))
    assert producer.flush(10) == 0

    record = read_record(bootstrap, topic, reports[0].offset())
    assert (record.value(), record.headers()) == (b"y" * size, None)
    delivered = [s for s in confluent_sdk.spans("send") if s.status.is_ok]
    assert len(delivered) == 1, "the delivered record's send span ends without error"


@pytest.fixture
def aiokafka_sdk() -> Iterator[RecordingSdk]:
    with instrumented(AIOKafkaInstrumentor()) as sdk:
        yield sdk


async def aiokafka_send_all(bootstrap: str, topic: str, batch: list[Message]) -> list[Any]:
    """Every send enqueued before any acknowledgement is awaited; the record metadata in send
    order."""
    producer = aiokafka.AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    try:
        futures = [
            await producer.send(topic, m.value, key=m.key, headers=list(m.headers) or None)
            for m in batch
        ]
        return list(await asyncio.gather(*futures))
    finally:
        await producer.stop()


async def aiokafka_receive_all(
    bootstrap: str, topic: str, count: int
) -> dict[tuple[int, int], Message]:
    consumer = aiokafka.AIOKafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    consumer.assign([aiokafka.TopicPartition(topic, p) for p in range(PARTITIONS)])
    received: dict[tuple[int, int], Message] = {}
    deadline = time.monotonic() + 60
    try:
        while len(received) < count:
            assert time.monotonic() < deadline, f"only {len(received)} of {count} arrived"
            batches = await consumer.getmany(timeout_ms=1000)
            for records in batches.values():
                for record in records:
                    received[(record.partition, record.offset)] = Message(
                        record.key, record.value, list(record.headers)
                    )
    finally:
        await consumer.stop()
    return received


def test_aiokafka_delivers_every_message_intact_and_in_order(
    aiokafka_sdk: RecordingSdk, bootstrap: str, three_partitions: str
) -> None:
    batch = messages(MESSAGES)
    metadata = asyncio.run(aiokafka_send_all(bootstrap, three_partitions, batch))
    positions = [(m.partition, m.offset) for m in metadata]
    assert_in_send_order(positions)

    received = asyncio.run(aiokafka_receive_all(bootstrap, three_partitions, MESSAGES))
    assert_delivered_intact(dict(zip(positions, batch)), received, aiokafka_sdk)
