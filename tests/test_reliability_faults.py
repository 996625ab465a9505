"""Faults against a real broker: the broker down or going away, group rebalances, closing a
consumer from another thread.

In each, the application must see exactly what it would see without instrumentation, every
span that started must end (a pending send with ERROR when its message is lost), and nothing
may log a context detach error.
"""

from __future__ import annotations

import abc
import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import aiokafka
import confluent_kafka
import kafka
import pytest
from confluent_kafka.cimpl import Producer as UntracedProducer
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.trace import StatusCode
from support.broker import NoidaBroker, create_topic, start_private_broker, unique_topic
from support.network import closed_port
from support.otel import INSTRUMENTORS, RecordingSdk, instrumented

from kafka_autotrace.aiokafka import AIOKafkaInstrumentor
from kafka_autotrace.confluent_kafka import ConfluentKafkaInstrumentor
from kafka_autotrace.kafka_python import KafkaPythonInstrumentor

DETACH_ERROR = "Failed to detach context"
# kafka-python 2.1+ bounds a send by delivery_timeout_ms; 2.0.x only by request retries.
KAFKA_PYTHON_DELIVERY = (
    {"delivery_timeout_ms": 1500} if kafka.version.__version__ >= "2.1" else {"retries": 0}
)
# kafka-python 3's idempotent producer (its default) can leave sends made after the broker went
# away unanswered for ever: it waits for a producer id no broker can give, and neither
# delivery_timeout_ms nor close() ends them (reproduced without instrumentation). The send
# spans of such messages stay open with them; the tests are about the answers that do come.
KAFKA_PYTHON_NOT_IDEMPOTENT = (
    {"enable_idempotence": False} if "enable_idempotence" in KafkaProducer.DEFAULT_CONFIG else {}
)
FAST_FAILING_PRODUCER: dict[str, Any] = {
    "request_timeout_ms": 1000,
    "retry_backoff_ms": 100,
    "reconnect_backoff_max_ms": 200,
    "max_block_ms": 1000,
    **KAFKA_PYTHON_DELIVERY,
    **KAFKA_PYTHON_NOT_IDEMPOTENT,
}


def outcome(call: Callable[[], Any]) -> tuple[str, Any]:
    try:
        return ("returned", call())
    except Exception as error:
        return ("raised", (type(error), str(error)))


def error_types(spans: list[ReadableSpan]) -> list[str]:
    return sorted(
        str((span.attributes or {})[ERROR_TYPE])
        for span in spans
        if span.status.status_code is StatusCode.ERROR
    )


@pytest.fixture
def kafka_python_sdk() -> Iterator[RecordingSdk]:
    with instrumented(KafkaPythonInstrumentor()) as sdk:
        yield sdk


@pytest.fixture
def private_broker(tmp_path: Path) -> Iterator[NoidaBroker]:
    """A broker of this test's own, which it may stop under its clients' feet."""
    running = start_private_broker(tmp_path / "broker.log")
    yield running
    running.stop()


# -- broker down at start -----------------------------------------------------------------------


def kafka_python_against_nothing() -> tuple[tuple[str, Any], tuple[str, Any]]:
    """What a producer's send and a consumer's poll give with no broker at the address."""
    address = f"127.0.0.1:{closed_port()}"
    producer = KafkaProducer(bootstrap_servers=address, api_version=(2, 5), **FAST_FAILING_PRODUCER)
    consumer = KafkaConsumer(bootstrap_servers=address, api_version=(2, 5))
    consumer.assign([TopicPartition("orders", 0)])
    try:
        sent = outcome(lambda: producer.send("orders", b"v"))
        polled = outcome(lambda: consumer.poll(timeout_ms=300))
    finally:
        producer.close(timeout=0)
        consumer.close()
    return sent, polled


