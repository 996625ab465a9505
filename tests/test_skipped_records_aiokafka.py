"""Records an aiokafka consumer group never got, on a real Apache Kafka node: aiokafka keeps no
log start offset, so kafka-autotrace asks for it (and for a restarted group's committed offset)
in a task beside the application's; the same gaps count, and lose nothing, as with
confluent-kafka (tests/test_skipped_records.py, whose helpers this module reuses).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from support.broker import unique_topic
from support.otel import RecordingSdk, instrumented
from test_skipped_records import delete_before, kafka, make_topic, marked, produce, skipped

from kafka_autotrace.aiokafka import AIOKafkaInstrumentor
from kafka_autotrace.core.gaps import CONSUMER_SKIPPED

__all__ = ["kafka"]  # the fixture, shared with the confluent-kafka tests
WAIT_S = 60.0


@pytest.fixture
def sdk() -> Iterator[RecordingSdk]:
    with instrumented(AIOKafkaInstrumentor()) as recording:
        yield recording


async def started(bootstrap: str, topic: str, group: str) -> Any:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    consumer.assign([TopicPartition(topic, 0)])
    return consumer


async def take(consumer: Any, count: int) -> list[int]:
    offsets: list[int] = []
    while len(offsets) < count:
        offsets.append((await asyncio.wait_for(consumer.getone(), WAIT_S)).offset)
    return offsets


async def settled(sdk: RecordingSdk, expected: dict[Any, int]) -> dict[Any, int]:
    """The skipped counts once they are ``expected``, or after a few seconds: the look-ups
    run in tasks of their own."""
    for _ in range(50):
        if skipped(sdk) == expected:
            break
        await asyncio.sleep(0.1)
    return skipped(sdk)


def test_records_deleted_before_a_restarted_group_reads_them_are_counted(
    kafka: Any, sdk: RecordingSdk
) -> None:
    topic, group = make_topic(kafka), unique_topic("group")
    produce(kafka, topic, 5)

    async def run() -> dict[Any, int]:
        first = await started(kafka.bootstrap_servers, topic, group)
        assert await take(first, 2) == [0, 1]
        await first.commit()
        await first.stop()
        produce(kafka, topic, 1)
        delete_before(kafka, topic, 5)
        restarted = await started(kafka.bootstrap_servers, topic, group)
        assert await take(restarted, 1) == [5]
        counted = await settled(sdk, {(topic, group, "deleted"): 3})
        await restarted.stop()
        return counted

    assert asyncio.run(run()) == {(topic, group, "deleted"): 3}
    assert sdk.metric_points(CONSUMER_SKIPPED)


def test_records_deleted_under_a_running_consumer_are_counted(
    kafka: Any, sdk: RecordingSdk
) -> None:
    from aiokafka import TopicPartition

    topic, group = make_topic(kafka), unique_topic("group")
    produce(kafka, topic, 3)

    async def run() -> dict[Any, int]:
        running = await started(kafka.bootstrap_servers, topic, group)
        assert await take(running, 3) == [0, 1, 2]
        running.pause(TopicPartition(topic, 0))
        produce(kafka, topic, 5)
        delete_before(kafka, topic, 6)
        running.resume(TopicPartition(topic, 0))
        assert await take(running, 2) == [6, 7]
        counted = await settled(sdk, {(topic, group, "deleted"): 3})
        await running.stop()
        return counted

    assert asyncio.run(run()) == {(topic, group, "deleted"): 3}
    assert marked(sdk) == [], "found after the record's span started"


def test_a_seek_and_a_new_group_lose_nothing(kafka: Any, sdk: RecordingSdk) -> None:
    from aiokafka import TopicPartition

    topic = make_topic(kafka)
    produce(kafka, topic, 10)
    delete_before(kafka, topic, 2)

    async def run() -> dict[Any, int]:
        fresh = await started(kafka.bootstrap_servers, topic, unique_topic("group"))
        assert await take(fresh, 2) == [2, 3]
        delete_before(kafka, topic, 6)
        fresh.seek(TopicPartition(topic, 0), 8)
        assert await take(fresh, 2) == [8, 9]
        counted = await settled(sdk, {("never", "", ""): 0})  # waits the look-ups out
        await fresh.stop()
        return counted

    assert asyncio.run(run()) == {}
