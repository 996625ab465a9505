"""Faults on a real three-broker Apache Kafka cluster (replication factor 3,
``min.insync.replicas`` 2), for every client: the leader of the partition being written is
killed, one of two consumers of a group is killed, a broker is restarted under a consumer.

What each must show: every span that started ends with what the application was told (the
offset after the client's retries, or the error), no record is lost or duplicated, traces go
on across the fault, and nothing stays current or logs a detach error. docs/reliability.md
gives the figures.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import confluent_kafka
import pytest
from contract.drivers import AIOKafka, ConfluentKafka, Driver, KafkaPython
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.semconv._incubating.attributes.messaging_attributes import (
    MESSAGING_DESTINATION_PARTITION_ID,
    MESSAGING_KAFKA_MESSAGE_KEY,
    MESSAGING_KAFKA_OFFSET,
)
from opentelemetry.trace import StatusCode
from support.apps import RunningApp, kill_app, start_app, stop_app
from support.broker import create_topic, unique_topic
from support.kafka import KafkaCluster, start_kafka
from support.otel import RecordingSdk, instrumented
from support.receiving import WaitingReceiver

from kafka_autotrace.confluent_kafka import ConfluentKafkaInstrumentor
from kafka_autotrace.tools.receiver import ReceivedSpan

DRIVERS = {driver.name: driver for driver in (KafkaPython, ConfluentKafka, AIOKafka)}
IDEMPOTENT_ACKS_ALL: dict[str, dict[str, Any]] = {
    KafkaPython.name: {"acks": "all", "enable_idempotence": True},
    ConfluentKafka.name: {"acks": "all", "enable.idempotence": True},
    AIOKafka.name: {"acks": "all", "enable_idempotence": True},
}
GROUP_MEMBER = Path(__file__).parents[1] / "e2e" / "apps" / "group_member.py"
DETACH_ERROR = "Failed to detach context"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaCluster]:
    running = start_kafka(tmp_path_factory.mktemp("cluster"), size=3)
    yield running
    running.stop()


@pytest.fixture
def healthy(cluster: KafkaCluster) -> KafkaCluster:
    """The cluster with all three nodes up, whatever the test before killed."""
    for node in cluster.nodes:
        node.start()
    cluster.wait_until_ready()
    return cluster


@pytest.fixture(params=sorted(DRIVERS))
def driver(request: pytest.FixtureRequest, healthy: KafkaCluster) -> Iterator[Driver]:
    cls = DRIVERS[request.param]
    with instrumented(cls.instrumentor()) as sdk, cls(healthy.bootstrap_servers) as made:
        made.sdk = sdk  # type: ignore[attr-defined]
        yield made
    assert sdk.open_spans.names() == [], "every span must end"


def sdk_of(driver: Driver) -> RecordingSdk:
    sdk: RecordingSdk = driver.sdk  # type: ignore[attr-defined]
    return sdk


def outcome(wait: Callable[[], Any]) -> tuple[str, Any]:
    """What the application was told of one send: its offset, or the error's name."""
    try:
        return ("acked", wait().offset)
    except Exception as error:
        return ("failed", type(error).__name__)


def read_values(bootstrap: str, topic: str, partitions: int = 1) -> list[bytes]:
    """Every record of ``topic`` in offset order per partition, read by a plain consumer."""
    consumer = confluent_kafka.Consumer(
        {"bootstrap.servers": bootstrap, "group.id": unique_topic("reader")}
    )
    consumer.assign(
        [
            confluent_kafka.TopicPartition(topic, p, confluent_kafka.OFFSET_BEGINNING)
            for p in range(partitions)
        ]
    )
    values: list[bytes] = []
    idle_until = time.monotonic() + 5
    with suppress_instrumentation():
        while time.monotonic() < idle_until:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                values.append(message.value())
                idle_until = time.monotonic() + 2
    consumer.close()
    return values


def by_key(spans: list[ReadableSpan]) -> dict[str, ReadableSpan]:
    keyed = {str((span.attributes or {})[MESSAGING_KAFKA_MESSAGE_KEY]): span for span in spans}
    assert len(keyed) == len(spans), "one span per message"
    return keyed


# -- the partition leader killed under an acks=all, idempotent producer -------------------------

SENDS = 300
KILL_AT = 100


def test_leader_killed_while_producing_ends_every_send_with_the_final_answer(
    driver: Driver, healthy: KafkaCluster, caplog: pytest.LogCaptureFixture
) -> None:
    topic = create_topic(healthy.bootstrap_servers, unique_topic("leader-killed"), 1, 3)
    leader = healthy.leader(topic)
    producer = driver.producer(**IDEMPOTENT_ACKS_ALL[driver.name])
    waits = []
    for index in range(SENDS):
        value = str(index).encode()
        waits.append(driver.produce(topic, value, value, producer))
        if index == KILL_AT:
            leader.kill()
        time.sleep(0.002)
    told = [outcome(wait) for wait in waits]

    # The cluster kept a quorum and an in-sync replica: the client's retries delivered every
    # message, once each, in order.
    assert told == [("acked", offset) for offset in range(SENDS)], Counter(told)
    assert read_values(healthy.bootstrap_servers, topic) == [
        str(index).encode() for index in range(SENDS)
    ]
    assert healthy.leader(topic).node_id != leader.node_id
    # Each send span ended with what the application was told.
    sends = by_key(sdk_of(driver).spans("send"))
    assert len(sends) == SENDS
    longest = max(span.end_time - span.start_time for span in sends.values()) / 1e9  # type: ignore[operator]
    # The kill really cut into the deliveries: sends made after it waited for the new leader.
    assert longest > 1.0, longest
    print(f"\n{driver.name}: the longest send span, waiting through the failover: {longest:.2f} s")
    for index, (_, offset) in enumerate(told):
        span = sends[str(index)]
        assert span.status.status_code is not StatusCode.ERROR, span.attributes
        assert (span.attributes or {})[MESSAGING_KAFKA_OFFSET] == offset
        assert (span.attributes or {})[MESSAGING_DESTINATION_PARTITION_ID] == "0"
    assert DETACH_ERROR not in caplog.text


