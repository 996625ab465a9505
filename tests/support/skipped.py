"""Records a consumer group never got, made so on purpose on an Apache Kafka node (deleted,
compacted, aborted), and what the instrumentation counted of them: the set-ups and readings
the skipped-records tests of every client share. Records are produced and read back with
confluent-kafka, uninstrumented unless a test instruments it."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Callable

import confluent_kafka
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
)

from kafka_autotrace.core.gaps import CONSUMER_SKIPPED, SKIPPED_COUNT, SKIPPED_FROM

from .broker import unique_topic
from .kafka import KafkaCluster
from .otel import RecordingSdk

WAIT_S = 60.0
SETTLE_TRIES, SETTLE_PAUSE_S = 50, 0.1
"""How long :func:`settled` waits for the look-ups that run beside the application."""

Skipped = dict[tuple[str, str, str], int]


def make_topic(kafka: KafkaCluster, **config: str) -> str:
    name = unique_topic("skipped")
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap_servers})
    admin.create_topics([NewTopic(name, 1, 1, config=config)])[name].result(20)
    until(lambda: _low_high(kafka, name)[1] == 0, "the topic has a leader")
    return name


def filled_topic(kafka: KafkaCluster, count: int, **config: str) -> str:
    """A new topic holding ``count`` records, offsets 0 to ``count`` - 1."""
    topic = make_topic(kafka, **config)
    produce(kafka, topic, count)
    return topic


def produce(kafka: KafkaCluster, topic: str, count: int, key: bytes | None = None) -> None:
    producer = confluent_kafka.Producer({"bootstrap.servers": kafka.bootstrap_servers})
    for index in range(count):
        producer.produce(topic, f"value-{index}".encode(), key)
    assert producer.flush(20) == 0


def consumer(kafka: KafkaCluster, topic: str, group: str, **config: Any) -> Any:
    """A confluent-kafka consumer of partition 0 of ``topic`` that starts where ``group``
    committed, else at the earliest offset."""
    made = confluent_kafka.Consumer(
        {
            "bootstrap.servers": kafka.bootstrap_servers,
            "group.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            **config,
        }
    )
    made.assign([confluent_kafka.TopicPartition(topic, 0)])
    return made


def take(made: Any, count: int) -> list[int]:
    """The offsets of the next ``count`` records the confluent-kafka consumer ``made`` hands
    out."""
    offsets: list[int] = []
    deadline = time.monotonic() + WAIT_S
    while len(offsets) < count and time.monotonic() < deadline:
        message = made.poll(0.5)
        if message is not None and message.error() is None:
            offsets.append(message.offset())
    assert len(offsets) == count, offsets
    return offsets


def delete_before(kafka: KafkaCluster, topic: str, offset: int) -> None:
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap_servers})
    [future] = admin.delete_records([confluent_kafka.TopicPartition(topic, 0, offset)]).values()
    future.result(20)


def _low_high(kafka: KafkaCluster, topic: str) -> tuple[int, int]:
    probe = confluent_kafka.Consumer(
        {"bootstrap.servers": kafka.bootstrap_servers, "group.id": "probe"}
    )
    try:
        low, high = probe.get_watermark_offsets(confluent_kafka.TopicPartition(topic, 0), 10)
        return int(low), int(high)
    except confluent_kafka.KafkaException:
        return -1, -1
    finally:
        probe.close()


def until(condition: Callable[[], bool], what: str, timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"waited in vain until {what}"
        time.sleep(0.2)


def skipped(sdk: RecordingSdk) -> Skipped:
    """The skipped-records counter per (topic, group, reason), where above 0 (each count
    starts at 0 with the first record handed out)."""
    return {
        (
            point.attributes["messaging.destination.name"],
            point.attributes.get("messaging.consumer.group.name", ""),
            point.attributes["kafka_autotrace.skipped.reason"],
        ): point.value
        for point in sdk.metric_points(CONSUMER_SKIPPED)
        if point.value
    }


NOTHING_EXPECTED: Skipped = {("never", "", ""): 0}
"""What :func:`settled` waits for to wait the look-ups out: no count is ever this."""


def settled(sdk: RecordingSdk, expected: Skipped) -> Skipped:
    """The skipped counts once they are ``expected``, or after a few seconds: the look-ups
    run in a thread of their own."""
    for _ in range(SETTLE_TRIES):
        if skipped(sdk) == expected:
            break
        time.sleep(SETTLE_PAUSE_S)
    return skipped(sdk)


async def settled_async(sdk: RecordingSdk, expected: Skipped) -> Skipped:
    """:func:`settled` for a client whose look-ups are tasks on the application's loop."""
    for _ in range(SETTLE_TRIES):
        if skipped(sdk) == expected:
            break
        await asyncio.sleep(SETTLE_PAUSE_S)
    return skipped(sdk)