def test_kafka_python_with_the_broker_down_at_start_fails_as_uninstrumented() -> None:
    plain = kafka_python_against_nothing()
    with instrumented(KafkaPythonInstrumentor()) as sdk:
        traced = kafka_python_against_nothing()
    assert traced == plain
    assert plain[0][0] == "raised", "the send must have failed for this test to mean anything"
    assert error_types(sdk.spans("send")) == [plain[0][1][0].__qualname__]
    assert sdk.spans("process") == sdk.spans("poll") == []
    assert sdk.open_spans.names() == []


# -- broker going away mid-run ------------------------------------------------------------------


def test_kafka_python_broker_going_away_ends_every_pending_send(
    kafka_python_sdk: RecordingSdk, private_broker: NoidaBroker, caplog: pytest.LogCaptureFixture
) -> None:
    topic = create_topic(private_broker.bootstrap_servers, "going-away")
    producer = KafkaProducer(
        bootstrap_servers=private_broker.bootstrap_servers, linger_ms=50, **FAST_FAILING_PRODUCER
    )
    futures = [producer.send(topic, b"before") for _ in range(20)]
    producer.flush(timeout=10)
    futures += [producer.send(topic, b"in flight") for _ in range(100)]
    private_broker.stop()
    futures += [producer.send(topic, b"after") for _ in range(20)]
    errbacks: dict[int, BaseException] = {}
    for index, future in enumerate(futures):
        future.add_errback(lambda error, index=index: errbacks.setdefault(index, error))
    # One deadline for all, rather than a timeout per future: 140 of those could add up to an
    # hour should the client leave sends unanswered, which would then fail the test anyway.
    wait_for(lambda: all(future.is_done for future in futures), "every send's answer", 60)
    seen: list[BaseException | None] = [future.exception for future in futures]
    producer.close(timeout=1)

    failed = [error for error in seen if error is not None]
    assert failed, "the broker went away: some sends must have failed"
    assert errbacks == {index: error for index, error in enumerate(seen) if error is not None}
    sends = kafka_python_sdk.spans("send")
    assert len(sends) == len(futures)
    assert error_types(sends) == sorted(type(error).__qualname__ for error in failed)
    assert kafka_python_sdk.open_spans.names() == []
    assert DETACH_ERROR not in caplog.text


def test_kafka_python_consumer_outlives_its_broker_without_leaking_spans(
    kafka_python_sdk: RecordingSdk, private_broker: NoidaBroker, caplog: pytest.LogCaptureFixture
) -> None:
    topic = create_topic(private_broker.bootstrap_servers, "consumed-while-going-away")
    producer = KafkaProducer(bootstrap_servers=private_broker.bootstrap_servers)
    for _ in range(10):
        producer.send(topic, b"v")
    producer.close(timeout=10)
    consumer = KafkaConsumer(
        bootstrap_servers=private_broker.bootstrap_servers,
        auto_offset_reset="earliest",
        consumer_timeout_ms=2000,
        reconnect_backoff_max_ms=200,
    )
    consumer.assign([TopicPartition(topic, 0)])
    handled = []
    for record in consumer:  # ends by consumer_timeout_ms once the broker is gone
        handled.append(record)
        if len(handled) == 5:
            private_broker.stop()
    consumer.close()
    assert len(handled) >= 5
    assert len(kafka_python_sdk.spans("process")) == len(handled)
    assert kafka_python_sdk.open_spans.names() == []
    assert DETACH_ERROR not in caplog.text


# -- the same for confluent-kafka ---------------------------------------------------------------

CONFLUENT_FAST_FAILING = {"message.timeout.ms": 1500, "log_level": 0}


class DeliveryReports:
    """An application's delivery callback: the KafkaError name per report, None for success."""

    def __init__(self) -> None:
        self.errors: list[str | None] = []

    def __call__(self, error: Any, message: Any) -> None:
        self.errors.append(error.name() if error is not None else None)


def confluent_against_nothing(producer_class: type) -> tuple[Any, ...]:
    """What produce, flush and the delivery reports give with no broker at the address."""
    address = f"127.0.0.1:{closed_port()}"
    producer = producer_class({"bootstrap.servers": address, **CONFLUENT_FAST_FAILING})
    reports = DeliveryReports()
    produced = outcome(lambda: producer.produce("orders", b"v", on_delivery=reports))
    flushed = outcome(lambda: producer.flush(10))
    return produced, flushed, reports.errors


