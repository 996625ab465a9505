"""aiokafka quirks against a real broker, with an in-process SDK recording the spans: what
its API adds to the contract every client passes (tests/contract)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from opentelemetry import trace
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.semconv._incubating.attributes.messaging_attributes import (
    MESSAGING_BATCH_MESSAGE_COUNT,
    MESSAGING_DESTINATION_PARTITION_ID,
    MESSAGING_KAFKA_OFFSET,
)
from opentelemetry.trace import SpanKind
from support.otel import RecordingSdk, instrumented

from kafka_autotrace.aiokafka import AIOKafkaInstrumentor


@pytest.fixture
def sdk() -> Iterator[RecordingSdk]:
    with instrumented(AIOKafkaInstrumentor()) as recording:
        yield recording
    assert recording.open_spans.names() == [], "every span must end"


async def _consumer(bootstrap: str, topic: str) -> AIOKafkaConsumer:
    """A consumer assigned to partition 0 from the start: no group join, so tests stay fast."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=f"{topic}-group", auto_offset_reset="earliest"
    )
    await consumer.start()
    consumer.assign([TopicPartition(topic, 0)])
    return consumer


async def _producer(bootstrap: str, **config: Any) -> AIOKafkaProducer:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, **config)
    await producer.start()
    return producer


def test_send_and_wait_is_one_span_ended_with_partition_and_offset(
    sdk: RecordingSdk, topic: str, bootstrap: str
) -> None:
    async def run() -> Any:
        producer = await _producer(bootstrap)
        try:
            metadata = await producer.send_and_wait(topic, b"v", key=b"k")
            assert sdk.spans("send") != [], "the span ends when the future resolves"
            return metadata
        finally:
            await producer.stop()

    metadata = asyncio.run(run())
    [send] = sdk.spans("send")
    assert send.kind is SpanKind.PRODUCER
    attributes = send.attributes or {}
    assert attributes[MESSAGING_DESTINATION_PARTITION_ID] == str(metadata.partition)
    assert attributes[MESSAGING_KAFKA_OFFSET] == metadata.offset


def test_with_acks_0_the_span_ends_without_an_offset(
    sdk: RecordingSdk, topic: str, bootstrap: str
) -> None:
    async def run() -> Any:
        producer = await _producer(bootstrap, acks=0)
        try:
            return await producer.send_and_wait(topic, b"v")
        finally:
            await producer.stop()

    assert asyncio.run(run()) is None, "precondition: acks=0 resolves to None"
    [send] = sdk.spans("send")
    assert MESSAGING_KAFKA_OFFSET not in (send.attributes or {})


@pytest.mark.parametrize(
    "headers", [(("app", b"1"),), (), {}], ids=["tuple", "empty-tuple", "empty-dict"]
)
def test_headers_other_than_a_list_fare_as_without_instrumentation(
    sdk: RecordingSdk, topic: str, bootstrap: str, headers: object
) -> None:
    """aiokafka takes a list of headers only; a tuple must not become one on our account. An
    empty tuple or dict is no headers from aiokafka 0.13 (``headers or []``), and rejected
    before it: traced, the same."""

    async def attempt(send: Any) -> str:
        producer = await _producer(bootstrap)
        try:
            await send(producer, topic, b"v", headers=headers)
        except TypeError as error:
            return str(error)
        finally:
            await producer.stop()
        return "sent"

    traced = asyncio.run(attempt(AIOKafkaProducer.send_and_wait))
    AIOKafkaInstrumentor().uninstrument()
    try:
        plain = asyncio.run(attempt(AIOKafkaProducer.send_and_wait))
    finally:
        AIOKafkaInstrumentor().instrument(
            tracer_provider=sdk.tracer_provider, meter_provider=sdk.meter_provider
        )
    assert traced == plain