def marked(sdk: RecordingSdk) -> list[tuple[int, int, int]]:
    """(offset, first skipped, count) of every process span that carries a skipped range."""
    return [
        (
            span.attributes["messaging.kafka.offset"],
            span.attributes[SKIPPED_FROM],
            span.attributes[SKIPPED_COUNT],
        )
        for span in sdk.spans("process ")
        if span.attributes and SKIPPED_COUNT in span.attributes
    ]


def commit_after(kafka: KafkaCluster, topic: str, group: str, count: int) -> None:
    """Have ``group`` read and commit the first ``count`` records, and leave."""
    first = consumer(kafka, topic, group)
    take(first, count)
    first.commit(asynchronous=False)
    first.close()


def delete_first_five(kafka: KafkaCluster, topic: str, deleted_by: str) -> None:
    """Add offset 5 to a topic of ``segment.ms`` 200 holding offsets 0 to 4, and have those
    deleted by ``retention`` or ``delete_records``."""
    if deleted_by == "retention":
        # Offsets 0 to 4 are past a retention of 6 s, and offset 5, which rolls their segment,
        # stays within it long enough to be read (retention deletes an expired active segment too).
        time.sleep(6.5)
        produce(kafka, topic, 1)
        admin = AdminClient({"bootstrap.servers": kafka.bootstrap_servers})
        retention = ConfigEntry("retention.ms", "6000", incremental_operation=AlterConfigOpType.SET)
        resource = ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=[retention])
        for future in admin.incremental_alter_configs([resource]).values():
            future.result(20)
        until(lambda: _low_high(kafka, topic)[0] == 5, "retention deleted offsets 0 to 4")
    else:
        produce(kafka, topic, 1)
        delete_before(kafka, topic, 5)


def produce_an_aborted_transaction(kafka: KafkaCluster, topic: str) -> None:
    """0 committed, 1 its marker, 2 to 4 aborted, 5 the abort marker, 6 and 7 committed."""
    producer = confluent_kafka.Producer(
        {"bootstrap.servers": kafka.bootstrap_servers, "transactional.id": unique_topic("tx")}
    )
    producer.init_transactions(20)
    for outcome, count in (("commit", 1), ("abort", 3), ("commit", 2)):
        producer.begin_transaction()
        for _ in range(count):
            producer.produce(topic, b"value")
        producer.flush(20)
        if outcome == "commit":
            producer.commit_transaction(20)
        else:
            producer.abort_transaction(20)


def compacted_topic(kafka: KafkaCluster, group: str) -> str:
    """A topic whose offsets 1 to 3 the log cleaner compacted after ``group`` committed 2."""
    topic = make_topic(
        kafka,
        **{
            "cleanup.policy": "compact",
            "segment.ms": "100",
            "min.cleanable.dirty.ratio": "0.001",
            "min.compaction.lag.ms": "0",
        },
    )
    produce(kafka, topic, 1, key=b"first")
    produce(kafka, topic, 4, key=b"same")  # offsets 1 to 4: all but the last are compacted
    commit_after(kafka, topic, group, 2)

    def compacted() -> bool:
        time.sleep(0.2)
        produce(kafka, topic, 1, key=b"roll")  # rolls the segment for the cleaner to compact
        reader = consumer(kafka, topic, unique_topic("probe"))
        offsets = take(reader, 2)
        reader.close()
        return offsets == [0, 4]

    until(compacted, "the log cleaner compacted offsets 1 to 3", timeout=120)
    return topic
