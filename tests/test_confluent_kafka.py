"""The confluent-kafka adapter against a real broker, with an in-process SDK recording spans."""

from __future__ import annotations

import contextvars
import gc
import importlib
import importlib.metadata
import re
import socket
import sys
import threading
import time
import types
from collections.abc import Iterator
from typing import Any, Callable

import confluent_kafka
import pytest
from confluent_kafka.serialization import StringDeserializer, StringSerializer
from opentelemetry import trace
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.semconv._incubating.attributes.messaging_attributes import (
    MESSAGING_BATCH_MESSAGE_COUNT,
    MESSAGING_CLIENT_ID,
    MESSAGING_CONSUMER_GROUP_NAME,
    MESSAGING_DESTINATION_NAME,
    MESSAGING_DESTINATION_PARTITION_ID,
    MESSAGING_KAFKA_MESSAGE_KEY,
    MESSAGING_KAFKA_MESSAGE_TOMBSTONE,
    MESSAGING_KAFKA_OFFSET,
    MESSAGING_OPERATION_TYPE,
    MESSAGING_SYSTEM,
)
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.semconv.attributes.server_attributes import SERVER_ADDRESS, SERVER_PORT
from opentelemetry.trace import SpanKind, StatusCode
from support.broker import create_topic, unique_topic
from support.otel import RecordingSdk, instrumented

from kafka_autotrace.confluent_kafka import ConfluentKafkaInstrumentor

CLASS_NAMES = ("Producer", "SerializingProducer", "Consumer", "DeserializingConsumer")
TRACEPARENT = "00-{:032x}-{:016x}-{:02x}"
NOW = int(time.time() * 1000)  # an old timestamp would let retention delete the message

Report = tuple[str, Any, Any]


@pytest.fixture
def sdk() -> Iterator[RecordingSdk]:
    with instrumented(ConfluentKafkaInstrumentor()) as recording:
        yield recording
    assert recording.open_spans.names() == [], "every span must end"


def _reinstrument(sdk: RecordingSdk) -> None:
    ConfluentKafkaInstrumentor().instrument(
        tracer_provider=sdk.tracer_provider, meter_provider=sdk.meter_provider
    )


def _producer(bootstrap: str, **config: Any) -> Any:
    return confluent_kafka.Producer({"bootstrap.servers": bootstrap, "linger.ms": 0, **config})


def _consumer(bootstrap: str, *topics: str, **config: Any) -> Any:
    """A consumer assigned to partition 0 of ``topics`` from the start: no group join."""
    consumer = confluent_kafka.Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": unique_topic("group"),
            "enable.auto.commit": False,
            **config,
        }
    )
    consumer.assign(
        [
            confluent_kafka.TopicPartition(name, 0, confluent_kafka.OFFSET_BEGINNING)
            for name in topics
        ]
    )
    return consumer