def test_confluent_with_the_broker_down_at_start_fails_as_uninstrumented() -> None:
    plain = confluent_against_nothing(UntracedProducer)
    with instrumented(ConfluentKafkaInstrumentor()) as sdk:
        traced = confluent_against_nothing(confluent_kafka.Producer)
        consumer = confluent_kafka.Consumer(
            {"bootstrap.servers": f"127.0.0.1:{closed_port()}", "group.id": "g", "log_level": 0}
        )
        consumer.assign([confluent_kafka.TopicPartition("orders", 0)])
        polled = [consumer.poll(0.2) for _ in range(3)]
        consumer.close()
    assert traced == plain
    assert plain[2] == ["_MSG_TIMED_OUT"], "the message must have failed for this to mean much"
    assert error_types(sdk.spans("send")) == ["_MSG_TIMED_OUT"]
    assert all(message is None or message.error() is not None for message in polled)
    assert sdk.spans("process") == []
    assert sdk.open_spans.names() == []


def test_confluent_broker_going_away_ends_every_pending_send(
    private_broker: NoidaBroker, caplog: pytest.LogCaptureFixture
) -> None:
    topic = create_topic(private_broker.bootstrap_servers, "going-away")
    with instrumented(ConfluentKafkaInstrumentor()) as sdk:
        producer = confluent_kafka.Producer(
            {"bootstrap.servers": private_broker.bootstrap_servers, **CONFLUENT_FAST_FAILING}
        )
        reports = DeliveryReports()
        for _ in range(20):
            producer.produce(topic, b"before", on_delivery=reports)
        assert producer.flush(10) == 0
        for _ in range(100):
            producer.produce(topic, b"in flight", on_delivery=reports)
        private_broker.stop()
        for _ in range(20):
            producer.produce(topic, b"after", on_delivery=reports)
        assert producer.flush(30) == 0
    failed = [error for error in reports.errors if error is not None]
    assert len(reports.errors) == 140 and failed, "the broker went away: some sends must fail"
    assert error_types(sdk.spans("send")) == sorted(failed)
    assert sdk.open_spans.names() == []
    assert DETACH_ERROR not in caplog.text


def test_confluent_consumer_outlives_its_broker_without_leaking_spans(
    private_broker: NoidaBroker, caplog: pytest.LogCaptureFixture
) -> None:
    topic = create_topic(private_broker.bootstrap_servers, "consumed-while-going-away")
    producer = UntracedProducer({"bootstrap.servers": private_broker.bootstrap_servers})
    for _ in range(10):
        producer.produce(topic, b"v")
    assert producer.flush(10) == 0
    with instrumented(ConfluentKafkaInstrumentor()) as sdk:
        consumer = confluent_kafka.Consumer(
            {
                "bootstrap.servers": private_broker.bootstrap_servers,
                "group.id": topic,
                "enable.auto.commit": False,  # or close() waits to commit to no broker
                "log_level": 0,
            }
        )
        consumer.assign(
            [confluent_kafka.TopicPartition(topic, 0, confluent_kafka.OFFSET_BEGINNING)]
        )
        handled = 0
        for _ in range(30):  # polls on for a while after the broker is gone
            message = consumer.poll(0.1 if handled >= 5 else 5)
            if message is not None and message.error() is None:
                handled += 1
                if handled == 5:
                    private_broker.stop()
        consumer.close()
    assert handled >= 5
    assert len(sdk.spans("process")) == handled
    assert sdk.open_spans.names() == []
    assert DETACH_ERROR not in caplog.text


# -- the same for aiokafka ----------------------------------------------------------------------

AIOKAFKA_FAST_FAILING: dict[str, Any] = {
    "request_timeout_ms": 1000,
    "retry_backoff_ms": 100,
}