def test_getone_and_getmany_parent_process_spans_current_in_the_task(
    sdk: RecordingSdk, topic: str, bootstrap: str
) -> None:
    """The records are all written before the consumer starts, so its first fetch holds all
    three: ``getmany()`` then returns the two ``getone()`` left in one batch, one ``poll`` span.
    Written while the consumer fetches, the first fetch may end between two records, and
    ``getmany()`` return them one call (one ``poll`` span) at a time."""

    async def run() -> list[int]:
        producer = await _producer(bootstrap)
        current = []
        try:
            for index in range(3):
                await producer.send_and_wait(topic, f"m{index}".encode())
        finally:
            await producer.stop()
        consumer = await _consumer(bootstrap, topic)
        try:
            await consumer.getone()
            current.append(trace.get_current_span().get_span_context().span_id)
            batch: list[Any] = []
            while len(batch) < 2:
                for records in (await consumer.getmany(timeout_ms=1000)).values():
                    for _ in records:
                        current.append(trace.get_current_span().get_span_context().span_id)
                    batch.extend(records)
        finally:
            await consumer.stop()
        return current

    current = asyncio.run(run())
    sends = {span.context.span_id: span for span in sdk.spans("send")}
    processes = {span.context.span_id: span for span in sdk.spans("process")}
    assert len(processes) == 3
    assert sorted(current) == sorted(processes)
    for process in processes.values():
        assert process.parent is not None and process.parent.span_id in sends
    [poll] = sdk.spans("poll")
    assert (poll.attributes or {})[MESSAGING_BATCH_MESSAGE_COUNT] == 2
    assert {link.context.span_id for link in poll.links} <= set(sends)
    assert len(poll.links) == 2


def test_getone_under_wait_for_ends_its_span_without_detach_errors(
    sdk: RecordingSdk, topic: str, bootstrap: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Python 3.11's ``asyncio.wait_for`` runs ``getone()`` in a task of its own, so the span
    is current there, not in the caller; it must still end, at the next call or ``stop()``."""

    async def run() -> None:
        producer = await _producer(bootstrap)
        consumer = await _consumer(bootstrap, topic)
        try:
            for value in (b"a", b"b"):
                await producer.send_and_wait(topic, value)
            await asyncio.wait_for(consumer.getone(), 10)
            await asyncio.wait_for(consumer.getone(), 10)
        finally:
            await producer.stop()
            await consumer.stop()

    asyncio.run(run())
    assert len(sdk.spans("process")) == 2
    assert "Failed to detach context" not in caplog.text
    assert not trace.get_current_span().get_span_context().is_valid


def test_sends_in_a_transaction_are_traced_and_the_transaction_works_as_without_us(
    sdk: RecordingSdk, topic: str, bootstrap: str
) -> None:
    async def run() -> tuple[Any, Any]:
        producer = await _producer(bootstrap, transactional_id=f"{topic}-tx")
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=f"{topic}-group",
            auto_offset_reset="earliest",
            isolation_level="read_committed",
        )
        await consumer.start()
        consumer.assign([TopicPartition(topic, 0)])
        try:
            async with producer.transaction():
                metadata = await producer.send_and_wait(topic, b"committed")
            await producer.begin_transaction()
            await producer.send_and_wait(topic, b"aborted")
            await producer.abort_transaction()
            return metadata, await asyncio.wait_for(consumer.getone(), 10)
        finally:
            await producer.stop()
            await consumer.stop()

    metadata, record = asyncio.run(run())
    assert record.value == b"committed"
    sends = sdk.spans("send")
    assert len(sends) == 2, "both sends, committed or aborted, are traced"
    committed = next(
        s for s in sends if (s.attributes or {})[MESSAGING_KAFKA_OFFSET] == metadata.offset
    )
    [process] = sdk.spans("process")
    assert process.parent is not None and process.parent.span_id == committed.context.span_id


def test_without_an_sdk_the_consumed_context_is_carried_to_what_handling_sends(
    topic: str, bootstrap: str
) -> None:
    """The API alone: no spans, but a record's trace context is current while it is handled,
    so what the handler sends carries it on; a send with no context gets no headers at all."""
    traceparent_in = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    instrumentor = AIOKafkaInstrumentor()
    instrumentor.instrument(
        tracer_provider=trace.NoOpTracerProvider(), meter_provider=NoOpMeterProvider()
    )

    async def run() -> tuple[Any, Any]:
        producer = await _producer(bootstrap)
        consumer = await _consumer(bootstrap, topic)
        try:
            await producer.send_and_wait(topic, b"v", headers=[("traceparent", traceparent_in)])
            await consumer.getone()
            await producer.send_and_wait(f"{topic}-next", b"w")
            await consumer.stop()  # nothing is being handled any more
            await producer.send_and_wait(f"{topic}-next", b"x")
        finally:
            await producer.stop()
        forwarded = await _consumer(bootstrap, f"{topic}-next")
        try:
            return await forwarded.getone(), await forwarded.getone()
        finally:
            await forwarded.stop()

    try:
        carried, bare = asyncio.run(run())
    finally:
        instrumentor.uninstrument()
    assert dict(carried.headers)["traceparent"] == traceparent_in
    assert list(bare.headers or ()) == []
