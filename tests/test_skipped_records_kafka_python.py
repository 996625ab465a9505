"""Records a kafka-python consumer group never got, on a real Apache Kafka node: kafka-python
keeps no log start offset, so kafka-autotrace asks for it (and for a restarted group's committed
offset) with a short-lived client of its own, from a thread of its own; the same gaps count, and
lose nothing, as with confluent-kafka (tests/test_skipped_records.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from kafka import KafkaConsumer, TopicPartition
from support.broker import unique_topic
from support.kafka import KafkaCluster
from support.otel import RecordingSdk, instrumented
from support.skipped import (
    NOTHING_EXPECTED,
    WAIT_S,
    compacted_topic,
    delete_before,
    delete_first_five,
    filled_topic,
    make_topic,
    marked,
    produce,
    produce_an_aborted_transaction,
    settled,
)

from kafka_autotrace.core.gaps import CONSUMER_SKIPPED
from kafka_autotrace.kafka_python import KafkaPythonInstrumentor


@pytest.fixture
def sdk() -> Iterator[RecordingSdk]:
    with instrumented(KafkaPythonInstrumentor()) as recording:
        yield recording


def consumer(kafka: KafkaCluster, topic: str, group: str, **config: Any) -> KafkaConsumer:
    """A consumer of partition 0 of ``topic`` that starts where ``group`` committed, else at
    the earliest offset."""
    made = KafkaConsumer(
        bootstrap_servers=kafka.bootstrap_servers,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        consumer_timeout_ms=int(WAIT_S * 1000),
        **config,
    )
    made.assign([TopicPartition(topic, 0)])
    return made


def take(made: KafkaConsumer, count: int) -> list[int]:
    """The offsets of the next ``count`` records ``made`` hands out (its iterator)."""
    return [next(made).offset for _ in range(count)]


@pytest.mark.parametrize("deleted_by", ["retention", "delete_records"])
def test_records_deleted_before_a_restarted_group_reads_them_are_counted(
    kafka: KafkaCluster, sdk: RecordingSdk, deleted_by: str
) -> None:
    topic, group = filled_topic(kafka, 5, **{"segment.ms": "200"}), unique_topic("group")
    first = consumer(kafka, topic, group)
    assert take(first, 2) == [0, 1]
    first.commit()
    first.close()
    delete_first_five(kafka, topic, deleted_by)

    restarted = consumer(kafka, topic, group)
    assert take(restarted, 1) == [5]
    counted = settled(sdk, {(topic, group, "deleted"): 3})
    restarted.close()
    assert counted == {(topic, group, "deleted"): 3}
    assert sdk.metric_points(CONSUMER_SKIPPED)


def test_records_deleted_under_a_running_consumer_are_counted(
    kafka: KafkaCluster, sdk: RecordingSdk
) -> None:
    topic, group = filled_topic(kafka, 3), unique_topic("group")
    running = consumer(kafka, topic, group)
    assert take(running, 3) == [0, 1, 2]
    running.pause(TopicPartition(topic, 0))  # nothing more is fetched ahead of the application
    produce(kafka, topic, 5)
    delete_before(kafka, topic, 6)
    running.resume(TopicPartition(topic, 0))
    assert take(running, 2) == [6, 7]
    counted = settled(sdk, {(topic, group, "deleted"): 3})
    running.close()
    assert counted == {(topic, group, "deleted"): 3}
    assert marked(sdk) == [], "found after the record's span started"


def test_a_seek_of_the_application_loses_nothing(kafka: KafkaCluster, sdk: RecordingSdk) -> None:
    topic = filled_topic(kafka, 10)
    running = consumer(kafka, topic, unique_topic("group"))
    assert take(running, 4) == [0, 1, 2, 3]
    delete_before(kafka, topic, 6)
    running.seek(TopicPartition(topic, 0), 8)
    assert take(running, 2) == [8, 9]
    counted = settled(sdk, NOTHING_EXPECTED)  # waits the look-ups out
    running.close()
    assert counted == {}


def test_a_new_group_starting_at_the_earliest_offset_loses_nothing(
    kafka: KafkaCluster, sdk: RecordingSdk
) -> None:
    topic = filled_topic(kafka, 6)
    delete_before(kafka, topic, 4)
    fresh = consumer(kafka, topic, unique_topic("group"))
    assert take(fresh, 2) == [4, 5]
    counted = settled(sdk, NOTHING_EXPECTED)
    fresh.close()
    assert counted == {}


def test_aborted_transactions_and_their_markers_lose_nothing(
    kafka: KafkaCluster, sdk: RecordingSdk
) -> None:
    topic = make_topic(kafka)
    produce_an_aborted_transaction(kafka, topic)
    reader = consumer(kafka, topic, unique_topic("group"), isolation_level="read_committed")
    assert take(reader, 3) == [0, 6, 7]
    counted = settled(sdk, NOTHING_EXPECTED)
    reader.close()
    assert counted == {}
    assert marked(sdk) == []


def test_compacted_records_lose_nothing(kafka: KafkaCluster, sdk: RecordingSdk) -> None:
    group = unique_topic("group")
    topic = compacted_topic(kafka, group)
    restarted = consumer(kafka, topic, group)
    assert take(restarted, 1) == [4]
    counted = settled(sdk, NOTHING_EXPECTED)
    restarted.close()
    assert counted == {}
