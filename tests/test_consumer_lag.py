"""``kafka_autotrace.consumer.lag`` of each client's consumers, against the real broker: one
definition (high watermark - the position the application reached), right at the first export
after the consumer idles, for partitions not reached yet, paused ones, and a consumer that
keeps polling an empty topic. Each collection of the in-memory reader is one export.

Runs on noida-db too (``KAFKA_AUTOTRACE_TEST_BROKER=noida``): nothing here needs a rebalance.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import Producer
from support.broker import create_topic, unique_topic
from support.group_clients import GROUP_CLIENTS, GroupConsumer
from support.otel import RecordingSdk, instrumented

from kafka_autotrace.clients.aiokafka import AIOKafkaInstrumentor
from kafka_autotrace.clients.confluent import ConfluentKafkaInstrumentor
from kafka_autotrace.clients.kafka_python import KafkaPythonInstrumentor
from kafka_autotrace.core.lag import CONSUMER_LAG

INSTRUMENTORS = {
    "kafka-python": KafkaPythonInstrumentor,
    "confluent-kafka": ConfluentKafkaInstrumentor,
    "aiokafka": AIOKafkaInstrumentor,
    "confluent-kafka-aio": ConfluentKafkaInstrumentor,
}
PARTITIONS = 3
SENT = 600
TAKEN = 60
GROUP = "messaging.consumer.group.name"
PARTITION = "messaging.destination.partition.id"


def produce(bootstrap: str, topic: str, count: int, partitions: int = PARTITIONS) -> None:
    """``count`` records spread evenly over the first ``partitions`` partitions, untraced."""
    producer = Producer({"bootstrap.servers": bootstrap})
    for index in range(count):
        producer.produce(topic, b"order %d" % index, partition=index % partitions)
    assert producer.flush(30) == 0


def exported_lag(sdk: RecordingSdk, group: str) -> dict[int, int]:
    """The lag per partition of ``group`` in one export (a collection of the reader)."""
    return {
        int(point.attributes[PARTITION]): point.value
        for point in sdk.metric_points(CONSUMER_LAG)
        if point.attributes.get(GROUP) == group
    }


def settled_lag(sdk: RecordingSdk, group: str, exports: int = 10) -> dict[int, int]:
    """The lag of ``group`` once it covers every partition: the consumer has to have heard of
    each partition's high watermark from a fetch, which on Apache Kafka may come back a moment
    after the records the application took. An export every 0.5 s; the first complete one."""
    for _ in range(exports):
        lag = exported_lag(sdk, group)
        if len(lag) == PARTITIONS:
            return lag
        time.sleep(0.5)
    return lag


@pytest.fixture(params=sorted(GROUP_CLIENTS))
def client(request: pytest.FixtureRequest) -> Iterator[str]:
    with instrumented(INSTRUMENTORS[request.param]()) as sdk:
        request.node.sdk = sdk
        yield request.param


def sdk_of(request: pytest.FixtureRequest) -> RecordingSdk:
    sdk: RecordingSdk = request.node.sdk
    return sdk


def consumer(client: str, bootstrap: str, topic: str, **config: Any) -> GroupConsumer:
    made = GROUP_CLIENTS[client](bootstrap, unique_topic("lag"), **config)
    made.subscribe(topic, None)
    return made


def until_assigned(made: GroupConsumer, partitions: int = PARTITIONS) -> None:
    for _ in range(60):
        if len(made.assignment()) == partitions:
            return
        assert made.take(1, 0.5) == [], "no records expected"
    raise AssertionError("never assigned")


def test_a_consumer_that_takes_some_and_idles_shows_the_rest_at_the_next_export(
    client: str, bootstrap: str, request: pytest.FixtureRequest
) -> None:
    """60 of 600 taken from three partitions, then no more calls: the first export says 540,
    per partition what is left of its 200, also on a partition not read from at all."""
    topic = create_topic(bootstrap, unique_topic("backlog"), partitions=PARTITIONS)
    produce(bootstrap, topic, SENT)
    made = consumer(client, bootstrap, topic)
    try:
        taken = made.take_exactly(TAKEN)
        per_partition = {p: sum(1 for q, _ in taken if q == p) for p in range(PARTITIONS)}
        expected = {p: SENT // PARTITIONS - per_partition[p] for p in range(PARTITIONS)}
        assert settled_lag(sdk_of(request), made.group) == expected
        assert sum(expected.values()) == SENT - TAKEN
    finally:
        made.close()


@pytest.mark.parametrize("reset", ["earliest", "latest"])
def test_a_new_group_without_commits_starts_where_its_reset_puts_it(
    client: str, bootstrap: str, request: pytest.FixtureRequest, reset: str
) -> None:
    """Nothing committed: with ``earliest`` everything is lag once the partitions are
    assigned, with ``latest`` nothing is."""
    topic = create_topic(bootstrap, unique_topic("fresh"), partitions=PARTITIONS)
    produce(bootstrap, topic, SENT)
    made = consumer(client, bootstrap, topic, reset=reset)
    try:
        if reset == "earliest":
            made.take_exactly(1)
            assert sum(settled_lag(sdk_of(request), made.group).values()) == SENT - 1
        else:
            until_assigned(made)
            for _ in range(10):  # until the positions are resolved and a fetch came back
                if len(exported_lag(sdk_of(request), made.group)) == PARTITIONS:
                    break
                assert made.take(1, 0.3) == []
            assert exported_lag(sdk_of(request), made.group) == dict.fromkeys(range(PARTITIONS), 0)
    finally:
        made.close()


COMMITTED = 50


def commit_for_group(bootstrap: str, group: str, topic: str, offset: int) -> None:
    """Commit ``offset`` on each partition of ``topic`` for ``group`` through the admin API,
    again until the broker took every one: the request succeeds even when each partition
    failed, as with NOT_COORDINATOR while a new node still loads its offsets topic."""
    from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})
    offsets = [TopicPartition(topic, p, offset) for p in range(PARTITIONS)]
    deadline = time.monotonic() + 60
    while True:
        [done] = admin.alter_consumer_group_offsets(
            [ConsumerGroupTopicPartitions(group, offsets)]
        ).values()
        errors = [p.error for p in done.result(timeout=20).topic_partitions if p.error]
        if not errors:
            return
        assert time.monotonic() < deadline, errors
        time.sleep(0.2)


def test_partitions_not_reached_count_from_their_committed_offset(
    client: str, bootstrap: str, request: pytest.FixtureRequest
) -> None:
    """The group committed offset 50 on each partition; the consumer takes 10 and pauses:
    3 x (200 - 50) - 10 = 440, partitions not reached included (for confluent-kafka, from the
    committed offset in librdkafka's statistics, not from a request)."""
    topic = create_topic(bootstrap, unique_topic("committed"), partitions=PARTITIONS)
    produce(bootstrap, topic, SENT)
    group = unique_topic("lag")
    commit_for_group(bootstrap, group, topic, COMMITTED)
    confluent = client.startswith("confluent-kafka")
    config: dict[str, Any] = {"statistics.interval.ms": 100} if confluent else {}
    made = GROUP_CLIENTS[client](bootstrap, group, **config)
    made.subscribe(topic, None)
    try:
        taken = made.take_exactly(10)
        assert min(offset for _, offset in taken) >= COMMITTED
        # A paused partition is fetched no more: the consumer first has to have heard of each
        # one's high watermark, which a loaded machine may not have let a fetch bring yet.
        settled_lag(sdk_of(request), made.group)
        made.pause_all()
        for _ in range(3):
            assert made.take(1, 0.3) == []
        lag = settled_lag(sdk_of(request), made.group)
        assert sum(lag.values()) == PARTITIONS * (SENT // PARTITIONS - COMMITTED) - 10, lag
    finally:
        made.close()


def test_paused_partitions_keep_their_lag_while_the_consumer_polls(
    client: str, bootstrap: str, request: pytest.FixtureRequest
) -> None:
    topic = create_topic(bootstrap, unique_topic("paused"), partitions=PARTITIONS)
    produce(bootstrap, topic, SENT)
    made = consumer(client, bootstrap, topic)
    try:
        made.take_exactly(TAKEN)
        made.pause_all()
        for _ in range(3):
            assert made.take(10, 0.3) == []
            assert sum(exported_lag(sdk_of(request), made.group).values()) == SENT - TAKEN
    finally:
        made.close()


def test_a_consumer_that_keeps_polling_an_empty_topic_shows_no_lag(
    client: str, bootstrap: str, request: pytest.FixtureRequest
) -> None:
    topic = create_topic(bootstrap, unique_topic("drained"), partitions=PARTITIONS)
    produce(bootstrap, topic, SENT)
    made = consumer(client, bootstrap, topic)
    try:
        made.take_exactly(SENT)
        for _ in range(3):
            assert made.take(10, 0.3) == []
            assert exported_lag(sdk_of(request), made.group) == dict.fromkeys(range(PARTITIONS), 0)
    finally:
        made.close()


class _Requests(logging.Handler):
    """librdkafka's protocol debug log, as confluent-kafka hands it to a Python logger."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())

    def sent(self, request: str) -> list[str]:
        return [line for line in self.lines if f"Sent {request}" in line]


def test_confluent_lag_asks_the_broker_nothing(bootstrap: str) -> None:
    """Observed in librdkafka's own protocol log: after the assignment, exports and polls make
    no OffsetFetch request (the committed offset of a partition not reached yet comes from the
    statistics), though two of three partitions are never reached."""
    topic = create_topic(bootstrap, unique_topic("unreached"), partitions=PARTITIONS)
    produce(bootstrap, topic, 30, partitions=1)
    requests = _Requests()
    logger = logging.getLogger(f"librdkafka.{topic}")
    logger.addHandler(requests)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    with instrumented(ConfluentKafkaInstrumentor()) as sdk:
        made = GROUP_CLIENTS["confluent-kafka"](
            bootstrap,
            unique_topic("lag"),
            debug="protocol",
            logger=logger,
            **{"heartbeat.interval.ms": 300},
        )
        made.subscribe(topic, None)
        try:
            made.take_exactly(10)
            assert requests.sent("OffsetFetch"), "the log shows the assignment's own request"
            requests.lines.clear()
            made.pause_all()
            for _ in range(6):
                made.take(1, 0.3)
                lag = exported_lag(sdk, made.group)
            assert lag == {0: 20, 1: 0, 2: 0}
            assert requests.sent("Heartbeat"), "the log is still being read"
            assert requests.sent("OffsetFetch") == []
        finally:
            made.close()


def test_kafka_python_lag_asks_the_broker_nothing(bootstrap: str) -> None:
    """The same, observed in kafka-python's debug log of the requests it sends: after the
    assignment, exports and polls send neither OffsetFetch nor ListOffsets."""
    topic = create_topic(bootstrap, unique_topic("unreached"), partitions=PARTITIONS)
    produce(bootstrap, topic, 30, partitions=1)
    requests = _Requests()
    logger = logging.getLogger("kafka")
    level = logger.level
    logger.addHandler(requests)
    logger.setLevel(logging.DEBUG)
    try:
        with instrumented(KafkaPythonInstrumentor()) as sdk:
            made = GROUP_CLIENTS["kafka-python"](
                bootstrap, unique_topic("lag"), heartbeat_interval_ms=300
            )
            made.subscribe(topic, None)
            try:
                made.take_exactly(10)
                assert [line for line in requests.lines if "OffsetFetchRequest" in line]
                requests.lines.clear()
                made.pause_all()
                for _ in range(6):
                    made.take(1, 0.3)
                    lag = exported_lag(sdk, made.group)
                assert lag == {0: 20, 1: 0, 2: 0}
                assert [line for line in requests.lines if "HeartbeatRequest" in line], "logging"
                asked = [
                    line
                    for line in requests.lines
                    if "OffsetFetchRequest" in line or "ListOffsetsRequest" in line
                ]
                assert asked == []
            finally:
                made.close()
    finally:
        logger.removeHandler(requests)
        logger.setLevel(level)