def _next(consumer: Any) -> Any:
    """The next message poll() returns (error events skipped), as an application gets it."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is not None and message.error() is None:
            return message
    raise AssertionError("no message within 10 s")


def _receive_one(bootstrap: str, topic: str, method: str) -> Any:
    """The one message in ``topic``, taken by ``poll()`` or ``consume()``."""
    consumer = _consumer(bootstrap, topic)
    if method == "poll":
        message = _next(consumer)
    else:
        [message] = consumer.consume(1, 10)
    consumer.close()
    return message


def _one(spans: list[ReadableSpan]) -> ReadableSpan:
    assert len(spans) == 1, [span.name for span in spans]
    return spans[0]


def _traceparent(span: ReadableSpan) -> bytes:
    context = span.context
    return TRACEPARENT.format(context.trace_id, context.span_id, int(context.trace_flags)).encode()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_send_span_ends_on_the_delivery_report_with_partition_and_offset(
    sdk: RecordingSdk, topic: str, bootstrap: str
) -> None:
    producer = _producer(bootstrap, **{"client.id": "orders"})
    reports: list[tuple[Any, Any]] = []
    producer.produce(topic, b"value", b"order-7", on_delivery=lambda e, m: reports.append((e, m)))
    assert sdk.spans() == [], "the span must wait for the delivery report"
    assert producer.flush(10) == 0

    [(error, message)] = reports
    assert error is None
    span = _one(sdk.spans("send"))
    assert span.name == f"send {topic}"
    assert span.kind is SpanKind.PRODUCER
    assert span.status.status_code is StatusCode.UNSET
    attributes = span.attributes or {}
    assert attributes[MESSAGING_SYSTEM] == "kafka"
    assert attributes[MESSAGING_OPERATION_TYPE] == "send"
    assert attributes[MESSAGING_DESTINATION_NAME] == topic
    assert attributes[MESSAGING_DESTINATION_PARTITION_ID] == str(message.partition())
    assert attributes[MESSAGING_KAFKA_OFFSET] == message.offset()
    assert attributes[MESSAGING_KAFKA_MESSAGE_KEY] == "order-7"
    assert attributes[MESSAGING_CLIENT_ID] == "orders"
    host, port = bootstrap.rsplit(":", 1)
    assert (attributes[SERVER_ADDRESS], attributes[SERVER_PORT]) == (host, int(port))


Produce = Callable[[Any, str, Any, Any], None]


@pytest.mark.parametrize(
    ("produce", "reported_to"),
    [
        pytest.param(
            lambda p, t, h, cb: p.produce(t, b"v", b"k", 0, cb, None, 0, h), "call", id="pos"
        ),
        pytest.param(
            lambda p, t, h, cb: p.produce(t, b"v", b"k", callback=cb, headers=h),
            "call",
            id="callback",
        ),
        pytest.param(
            lambda p, t, h, cb: p.produce(
                topic=t, key=b"k", value=b"v", partition=0, timestamp=NOW, headers=h, on_delivery=cb
            ),
            "call",
            id="all-keyword",
        ),
        # librdkafka ignores on_delivery when callback is passed, even as None.
        pytest.param(
            lambda p, t, h, cb: p.produce(t, b"v", b"k", -1, None, cb, 0, h),
            "config",
            id="none-callback-then-on-delivery",
        ),
    ],
)
@pytest.mark.parametrize(
    "headers",
    [
        pytest.param([("traceparent", b"stale"), ("app", b"1"), ("app", b"2")], id="list"),
        pytest.param({"app": b"1", "traceparent": b"stale"}, id="dict"),
        pytest.param(None, id="none"),
    ],
)
def test_every_call_form_is_traced_and_reports_to_the_callback_librdkafka_would_call(
    sdk: RecordingSdk,
    topic: str,
    bootstrap: str,
    produce: Produce,
    reported_to: str,
    headers: Any,
) -> None:
    reports: list[Report] = []
    producer = _producer(
        bootstrap, on_delivery=lambda e, m: reports.append(("config", e, m.offset()))
    )
    original = None if headers is None else type(headers)(headers)
    produce(producer, topic, headers, lambda e, m: reports.append(("call", e, m.offset())))
    producer.flush(10)
    assert headers == original, "the caller's headers were mutated"

    send = _one(sdk.spans("send"))
    assert reports == [(reported_to, None, (send.attributes or {})[MESSAGING_KAFKA_OFFSET])]
    message = _receive_one(bootstrap, topic, "poll")
    items = headers.items() if isinstance(headers, dict) else headers or []
    kept = [(key, value) for key, value in items if key != "traceparent"]
    assert message.headers() == [*kept, ("traceparent", _traceparent(send))]


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
    sdk: RecordingSdk, topic: str, bootstrap: str
) -> None:
    def config_callback(log: list[tuple[str, bytes]]) -> Callable[[Any, Any], None]:
        return lambda error, message: log.append(("config", message.value()))

    traced_config: list[tuple[str, bytes]] = []
    traced = _delivery_log(_producer(bootstrap, on_delivery=config_callback(traced_config)), topic)
    ConfluentKafkaInstrumentor().uninstrument()
    try:
        plain_config: list[tuple[str, bytes]] = []
        plain = _delivery_log(
            _producer(bootstrap, on_delivery=config_callback(plain_config)), topic
        )
    finally:
        _reinstrument(sdk)
    assert traced == plain
    assert sorted(traced_config) == sorted(plain_config)
    assert len(plain_config) == 4, "precondition: the config-level callback got 0, 4, 6 and 7"
    sends = sdk.spans("send")
    assert len(sends) == 8
    assert all(MESSAGING_KAFKA_OFFSET in (span.attributes or {}) for span in sends)


def test_spans_end_without_any_callback_and_callback_errors_leave_flush_as_before(
    sdk: RecordingSdk, topic: str, bootstrap: str
) -> None:
    producer = _producer(bootstrap)
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


def test_undeliverable_message_ends_with_error_and_the_callback_gets_it(
    sdk: RecordingSdk,
) -> None:
    producer = confluent_kafka.Producer(
        {
            "bootstrap.servers": f"127.0.0.1:{_closed_port()}",
            "message.timeout.ms": 300,
            "log_level": 0,
        }
    )
    reports: list[tuple[Any, Any]] = []
    producer.produce("doomed", b"lost", on_delivery=lambda e, m: reports.append((e, m.value())))
    assert producer.flush(10) == 0

    [(error, value)] = reports
    assert (error.name(), value) == ("_MSG_TIMED_OUT", b"lost")
    span = _one(sdk.spans("send"))
    assert span.status.status_code is StatusCode.ERROR
    assert (span.attributes or {})[ERROR_TYPE] == "_MSG_TIMED_OUT"
    assert [event.name for event in span.events] == ["exception"]


def test_only_error_reports_end_spans_when_queued_and_still_reach_the_callback(
    sdk: RecordingSdk, topic: str, bootstrap: str
) -> None:
    reports: list[str] = []
    config = {
        "delivery.report.only.error": True,
        "on_delivery": lambda e, m: reports.append(e.name()),
    }
    _producer(bootstrap, **config).produce(topic, b"delivered")
    doomed = confluent_kafka.Producer(
        {"bootstrap.servers": f"127.0.0.1:{_closed_port()}", "message.timeout.ms": 300, **config}
    )
    doomed.produce("doomed", b"lost")
    assert len(sdk.spans("send")) == 2, "spans must end when produce() returns, not leak"
    assert doomed.flush(10) == 0
    assert reports == ["_MSG_TIMED_OUT"]
    for span in sdk.spans("send"):
        assert MESSAGING_KAFKA_OFFSET not in (span.attributes or {})


@pytest.mark.parametrize(
    ("config", "value", "error_type"),
    [
        pytest.param({"queue.buffering.max.messages": 1}, b"v", "BufferError", id="queue-full"),
        pytest.param({"message.max.bytes": 1000}, b"x" * 4000, "MSG_SIZE_TOO_LARGE", id="size"),
    ],
)
def test_synchronous_errors_are_raised_unchanged_and_end_the_span(
    sdk: RecordingSdk,
    topic: str,
    bootstrap: str,
    config: dict[str, Any],
    value: bytes,
    error_type: str,
) -> None:
    def attempt() -> BaseException:
        producer = _producer(bootstrap, **config)
        producer.produce(topic, b"fills the queue")
        with pytest.raises(Exception) as raised:
            producer.produce(topic, value)
        producer.flush(10)
        return raised.value

    traced = attempt()
    ConfluentKafkaInstrumentor().uninstrument()
    try:
        plain = attempt()
    finally:
        _reinstrument(sdk)
    assert (type(traced), str(traced)) == (type(plain), str(plain))
    failed = [s for s in sdk.spans("send") if s.status.status_code is StatusCode.ERROR]
    assert len(failed) == 1
    assert (failed[0].attributes or {})[ERROR_TYPE] == error_type


def test_poll_parents_process_spans_and_keeps_them_current_while_handling(
    sdk: RecordingSdk, topic: str, bootstrap: str
) -> None:
    producer = _producer(bootstrap)
    for index in range(3):
        producer.produce(topic, f"m{index}".encode(), b"k")
    producer.flush(10)
    consumer = _consumer(bootstrap, topic)
    current = []
    for _ in range(3):
        message = _next(consumer)
        current.append(trace.get_current_span())
        producer.produce(f"{topic}-next", message.value())
    open_before_close = len(sdk.spans("process"))
    consumer.close()
    producer.flush(10)

    sends = [span for span in sdk.spans("send") if span.name == f"send {topic}"]
    by_offset = {(span.attributes or {})[MESSAGING_KAFKA_OFFSET]: span for span in sends}
    processes = sorted(
        sdk.spans("process"), key=lambda span: (span.attributes or {})[MESSAGING_KAFKA_OFFSET]
    )
    assert open_before_close == 2, "the last message's span must stay open until close()"
    assert len(processes) == 3
    assert not sdk.spans("poll"), "poll() returns one message: no poll span"
    forwarded = {span.parent.span_id: span for span in sdk.spans(f"send {topic}-next")}
    for process, active in zip(processes, current):
        attributes = process.attributes or {}
        send = by_offset[attributes[MESSAGING_KAFKA_OFFSET]]
        assert process.kind is SpanKind.CONSUMER
        assert process.context.trace_id == send.context.trace_id
        assert process.parent is not None and process.parent.span_id == send.context.span_id
        assert active.get_span_context().span_id == process.context.span_id
        assert attributes[MESSAGING_CONSUMER_GROUP_NAME].startswith("group-")
        assert attributes[MESSAGING_KAFKA_MESSAGE_KEY] == "k"
        assert forwarded[process.context.span_id].context.trace_id == send.context.trace_id
    assert not trace.get_current_span().get_span_context().is_valid


def test_consume_gets_a_poll_span_with_links_then_per_message_process_spans(
    sdk: RecordingSdk, bootstrap: str
) -> None:
    topics = [create_topic(bootstrap, unique_topic("consume")) for _ in range(2)]
    producer = _producer(bootstrap)
    for index in range(4):
        producer.produce(topics[index % 2], f"m{index}".encode())
    producer.flush(10)
    consumer = _consumer(bootstrap, *topics, **{"enable.partition.eof": True})
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
    poll = _one(sdk.spans("poll"))
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
        assert process.parent is not None and process.parent.span_id in sends
        assert process.context.trace_id == sends[process.parent.span_id].context.trace_id


def test_empty_polls_and_error_events_make_no_spans(
    sdk: RecordingSdk, topic: str, bootstrap: str
) -> None:
    consumer = _consumer(bootstrap, topic, **{"enable.partition.eof": True})
    deadline, empty_polls = time.monotonic() + 5, 0
    while (event := consumer.poll(0.2)) is None and time.monotonic() < deadline:
        empty_polls += 1
    batches = [consumer.consume(5, 0.1), consumer.consume(5, 0.1)]
    consumer.close()
    assert event is not None and event.error().code() == confluent_kafka.KafkaError._PARTITION_EOF
    assert empty_polls > 0
    assert batches == [[], []]
    assert sdk.spans() == []


HOSTILE = [
    pytest.param([("traceparent", b"\xff\xfe\xfd")], id="non-utf8"),
    pytest.param([("traceparent", b"00-zz-zz-zz")], id="malformed"),
    pytest.param([("traceparent", b"x"), ("traceparent", b"y")], id="duplicated"),
    pytest.param([("traceparent", b"00-" + b"a" * 200_000)], id="huge"),
    pytest.param([("traceparent", None), ("baggage", None)], id="none-values"),
    pytest.param([("tracestate", b"\x00" * 64), ("baggage", b"\xff=\xff")], id="binary-state"),
]


@pytest.mark.parametrize("method", ["poll", "consume"])
@pytest.mark.parametrize("headers", HOSTILE)
def test_hostile_trace_headers_never_break_poll_or_consume(
    sdk: RecordingSdk, topic: str, bootstrap: str, headers: list[Any], method: str
) -> None:
    producer = _producer(bootstrap)
    with suppress_instrumentation():  # deliver the hostile headers exactly as they are
        producer.produce(topic, b"payload", headers=headers)
    producer.flush(10)
    message = _receive_one(bootstrap, topic, method)
    assert message.value() == b"payload"
    assert message.headers() == headers
    assert sdk.spans("send") == []
    process = _one(sdk.spans("process"))
    assert process.parent is None, "a broken traceparent must not become a parent"


def test_of_repeated_trace_headers_the_last_one_wins(
    sdk: RecordingSdk, topic: str, bootstrap: str
) -> None:
    stale = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    fresh = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    producer = _producer(bootstrap)
    with suppress_instrumentation():
        producer.produce(topic, b"v", headers=[("traceparent", stale), ("traceparent", fresh)])
    producer.flush(10)
    _receive_one(bootstrap, topic, "poll")
    process = _one(sdk.spans("process"))
    assert process.parent is not None
    assert (process.parent.trace_id, process.parent.span_id) == (
        0x4BF92F3577B34DA6A3CE929D0E0E4736,
        0x00F067AA0BA902B7,
    )


@pytest.mark.parametrize("method", ["poll", "consume"])
def test_tombstones_are_traced(sdk: RecordingSdk, topic: str, bootstrap: str, method: str) -> None:
    producer = _producer(bootstrap)
    producer.produce(topic, None, b"gone")
    producer.flush(10)
    message = _receive_one(bootstrap, topic, method)
    assert message.value() is None
    send, process = _one(sdk.spans("send")), _one(sdk.spans("process"))
    assert process.parent is not None and process.parent.span_id == send.context.span_id
    for span in (send, process):
        assert (span.attributes or {})[MESSAGING_KAFKA_MESSAGE_TOMBSTONE] is True


def test_serializing_producer_and_deserializing_consumer_are_traced_once_with_app_values(
    sdk: RecordingSdk, topic: str, bootstrap: str
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
    consumer = confluent_kafka.DeserializingConsumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": unique_topic("group"),
            "key.deserializer": StringDeserializer(),
            "value.deserializer": StringDeserializer(),
        }
    )
    consumer.assign([confluent_kafka.TopicPartition(topic, 0, confluent_kafka.OFFSET_BEGINNING)])
    values = [_next(consumer).value(), _next(consumer).value()]
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
        assert process.parent is not None and process.parent.span_id == send.context.span_id
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


def test_instrument_twice_is_harmless_and_uninstrument_restores_the_originals(
    topic: str, bootstrap: str
) -> None:
    modules: list[types.ModuleType] = [confluent_kafka]
    expected = set(CLASS_NAMES)
    for name in ("confluent_kafka.aio", "confluent_kafka.experimental.aio"):
        try:
            aio = importlib.import_module(name)
        except ImportError:  # 2.12 has only the experimental one, earlier releases neither
            continue
        modules += [aio, aio.producer]
        expected |= {"AIOProducer", "AIOConsumer"}
        expected |= {"AsyncSerializingProducer", "AsyncDeserializingConsumer"} & set(vars(aio))
    originals = {(m, name): m.__dict__.get(name) for m in modules for name in m.__dict__}
    recording = RecordingSdk()
    instrumentor = ConfluentKafkaInstrumentor()
    instrumentor.instrument(tracer_provider=recording.tracer_provider)
    traced = {key: key[0].__dict__.get(key[1]) for key in originals}
    instrumentor.instrument(tracer_provider=recording.tracer_provider)
    assert {key: key[0].__dict__.get(key[1]) for key in originals} == traced
    assert {key[1] for key in originals if traced[key] is not originals[key]} == expected
    producer = _producer(bootstrap)
    instrumentor.uninstrument()
    assert {key: key[0].__dict__.get(key[1]) for key in originals} == originals
    assert all(key[0].__dict__.get(key[1]) is value for key, value in originals.items())
    producer.produce(topic, b"after uninstrument")
    producer.flush(10)
    consumer = _consumer(bootstrap, topic)
    assert _next(consumer).headers() is None, "no headers are added once uninstrumented"
    consumer.close()
    assert recording.spans() == []


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


def test_leaving_a_with_block_or_closing_from_another_thread_ends_the_span(
    sdk: RecordingSdk, topic: str, bootstrap: str, caplog: pytest.LogCaptureFixture
) -> None:
    producer = _producer(bootstrap)
    producer.produce(topic, b"v")
    producer.flush(10)
    ended = 0
    if hasattr(confluent_kafka.Consumer, "__enter__"):  # newer releases only
        with _consumer(bootstrap, topic) as consumer:
            _next(consumer)
        ended += 1
        assert len(sdk.spans("process")) == ended
    consumer = _consumer(bootstrap, topic)
    # Polled in a context of its own, so the span the closing thread cannot detach stays there.
    contextvars.copy_context().run(_next, consumer)
    closer = threading.Thread(target=consumer.close)
    closer.start()
    closer.join(10)
    assert len(sdk.spans("process")) == ended + 1
    assert "Failed to detach context" not in caplog.text
    assert not trace.get_current_span().get_span_context().is_valid


def test_metrics_are_recorded(sdk: RecordingSdk, topic: str, bootstrap: str) -> None:
    producer = _producer(bootstrap)
    for value in (b"a", b"b"):
        producer.produce(topic, value)
    producer.flush(10)
    consumer = _consumer(bootstrap, topic)
    _next(consumer)
    for _ in consumer.consume(1, 10):
        pass
    consumer.close()

    sent = sdk.metric_points("messaging.client.sent.messages")
    assert [point.value for point in sent] == [2]
    assert sent[0].attributes[MESSAGING_DESTINATION_NAME] == topic
    consumed = sdk.metric_points("messaging.client.consumed.messages")
    assert sum(point.value for point in consumed) == 2
    durations = sdk.metric_points("messaging.client.operation.duration")
    assert sorted(p.attributes["messaging.operation.name"] for p in durations) == [
        "receive",
        "send",
    ]
    for name in ("messaging.process.duration", "kafka_autotrace.record.age"):
        points = sdk.metric_points(name)
        assert sum(point.count for point in points) == 2, name
        assert points[0].attributes[MESSAGING_SYSTEM] == "kafka"


def test_the_entry_point_names_this_instrumentor() -> None:
    [entry_point] = [
        ep
        for ep in importlib.metadata.distribution("kafka-autotrace").entry_points
        if (ep.group, ep.name) == ("opentelemetry_instrumentor", "kafka_autotrace_confluent_kafka")
    ]
    assert entry_point.load() is ConfluentKafkaInstrumentor
