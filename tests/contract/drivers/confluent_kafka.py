"""The driver of confluent-kafka's synchronous ``Producer`` and ``Consumer``."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Callable, ClassVar

from support.processes import free_port

from contract.drivers.base import (
    CLIENT_ID,
    CLUSTER_ID,
    NOW_MS,
    Ack,
    ConfluentCallForm,
    Driver,
    Handled,
    InvalidCall,
    Record,
    Undelivered,
    current_span_context,
)
from kafka_autotrace.confluent_kafka import ConfluentKafkaInstrumentor


def confluent_producer_config(bootstrap: str, config: Mapping[str, Any]) -> dict[str, Any]:
    return {"bootstrap.servers": bootstrap, "linger.ms": 0, "client.id": CLIENT_ID, **config}


def confluent_consumer_config(
    bootstrap: str, topic: str, config: Mapping[str, Any]
) -> dict[str, Any]:
    return {
        "bootstrap.servers": bootstrap,
        "group.id": f"{topic}-group",
        "enable.auto.commit": False,
        **config,
    }


def from_the_start(topics: Sequence[str]) -> list[Any]:
    import confluent_kafka

    return [confluent_kafka.TopicPartition(t, 0, confluent_kafka.OFFSET_BEGINNING) for t in topics]


def confluent_record(message: Any) -> Record:
    return Record(message.value(), message.key(), message.headers() or [], message.offset())


def handled(messages: list[Any]) -> list[Handled]:
    """``messages`` iterated as an application would, error events skipped."""
    return [
        Handled(confluent_record(message), current_span_context())
        for message in messages
        if message.error() is None
    ]


def next_message(poll: Callable[[float], Any]) -> Record:
    """The next message ``poll`` returns, error events skipped, as an application gets it."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        message = poll(0.5)
        if message is not None and message.error() is None:
            return confluent_record(message)
    raise AssertionError("no message within 10 s")


def unreachable() -> dict[str, Any]:
    """A confluent-kafka producer configuration with nothing to reach, whose messages time out
    quickly."""
    return {"bootstrap.servers": f"127.0.0.1:{free_port()}", "message.timeout.ms": 300}


def _after_one_queued(value: bytes) -> Callable[[Any, str], Any]:
    """produce() of ``value`` behind a message already queued, as the queue-full case needs."""

    def call(producer: Any, topic: str) -> Any:
        producer.produce(topic, b"fills the queue")
        return producer.produce(topic, value)

    return call


def _lacks_cluster_id() -> bool:
    try:
        import confluent_kafka
    except ImportError:
        return False
    return not hasattr(confluent_kafka.Producer, "cluster_id")