async def aiokafka_against_nothing(address: str) -> tuple[tuple[str, Any], tuple[str, Any]]:
    """What starting a producer and a consumer gives with no broker at ``address``: aiokafka
    bootstraps in ``start()``, so that is where the application sees the fault."""
    producer = aiokafka.AIOKafkaProducer(bootstrap_servers=address, **AIOKAFKA_FAST_FAILING)
    consumer = aiokafka.AIOKafkaConsumer(bootstrap_servers=address, **AIOKAFKA_FAST_FAILING)

    async def start(client: Any) -> tuple[str, Any]:
        try:
            return ("returned", await client.start())
        except Exception as error:
            return ("raised", (type(error), str(error)))
        finally:
            await client.stop()

    return await start(producer), await start(consumer)


def test_aiokafka_with_the_broker_down_at_start_fails_as_uninstrumented() -> None:
    address = f"127.0.0.1:{closed_port()}"
    plain = asyncio.run(aiokafka_against_nothing(address))
    with instrumented(AIOKafkaInstrumentor()) as sdk:
        traced = asyncio.run(aiokafka_against_nothing(address))
    assert traced == plain
    assert [result[0] for result in plain] == ["raised", "raised"], "both must fail to mean much"
    assert sdk.spans() == []
    assert sdk.open_spans.names() == []


def test_aiokafka_broker_going_away_ends_every_pending_send(
    private_broker: NoidaBroker, caplog: pytest.LogCaptureFixture
) -> None:
    topic = create_topic(private_broker.bootstrap_servers, "going-away")

    async def run() -> list[BaseException | None]:
        producer = aiokafka.AIOKafkaProducer(
            bootstrap_servers=private_broker.bootstrap_servers,
            linger_ms=50,
            **AIOKAFKA_FAST_FAILING,
        )
        await producer.start()
        try:
            futures = [await producer.send(topic, b"before") for _ in range(20)]
            await producer.flush()
            futures += [await producer.send(topic, b"in flight") for _ in range(100)]
            private_broker.stop()
            futures += [await producer.send(topic, b"after") for _ in range(20)]
            # One deadline for all: the test is about the answers that do come.
            await asyncio.wait_for(asyncio.wait(futures), 60)
        finally:
            await asyncio.wait_for(producer.stop(), 30)
        return [future.exception() for future in futures]

    with instrumented(AIOKafkaInstrumentor()) as sdk:
        seen = asyncio.run(run())
    failed = [error for error in seen if error is not None]
    assert len(seen) == 140 and failed, "the broker went away: some sends must fail"
    sends = sdk.spans("send")
    assert len(sends) == len(seen)
    assert error_types(sends) == sorted(type(error).__qualname__ for error in failed)
    assert sdk.open_spans.names() == []
    assert DETACH_ERROR not in caplog.text


async def aiokafka_consume_as_broker_goes(broker: NoidaBroker) -> tuple[int, Any]:
    """Records handled from a topic whose broker stops after the first five, and what the
    consumer's ``stop()`` then gives (aiokafka may raise the fetch it had in flight)."""
    topic = create_topic(broker.bootstrap_servers, "consumed-while-going-away")
    producer = UntracedProducer({"bootstrap.servers": broker.bootstrap_servers})
    for _ in range(10):
        producer.produce(topic, b"v")
    assert producer.flush(10) == 0
    consumer = aiokafka.AIOKafkaConsumer(
        bootstrap_servers=broker.bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,  # or stop() waits to commit to no broker
        **AIOKAFKA_FAST_FAILING,
    )
    await consumer.start()
    consumer.assign([aiokafka.TopicPartition(topic, 0)])
    handled = 0
    for _ in range(30):  # polls on for a while after the broker is gone
        batches = await consumer.getmany(timeout_ms=100 if handled >= 5 else 5000)
        for records in batches.values():
            for _ in records:  # each record's process span spans its handling
                handled += 1
        if handled >= 5 and broker.process is not None:
            broker.stop()
    try:
        stopped: Any = ("returned", await asyncio.wait_for(consumer.stop(), 30))
    except BaseException as error:  # CancelledError included
        stopped = ("raised", type(error))
    return handled, stopped


