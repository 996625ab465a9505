"""What only the confluent-kafka adapter does, against a real broker; what every adapter does
is tested once for all clients in tests/contract/."""

from __future__ import annotations

import gc
import re
import sys
import time
import types
from collections.abc import Iterator
from typing import Any, Callable

import confluent_kafka
import pytest
from confluent_kafka.serialization import StringDeserializer, StringSerializer
from contract.drivers.base import driver_fixture
from contract.drivers.confluent_kafka import ConfluentKafka, unreachable
from opentelemetry import trace
from opentelemetry.semconv._incubating.attributes.messaging_attributes import (
    MESSAGING_BATCH_MESSAGE_COUNT,
    MESSAGING_DESTINATION_NAME,
    MESSAGING_KAFKA_MESSAGE_KEY,
    MESSAGING_KAFKA_OFFSET,
)
from opentelemetry.trace import SpanKind, StatusCode
from support.broker import create_topic, unique_topic
from support.otel import RecordingSdk, instrumented
from support.spans import one, parent_id

from kafka_autotrace.confluent_kafka import ConfluentKafkaInstrumentor

CLASS_NAMES = ("Producer", "SerializingProducer", "Consumer", "DeserializingConsumer")


@pytest.fixture
def sdk() -> Iterator[RecordingSdk]:
    with instrumented(ConfluentKafkaInstrumentor()) as recording:
        yield recording
    assert recording.open_spans.names() == [], "every span must end"


driver = driver_fixture(ConfluentKafka)


def _reinstrument(sdk: RecordingSdk) -> None:
    ConfluentKafkaInstrumentor().instrument(
        tracer_provider=sdk.tracer_provider, meter_provider=sdk.meter_provider
    )


def _delivery_log(producer: Any, topic: str) -> list[tuple[str, bytes]]:
    """Which callback got each message, for every way of passing one."""
    log: list[tuple[str, bytes]] = []

    def callback(name: str) -> Callable[[Any, Any], None]:
        return lambda error, message: log.append((name, message.value()))

    producer.produce(topic, b"0")
    producer.produce(topic, b"1", on_delivery=callback("on_delivery"))
    producer.produce(topic, b"2", callback=callback("callback"))
    producer.produce(topic, b"3", callback=callback("callback"), on_delivery=callback("x"))
    producer.produce(topic, b"4", callback=None, on_delivery=callback("on_delivery"))
    producer.produce(topic, b"5", None, -1, callback("positional"))
    producer.produce(topic, b"6", None, -1, None, callback("positional-alias"))
    producer.produce(topic, b"7", on_delivery=None)
    assert producer.flush(10) == 0
    return sorted(log, key=lambda entry: entry[1])


def test_delivery_callbacks_are_called_exactly_as_without_instrumentation(
    sdk: RecordingSdk, driver: ConfluentKafka, topic: str
) -> None:
    def config_callback(log: list[tuple[str, bytes]]) -> Callable[[Any, Any], None]:
        return lambda error, message: log.append(("config", message.value()))

    traced_config: list[tuple[str, bytes]] = []
    traced = _delivery_log(driver.producer(on_delivery=config_callback(traced_config)), topic)
    ConfluentKafkaInstrumentor().uninstrument()
    try:
        plain_config: list[tuple[str, bytes]] = []
        plain = _delivery_log(driver.producer(on_delivery=config_callback(plain_config)), topic)
    finally:
        _reinstrument(sdk)
    assert traced == plain
    assert sorted(traced_config) == sorted(plain_config)
    assert len(plain_config) == 4, "precondition: the config-level callback got 0, 4, 6 and 7"
    sends = sdk.spans("send")
    assert len(sends) == 8
    assert all(MESSAGING_KAFKA_OFFSET in (span.attributes or {}) for span in sends)


def test_spans_end_without_any_callback_and_callback_errors_leave_flush_as_before(
    sdk: RecordingSdk, driver: ConfluentKafka, topic: str
) -> None:
    producer = driver.producer()
    producer.produce(topic, b"no callback")
    assert producer.flush(10) == 0
    assert len(sdk.spans("send")) == 1

    def broken(error: Any, message: Any) -> None:
        raise ValueError("the application's callback failed")

    producer.produce(topic, b"broken callback", on_delivery=broken)
    with pytest.raises(ValueError, match="the application's callback failed"):
        producer.flush(10)
    spans = sdk.spans("send")
    assert len(spans) == 2
    assert all(span.status.status_code is StatusCode.UNSET for span in spans)