class ConfluentKafka(Driver):
    """``Producer`` and ``Consumer``: one message by poll(), batches by consume(n)."""

    name = "confluent-kafka"
    module = "confluent_kafka"
    instrumentor = ConfluentKafkaInstrumentor
    entry_point = "kafka_autotrace_confluent_kafka"
    acks_on_flush = True
    header_kinds = ("list", "dict", "none")
    missing: ClassVar[Mapping[str, str]] = (
        {CLUSTER_ID: "this confluent-kafka has no cluster_id() to read the cached id"}
        if _lacks_cluster_id()
        else {}
    )
    call_forms = (
        ConfluentCallForm("pos", lambda p, t, h, cb: p.produce(t, b"v", b"k", 0, cb, None, 0, h)),
        ConfluentCallForm(
            "callback", lambda p, t, h, cb: p.produce(t, b"v", b"k", callback=cb, headers=h)
        ),
        ConfluentCallForm(
            "all-keyword",
            lambda p, t, h, cb: p.produce(
                topic=t,
                key=b"k",
                value=b"v",
                partition=0,
                timestamp=NOW_MS,
                headers=h,
                on_delivery=cb,
            ),
        ),
        # librdkafka ignores on_delivery when callback is passed, even as None.
        ConfluentCallForm(
            "none-callback-then-on-delivery",
            lambda p, t, h, cb: p.produce(t, b"v", b"k", -1, None, cb, 0, h),
            reported_to="config",
        ),
    )
    invalid_calls = (
        InvalidCall(
            "queue-full",
            _after_one_queued(b"v"),
            config={"queue.buffering.max.messages": 1},
            error_type="BufferError",
            sends=2,
        ),
        InvalidCall(
            "size",
            _after_one_queued(b"x" * 4000),
            config={"message.max.bytes": 1000},
            error_type="MSG_SIZE_TOO_LARGE",
            sends=2,
        ),
    )

    def __init__(self, bootstrap: str) -> None:
        super().__init__(bootstrap)
        self.confluent_kafka = self.require()

    def shutdown(self) -> None:
        """Nothing to do: a confluent_kafka.Producer has nothing to close."""

    def producer(self, **config: Any) -> Any:
        return self.confluent_kafka.Producer(confluent_producer_config(self.bootstrap, config))

    def produce(
        self, topic: str, value: bytes | None, key: bytes | None = None, producer: Any = None
    ) -> Callable[[], Ack]:
        producer = producer or self._shared_producer()
        reports: list[tuple[Any, Any]] = []
        producer.produce(topic, value, key, on_delivery=lambda e, m: reports.append((e, m)))

        def ack() -> Ack:
            assert producer.flush(10) == 0
            [(error, message)] = reports
            assert error is None, error
            return Ack(message.partition(), message.offset())

        return ack

    def send_to_partition(self, topic: str, value: bytes, partition: int) -> Ack:
        producer = self._shared_producer()
        reports: list[Any] = []
        producer.produce(
            topic, value, partition=partition, on_delivery=lambda e, m: reports.append(m)
        )
        assert producer.flush(10) == 0
        [message] = reports
        return Ack(message.partition(), message.offset())

    def send_form(self, topic: str, form: ConfluentCallForm, headers: Any) -> Ack:
        """Also checks the message was reported to the callback librdkafka would call."""
        reports: list[tuple[str, Any, Any]] = []
        producer = self.producer(on_delivery=lambda e, m: reports.append(("config", e, m)))
        form.call(producer, topic, headers, lambda e, m: reports.append(("call", e, m)))
        assert producer.flush(10) == 0
        [(reported_to, error, message)] = reports
        assert (reported_to, error) == (form.reported_to, None)
        return Ack(message.partition(), message.offset())

    def undeliverable(self, tmp_path: Path) -> Undelivered:
        producer = self.producer(**unreachable(), log_level=0)
        reports: list[tuple[Any, Any]] = []
        producer.produce("doomed", b"lost", on_delivery=lambda e, m: reports.append((e, m.value())))
        assert producer.flush(10) == 0
        [(error, value)] = reports
        assert (error.name(), value) == ("_MSG_TIMED_OUT", b"lost")
        return Undelivered(error.name(), sends=1)

    def consumer(self, *topics: str, cls: Any = None, **config: Any) -> Any:
        """``cls``: Consumer by default, or the DeserializingConsumer."""
        consumer = (cls or self.confluent_kafka.Consumer)(
            confluent_consumer_config(self.bootstrap, topics[0], config)
        )
        consumer.assign(from_the_start(topics))
        return consumer

    def next_record(self, consumer: Any) -> Record:
        return next_message(consumer.poll)

    def poll_batch(self, consumer: Any, up_to: int, timeout: float) -> list[Handled]:
        return handled(consumer.consume(up_to, timeout))

    def consumer_past_the_end(self, topic: str) -> Any:
        config = confluent_consumer_config(self.bootstrap, topic, {"auto.offset.reset": "error"})
        consumer = self.confluent_kafka.Consumer(config)
        consumer.assign([self.confluent_kafka.TopicPartition(topic, 0, 1_000)])
        return consumer

    def receive_once(self, consumer: Any, method: str) -> None:
        if method == "next":
            consumer.poll(0.5)
        else:
            consumer.consume(1, 0.5)

    def record(self, raw: Any) -> Record:
        return confluent_record(raw)

    def patch_targets(self) -> tuple[list[Any], set[str]]:
        names = ("Producer", "SerializingProducer", "Consumer", "DeserializingConsumer")
        return [self.confluent_kafka], {f"confluent_kafka.{name}" for name in names}