def test_aiokafka_consumer_outlives_its_broker_without_leaking_spans(
    private_broker: NoidaBroker, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    plain_broker = start_private_broker(tmp_path / "plain-broker.log")
    try:
        plain = asyncio.run(aiokafka_consume_as_broker_goes(plain_broker))
    finally:
        plain_broker.stop()
    with instrumented(AIOKafkaInstrumentor()) as sdk:
        handled, stopped = asyncio.run(aiokafka_consume_as_broker_goes(private_broker))
    assert (handled, stopped) == plain
    assert handled >= 5
    assert len(sdk.spans("process")) == handled
    assert sdk.open_spans.names() == []
    assert DETACH_ERROR not in caplog.text


# -- rebalances and closing from another thread -------------------------------------------------


class GroupMember(abc.ABC):
    """A consumer in a group, polling in its own thread as a service's worker would, and
    recording what it handled. ``leave()`` stops the thread and closes the consumer from the
    test's thread: the process span of the last record handled is then ended by a thread
    other than the one it is current in."""

    def __init__(self) -> None:
        self.handled: list[tuple[int, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.handled.extend(self._poll())

    @abc.abstractmethod
    def _poll(self) -> list[tuple[int, int]]:
        """(partition, offset) of the records one poll handed over, handled as they come."""

    @abc.abstractmethod
    def assigned(self) -> int:
        """How many partitions the member holds now."""

    @abc.abstractmethod
    def _close(self) -> None: ...

    def leave(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self._close()


def member_config(bootstrap: str, group: str) -> dict[str, Any]:
    """A group member's configuration in kafka-python's spelling, which aiokafka shares."""
    return {
        "bootstrap_servers": bootstrap,
        "group_id": group,
        "auto_offset_reset": "earliest",
        "session_timeout_ms": 6000,
        "heartbeat_interval_ms": 500,
    }


class KafkaPythonMember(GroupMember):
    def __init__(self, bootstrap: str, topic: str, group: str) -> None:
        self.consumer = KafkaConsumer(
            topic, consumer_timeout_ms=200, **member_config(bootstrap, group)
        )
        super().__init__()

    def _poll(self) -> list[tuple[int, int]]:
        return [(record.partition, record.offset) for record in self.consumer]

    def assigned(self) -> int:
        return len(self.consumer.assignment())

    def _close(self) -> None:
        self.consumer.close()


class ConfluentMember(GroupMember):
    def __init__(self, bootstrap: str, topic: str, group: str) -> None:
        self._partitions = 0
        self.consumer = confluent_kafka.Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": group,
                "auto.offset.reset": "earliest",
                "session.timeout.ms": 6000,
                "heartbeat.interval.ms": 500,
                "log_level": 3,
            }
        )
        self.consumer.subscribe([topic], on_assign=self._assign, on_revoke=self._revoke)
        super().__init__()

    # The default (eager) assignors hand over the whole assignment, and revoke all of it.
    def _assign(self, consumer: Any, partitions: list[Any]) -> None:
        self._partitions = len(partitions)

    def _revoke(self, consumer: Any, partitions: list[Any]) -> None:
        self._partitions = 0

    def _poll(self) -> list[tuple[int, int]]:
        message = self.consumer.poll(0.2)
        if message is None or message.error() is not None:
            return []
        return [(message.partition(), message.offset())]

    def assigned(self) -> int:
        return self._partitions

    def _close(self) -> None:
        self.consumer.close()


class AIOKafkaMember(GroupMember):
    """An asyncio consumer whose event loop runs in the member's thread while it polls with
    ``getmany`` (the batch API); stopped from the test's thread once that loop is idle."""

    def __init__(self, bootstrap: str, topic: str, group: str) -> None:
        self._loop = asyncio.new_event_loop()
        self.consumer = self._loop.run_until_complete(self._start(bootstrap, topic, group))
        super().__init__()

    @staticmethod
    async def _start(bootstrap: str, topic: str, group: str) -> Any:
        consumer = aiokafka.AIOKafkaConsumer(topic, **member_config(bootstrap, group))
        await consumer.start()
        return consumer

    def _poll(self) -> list[tuple[int, int]]:
        batches = self._loop.run_until_complete(self.consumer.getmany(timeout_ms=200))
        return [
            (record.partition, record.offset) for records in batches.values() for record in records
        ]

    def assigned(self) -> int:
        return len(self.consumer.assignment())

    def _close(self) -> None:
        self._loop.run_until_complete(self.consumer.stop())
        self._loop.close()


MEMBERS: dict[str, type[GroupMember]] = {
    "kafka-python": KafkaPythonMember,
    "confluent-kafka": ConfluentMember,
    "aiokafka": AIOKafkaMember,
}


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.mark.parametrize("client", sorted(MEMBERS))
def test_group_rebalances_and_closing_from_another_thread_leak_no_spans(
    client: str, bootstrap: str, caplog: pytest.LogCaptureFixture
) -> None:
    topic = create_topic(bootstrap, unique_topic("rebalance"), partitions=4)
    group = unique_topic("rebalance-group")
    member = MEMBERS[client]
    producer = confluent_kafka.Producer({"bootstrap.servers": bootstrap})

    def produce(count: int) -> None:
        for index in range(count):
            producer.produce(topic, b"v", str(index).encode())
        assert producer.flush(10) == 0

    def distinct() -> int:
        return len(set(first.handled) | set(second.handled))

    with instrumented(INSTRUMENTORS[client]()) as sdk:
        first = member(bootstrap, topic, group)
        produce(200)
        wait_for(lambda: len(first.handled) >= 200, "the first member to consume")
        second = member(bootstrap, topic, group)  # joins: the partitions are split
        wait_for(lambda: first.assigned() and second.assigned(), "both members to hold some")
        produce(200)
        wait_for(lambda: distinct() >= 400, "both members to consume")
        first.leave()  # leaves: the second member takes every partition
        wait_for(lambda: second.assigned() == 4, "the second member to take over")
        produce(200)
        wait_for(lambda: distinct() >= 600, "the survivor to consume")
        second.leave()

    # A rebalance redelivers what was handled but not committed yet (at-least-once): each
    # delivery is a message handed to the application, and gets its own span.
    assert distinct() == 600
    assert len(sdk.spans("process")) == len(first.handled) + len(second.handled)
    assert sdk.open_spans.names() == []
    assert DETACH_ERROR not in caplog.text


# -- several consumers in one thread ------------------------------------------------------------


def test_consumers_interleaved_in_one_thread_leave_no_stale_context(
    bootstrap: str, topic: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A loop that polls two consumers in turn (two clusters, a retry topic) ends their process
    spans out of the order it started them. The record being handled must always be the
    current span, and once both consumers are closed nothing of theirs may stay current."""
    producer = UntracedProducer({"bootstrap.servers": bootstrap})
    for index in range(6):
        producer.produce(topic, str(index).encode())
    assert producer.flush(10) == 0
    with (
        instrumented(KafkaPythonInstrumentor()) as sdk,
        instrumented(ConfluentKafkaInstrumentor(), sdk),
    ):
        first = KafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest")
        first.assign([TopicPartition(topic, 0)])
        second = confluent_kafka.Consumer({"bootstrap.servers": bootstrap, "group.id": topic})
        second.assign([confluent_kafka.TopicPartition(topic, 0, 0)])
        handled = []
        for _ in range(3):
            for take in (lambda: next(first), lambda: second.poll(10)):
                take()
                handled.append(trace.get_current_span().get_span_context().span_id)
        first.close()
        second.close()
        left_current = trace.get_current_span().get_span_context()
    processes = {span.context.span_id for span in sdk.spans("process")}
    assert len(processes) == 6 and set(handled) == processes
    assert not left_current.is_valid, "an ended process span is still current"
    assert sdk.open_spans.names() == []
    assert DETACH_ERROR not in caplog.text
