"""Records an aiokafka consumer group never got, on a real Apache Kafka node: aiokafka keeps no
log start offset, so kafka-autotrace asks for it (and for a restarted group's committed offset)
in a task beside the application's; the same gaps count, and lose nothing, as with
confluent-kafka (tests/test_skipped_records.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from support.broker import unique_topic
from support.kafka import KafkaCluster
from support.otel import RecordingSdk, instrumented
from support.skipped import (
    NOTHING_EXPECTED,
    WAIT_S,
    delete_before,
    filled_topic,
    marked,
    produce,
    settled_async,
)

from kafka_autotrace.aiokafka import AIOKafkaInstrumentor
from kafka_autotrace.core.gaps import CONSUMER_SKIPPED


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


def test_records_deleted_before_a_restarted_group_reads_them_are_counted(
    kafka: KafkaCluster, sdk: RecordingSdk
) -> None:
    topic, group = filled_topic(kafka, 5), unique_topic("group")

    async def run() -> dict[Any, int]:
        first = await started(kafka.bootstrap_servers, topic, group)
        assert await take(first, 2) == [0, 1]
        await first.commit()
        await first.stop()
        produce(kafka, topic, 1)
        delete_before(kafka, topic, 5)
        restarted = await started(kafka.bootstrap_servers, topic, group)
        assert await take(restarted, 1) == [5]
        counted = await settled_async(sdk, {(topic, group, "deleted"): 3})
        await restarted.stop()
        return counted

    assert asyncio.run(run()) == {(topic, group, "deleted"): 3}
    assert sdk.metric_points(CONSUMER_SKIPPED)


def test_records_deleted_under_a_running_consumer_are_counted(
    kafka: KafkaCluster, sdk: RecordingSdk
) -> None:
    from aiokafka import TopicPartition

    topic, group = filled_topic(kafka, 3), unique_topic("group")

    async def run() -> dict[Any, int]:
        running = await started(kafka.bootstrap_servers, topic, group)
        assert await take(running, 3) == [0, 1, 2]
        running.pause(TopicPartition(topic, 0))
        produce(kafka, topic, 5)
        delete_before(kafka, topic, 6)
        running.resume(TopicPartition(topic, 0))
        assert await take(running, 2) == [6, 7]
        counted = await settled_async(sdk, {(topic, group, "deleted"): 3})
        await running.stop()
        return counted

    assert asyncio.run(run()) == {(topic, group, "deleted"): 3}
    assert marked(sdk) == [], "found after the record's span started"


def test_a_seek_and_a_new_group_lose_nothing(kafka: KafkaCluster, sdk: RecordingSdk) -> None:
    from aiokafka import TopicPartition

    topic = filled_topic(kafka, 10)
    delete_before(kafka, topic, 2)

    async def run() -> dict[Any, int]:
        fresh = await started(kafka.bootstrap_servers, topic, unique_topic("group"))
        assert await take(fresh, 2) == [2, 3]
        delete_before(kafka, topic, 6)
        fresh.seek(TopicPartition(topic, 0), 8)
        assert await take(fresh, 2) == [8, 9]
        counted = await settled_async(sdk, NOTHING_EXPECTED)  # waits the look-ups out
        await fresh.stop()
        return counted

    assert asyncio.run(run()) == {}