def test_only_error_reports_end_spans_when_queued_and_still_reach_the_callback(
    sdk: RecordingSdk, driver: ConfluentKafka, topic: str
) -> None:
    reports: list[str] = []
    config = {
        "delivery.report.only.error": True,
        "on_delivery": lambda e, m: reports.append(e.name()),
    }
    driver.producer(**config).produce(topic, b"delivered")
    doomed = driver.producer(**unreachable(), **config)
    doomed.produce("doomed", b"lost")
    assert len(sdk.spans("send")) == 2, "spans must end when produce() returns, not leak"
    assert doomed.flush(10) == 0
    assert reports == ["_MSG_TIMED_OUT"]
    for span in sdk.spans("send"):
        assert MESSAGING_KAFKA_OFFSET not in (span.attributes or {})


def test_a_batch_from_two_topics_with_error_events_gets_one_unnamed_poll_span(
    sdk: RecordingSdk, driver: ConfluentKafka, bootstrap: str
) -> None:
    """consume() returns error events (here end-of-partition) among the messages: they get
    no process span and are not counted; and a batch of two topics is named after neither."""
    topics = [create_topic(bootstrap, unique_topic("consume")) for _ in range(2)]
    producer = driver.producer()
    for index in range(4):
        producer.produce(topics[index % 2], f"m{index}".encode())
    producer.flush(10)
    consumer = driver.consumer(*topics, **{"enable.partition.eof": True})
    messages = consumer.consume(6, 10)  # 4 messages, 2 EOF events
    handled = []
    for message in messages:
        if message.error() is None:
            handled.append((message.value(), trace.get_current_span().get_span_context()))
    consumer.close()

    assert isinstance(messages, list)
    assert any(message.error() is not None for message in messages), "precondition: EOF events"
    assert sorted(value for value, _ in handled) == [b"m0", b"m1", b"m2", b"m3"]
    sends = {span.context.span_id: span for span in sdk.spans("send")}
    poll = one(sdk.spans("poll"))
    assert poll.name == "poll", "a batch from two topics is named after neither"
    assert poll.kind is SpanKind.CLIENT
    attributes = poll.attributes or {}
    assert MESSAGING_DESTINATION_NAME not in attributes
    assert attributes[MESSAGING_BATCH_MESSAGE_COUNT] == 4
    assert {link.context.span_id for link in poll.links} == set(sends)
    processes = {span.context.span_id: span for span in sdk.spans("process")}
    assert len(processes) == 4, "error events get no process span"
    for _, active in handled:
        process = processes[active.span_id]
        assert parent_id(process) in sends
        assert process.context.trace_id == sends[parent_id(process)].context.trace_id


def test_empty_polls_and_error_events_make_no_spans(
    sdk: RecordingSdk, driver: ConfluentKafka, topic: str
) -> None:
    consumer = driver.consumer(topic, **{"enable.partition.eof": True})
    deadline, empty_polls = time.monotonic() + 5, 0
    while (event := consumer.poll(0.2)) is None and time.monotonic() < deadline:
        empty_polls += 1
    batches = [consumer.consume(5, 0.1), consumer.consume(5, 0.1)]
    consumer.close()
    assert event is not None and event.error().code() == confluent_kafka.KafkaError._PARTITION_EOF
    assert empty_polls > 0
    assert batches == [[], []]
    assert sdk.spans() == []


def test_serializing_producer_and_deserializing_consumer_are_traced_once_with_app_values(
    sdk: RecordingSdk, driver: ConfluentKafka, topic: str, bootstrap: str
) -> None:
    producer = confluent_kafka.SerializingProducer(
        {
            "bootstrap.servers": bootstrap,
            "key.serializer": StringSerializer(),
            "value.serializer": StringSerializer(),
        }
    )
    reports: list[Any] = []
    producer.produce(topic, "order-1", "hello", on_delivery=lambda e, m: reports.append(e))
    producer.produce(topic, key="order-2", value="world", headers={"app": b"1"})
    producer.flush(10)
    consumer = driver.consumer(
        topic,
        cls=confluent_kafka.DeserializingConsumer,
        **{"key.deserializer": StringDeserializer(), "value.deserializer": StringDeserializer()},
    )
    values = [driver.next_record(consumer).value, driver.next_record(consumer).value]
    consumer.close()

    assert reports == [None]
    assert values == ["hello", "world"]
    sends = sorted(sdk.spans("send"), key=lambda s: (s.attributes or {})[MESSAGING_KAFKA_OFFSET])
    processes = sorted(
        sdk.spans("process"), key=lambda s: (s.attributes or {})[MESSAGING_KAFKA_OFFSET]
    )
    assert [(s.attributes or {})[MESSAGING_KAFKA_MESSAGE_KEY] for s in sends] == [
        "order-1",
        "order-2",
    ]
    assert len(processes) == 2, "the internal poll() must not add spans"
    for send, process in zip(sends, processes):
        assert parent_id(process) == send.context.span_id
        assert (process.attributes or {})[MESSAGING_KAFKA_MESSAGE_KEY] == (send.attributes or {})[
            MESSAGING_KAFKA_MESSAGE_KEY
        ]


