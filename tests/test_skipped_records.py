"""Records a consumer group never got, on a real Apache Kafka node, with confluent-kafka:
counted as ``kafka_autotrace.consumer.skipped`` when the broker deleted them (retention,
DeleteRecords) before the group read them, and never for gaps that lose nothing (compaction,
transaction markers and aborted records under ``read_committed``, the application's seeks, a
new group starting at the earliest offset).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import confluent_kafka
import pytest
from support.broker import unique_topic
from support.kafka import KafkaCluster
from support.otel import RecordingSdk, instrumented
from support.skipped import (
    commit_after,
    compacted_topic,
    consumer,
    delete_before,
    delete_first_five,
    filled_topic,
    make_topic,
    marked,
    produce,
    produce_an_aborted_transaction,
    skipped,
    take,
    until,
)

from kafka_autotrace.confluent_kafka import ConfluentKafkaInstrumentor


@pytest.fixture
def sdk() -> Iterator[RecordingSdk]:
    with instrumented(ConfluentKafkaInstrumentor()) as recording:
        yield recording


@pytest.mark.parametrize("deleted_by", ["retention", "delete_records"])
def test_records_deleted_before_a_restarted_group_reads_them_are_counted(
    kafka: KafkaCluster, sdk: RecordingSdk, deleted_by: str
) -> None:
    topic, group = filled_topic(kafka, 5, **{"segment.ms": "200"}), unique_topic("group")
    commit_after(kafka, topic, group, 2)
    delete_first_five(kafka, topic, deleted_by)

    restarted = consumer(kafka, topic, group)
    assert take(restarted, 1) == [5]
    until(lambda: skipped(sdk) != {}, "the skipped records are counted", timeout=10)
    restarted.close()
    assert skipped(sdk) == {(topic, group, "deleted"): 3}


def test_records_deleted_under_a_running_consumer_are_counted_on_the_next_span(
    kafka: KafkaCluster, sdk: RecordingSdk
) -> None:
    topic, group = filled_topic(kafka, 3), unique_topic("group")
    running = consumer(kafka, topic, group)
    assert take(running, 3) == [0, 1, 2]
    partition = confluent_kafka.TopicPartition(topic, 0)
    running.pause([partition])  # nothing more is fetched ahead of the application
    produce(kafka, topic, 5)
    delete_before(kafka, topic, 6)
    running.resume([partition])
    assert take(running, 2) == [6, 7]
    running.close()
    assert skipped(sdk) == {(topic, group, "deleted"): 3}
    assert marked(sdk) == [(6, 3, 3)]


def test_a_seek_of_the_application_loses_nothing(kafka: KafkaCluster, sdk: RecordingSdk) -> None:
    topic = filled_topic(kafka, 10)
    running = consumer(kafka, topic, unique_topic("group"))
    assert take(running, 4) == [0, 1, 2, 3]
    delete_before(kafka, topic, 6)
    running.seek(confluent_kafka.TopicPartition(topic, 0, 8))
    assert take(running, 2) == [8, 9]
    running.close()
    assert skipped(sdk) == {}
    assert marked(sdk) == []


def test_a_new_group_starting_at_the_earliest_offset_loses_nothing(
    kafka: KafkaCluster, sdk: RecordingSdk
) -> None:
    topic = filled_topic(kafka, 6)
    delete_before(kafka, topic, 4)
    fresh = consumer(kafka, topic, unique_topic("group"))
    assert take(fresh, 2) == [4, 5]
    time.sleep(2)  # time for a look-up of the committed offset to come back
    fresh.close()
    assert skipped(sdk) == {}


def test_aborted_transactions_and_their_markers_lose_nothing(
    kafka: KafkaCluster, sdk: RecordingSdk
) -> None:
    topic = make_topic(kafka)
    produce_an_aborted_transaction(kafka, topic)
    reader = consumer(kafka, topic, unique_topic("group"), **{"isolation.level": "read_committed"})
    # 0 committed, 1 its marker, 2 to 4 aborted, 5 the abort marker, 6 and 7 committed
    assert take(reader, 3) == [0, 6, 7]
    reader.close()
    assert skipped(sdk) == {}
    assert marked(sdk) == []


def test_compacted_records_lose_nothing(kafka: KafkaCluster, sdk: RecordingSdk) -> None:
    group = unique_topic("group")
    sdk_before = skipped(sdk)
    topic = compacted_topic(kafka, group)
    restarted = consumer(kafka, topic, group)
    assert take(restarted, 1) == [4]
    time.sleep(2)
    restarted.close()
    assert sdk_before == {} and skipped(sdk) == {}