# -- a broker restarted under a running consumer ------------------------------------------------


def test_broker_restarted_under_a_consumer_traces_every_record(
    driver: Driver, healthy: KafkaCluster, caplog: pytest.LogCaptureFixture
) -> None:
    topic = create_topic(healthy.bootstrap_servers, unique_topic("restarted"), 1, 3)
    producer = driver.producer(**IDEMPOTENT_ACKS_ALL[driver.name])
    consumer = driver.consumer(topic)
    handled: list[bytes] = []

    def send_and_handle(first: int, count: int) -> None:
        for index in range(first, first + count):
            value = str(index).encode()
            driver.produce(topic, value, value, producer)()
        for _ in range(count):
            handled.append(driver.next_record(consumer).value)

    send_and_handle(0, 10)
    leader = healthy.leader(topic)
    leader.stop()  # a controlled shutdown: leadership moves first
    send_and_handle(10, 10)
    leader.start()
    healthy.wait_until_ready()
    send_and_handle(20, 10)
    driver.close(consumer)

    assert handled == [str(index).encode() for index in range(30)]
    sdk = sdk_of(driver)
    sends = by_key(sdk.spans("send"))
    processes = sdk.spans("process")
    assert len(processes) == 30
    for span in processes:
        key = str((span.attributes or {})[MESSAGING_KAFKA_MESSAGE_KEY])
        assert span.parent is not None
        assert span.parent.span_id == sends[key].context.span_id, "the trace goes on"
        assert span.context.trace_id == sends[key].context.trace_id
    assert DETACH_ERROR not in caplog.text


# -- one of two group members killed ------------------------------------------------------------


def handled_values(app: RunningApp) -> list[str]:
    """The values ``app`` printed as handled, in order."""
    return [line.split()[3] for line in app.stdout().splitlines() if line.startswith("handled ")]


def processed_keys(spans: list[ReceivedSpan], service: str) -> list[str]:
    """The keys of ``service``'s process spans, sorted."""
    return sorted(
        str(span.attributes[MESSAGING_KAFKA_MESSAGE_KEY])
        for span in spans
        if span.service_name == service and span.name.startswith("process ")
    )


def all_exported(receiver: WaitingReceiver, members: dict[str, RunningApp]) -> list[ReceivedSpan]:
    """Wait until every record each member (by service name) handled has its ended process
    span exported."""
    return receiver.wait_for_spans(
        lambda spans: all(
            processed_keys(spans, service) == sorted(handled_values(member))
            for service, member in members.items()
        ),
        timeout=30,
    )


@pytest.mark.parametrize("client", sorted(DRIVERS))
def test_a_group_member_killed_hands_its_partitions_over_and_traces_go_on(
    client: str, healthy: KafkaCluster, otlp_receiver: WaitingReceiver
) -> None:
    bootstrap = healthy.bootstrap_servers
    topic = create_topic(bootstrap, unique_topic("member-killed"), 2, 3)
    arguments = (client, bootstrap, topic, unique_topic("group"))
    endpoint = otlp_receiver.endpoint
    with (
        instrumented(ConfluentKafkaInstrumentor()) as sdk,
        start_app(GROUP_MEMBER, *arguments, service="doomed", endpoint=endpoint) as doomed,
        start_app(GROUP_MEMBER, *arguments, service="survivor", endpoint=endpoint) as survivor,
    ):
        doomed.wait_for_output("assigned")
        survivor.wait_for_output("assigned")
        producer = confluent_kafka.Producer({"bootstrap.servers": bootstrap})

        def send(values: range) -> None:
            for index in values:
                producer.produce(topic, str(index), str(index), partition=index % 2)
            assert producer.flush(10) == 0

        send(range(0, 20))
        otlp_receiver.wait_for_spans(
            lambda spans: (
                len(processed_keys(spans, "doomed") + processed_keys(spans, "survivor")) >= 20
            ),
            timeout=30,
        )
        members = {"doomed": doomed, "survivor": survivor}
        all_exported(otlp_receiver, members)
        # Both members had a partition before the kill, so the kill takes one away.
        assert handled_values(doomed) and handled_values(survivor)
        kill_app(doomed)
        send(range(20, 40))
        otlp_receiver.wait_for_spans(
            lambda spans: {str(n) for n in range(20, 40)} <= set(processed_keys(spans, "survivor")),
            timeout=30,
        )
        spans = all_exported(otlp_receiver, members)
        survived = stop_app(survivor)

    # Every record handled by someone, and all after the kill by the survivor, which took the
    # killed member's partition over. Each member's process spans ended, one per record it
    # handled, each the child of the record's send span: the traces went on.
    handled = set(handled_values(doomed)) | set(handled_values(survivor))
    assert {str(n) for n in range(40)} <= handled
    assert "Traceback" not in survived.stderr, survived.stderr
    sends = by_key(sdk.spans("send"))
    for span in spans:
        if span.name.startswith("process "):
            send_span = sends[str(span.attributes[MESSAGING_KAFKA_MESSAGE_KEY])]
            assert span.parent_span_id == format(send_span.context.span_id, "016x")
            assert span.trace_id == format(send_span.context.trace_id, "032x")