def test_classes_stay_real_subclasses_and_other_methods_work(topic: str, bootstrap: str) -> None:
    originals = {name: getattr(confluent_kafka, name) for name in CLASS_NAMES}
    early = originals["Producer"]({"bootstrap.servers": bootstrap})
    with instrumented(ConfluentKafkaInstrumentor()) as recording:

        class CountingProducer(confluent_kafka.Producer):  # type: ignore[misc]
            produced = 0

            def produce(self, *args: Any, **kwargs: Any) -> None:
                self.produced += 1
                super().produce(*args, **kwargs)

        producer = CountingProducer({"bootstrap.servers": bootstrap})
        serializing = confluent_kafka.SerializingProducer({"bootstrap.servers": bootstrap})
        producer.produce(topic, b"v")
        assert len(producer) == 1
        assert producer.flush(10) == 0
        assert topic in producer.list_topics(topic, timeout=10).topics
        early.produce(topic, b"untraced")
        early.flush(10)
        for name, original in originals.items():
            assert getattr(confluent_kafka, name) is not original
            assert issubclass(getattr(confluent_kafka, name), original)
        assert isinstance(producer, originals["Producer"])
        assert isinstance(early, confluent_kafka.Producer), "clients made before still match"
        assert isinstance(serializing, confluent_kafka.Producer)
        assert not isinstance(early, CountingProducer)
        assert issubclass(originals["SerializingProducer"], confluent_kafka.Producer)
        assert producer.produced == 1
        assert len(recording.spans("send")) == 1, "the early client is not traced"
        if getattr(
            originals["SerializingProducer"], "__parameters__", ()
        ):  # generic in newer releases
            typed = confluent_kafka.SerializingProducer[str, str]({"bootstrap.servers": bootstrap})
            assert type(typed) is confluent_kafka.SerializingProducer


def test_classes_bound_before_instrumentation_are_named_in_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    early = types.ModuleType("early_app")
    early.Producer = confluent_kafka.Producer  # type: ignore[attr-defined]
    legacy = types.ModuleType("legacy_app")
    exec(  # a module that subclassed the original class when it was imported
        "import confluent_kafka\nclass LegacyConsumer(confluent_kafka.Consumer): pass",
        legacy.__dict__,
    )
    sys.modules["early_app"], sys.modules["legacy_app"] = early, legacy
    instrumentor = ConfluentKafkaInstrumentor()
    try:
        with caplog.at_level("WARNING", logger="kafka_autotrace"):
            instrumentor.instrument()
    finally:
        instrumentor.uninstrument()
        del sys.modules["early_app"], sys.modules["legacy_app"]
        legacy.__dict__.clear()
        gc.collect()
    warnings = [r for r in caplog.records if r.name.startswith("kafka_autotrace")]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    message = warnings[0].getMessage()
    # Other test modules may have bound the classes too: each group is "modules (class)".
    assert re.search(r"early_app[^;(]*\(confluent_kafka\.Producer\)", message), message
    assert re.search(r"legacy_app\.LegacyConsumer[^;(]*\(confluent_kafka\.Consumer\)", message), (
        message
    )
    assert "not traced" in message


def test_leaving_a_with_block_ends_the_span(
    sdk: RecordingSdk, driver: ConfluentKafka, topic: str
) -> None:
    if not hasattr(confluent_kafka.Consumer, "__enter__"):
        pytest.skip("this confluent-kafka's Consumer is no context manager (newer releases only)")
    driver.send(topic, b"v")
    with driver.consumer(topic) as consumer:
        driver.next_record(consumer)
    assert len(sdk.spans("process")) == 1
