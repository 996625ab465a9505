"""The kafka-python adapter against a real broker, with an in-process SDK recording the spans."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import kafka
import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import MessageSizeTooLargeError
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.semconv._incubating.attributes.messaging_attributes import (
    MESSAGING_BATCH_MESSAGE_COUNT,
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
from support.broker import start_private_broker
from support.otel import RecordingSdk

from kafka_autotrace.core.settings import IncomingContext, Settings
from kafka_autotrace.kafka_python import KafkaPythonInstrumentor

# kafka-python 2.0.x asserts on bad headers where 2.1+ raises TypeError.
BAD_HEADERS = (TypeError, AssertionError)
FORGED_TRACEPARENT = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture
def sdk(request: pytest.FixtureRequest) -> Iterator[RecordingSdk]:
    """kafka-python instrumented into an in-memory SDK; ``@pytest.mark.settings(...)`` passes
    a Settings for the test."""
    marker = request.node.get_closest_marker("settings")
    recording = RecordingSdk()
    instrumentor = KafkaPythonInstrumentor()
    instrumentor.instrument(
        tracer_provider=recording.tracer_provider,
        meter_provider=recording.meter_provider,
        settings=marker.args[0] if marker else Settings(),
    )
    yield recording
    instrumentor.uninstrument()


@pytest.fixture
def producer(bootstrap: str) -> Iterator[KafkaProducer]:
    client = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
    yield client
    client.close(timeout=5)


def _consumer(bootstrap: str, topic: str, **config: Any) -> KafkaConsumer:
    """A consumer assigned to partition 0 from the start: no group join, so tests stay fast."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=f"{topic}-group",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=10_000,
        **config,
    )
    consumer.assign([TopicPartition(topic, 0)])
    return consumer


def _one(spans: list[ReadableSpan]) -> ReadableSpan:
    assert len(spans) == 1, [span.name for span in spans]
    return spans[0]


def _poll_until(consumer: KafkaConsumer, count: int) -> list[Any]:
    """Poll until ``count`` records came back, iterating them as an application would."""
    seen: list[Any] = []
    for _ in range(50):
        for records in consumer.poll(timeout_ms=200).values():
            seen.extend(records)
        if len(seen) >= count:
            return seen
    raise AssertionError(f"only {len(seen)} of {count} records arrived")


def test_send_span_ends_on_the_ack_with_partition_and_offset(
    sdk: RecordingSdk, producer: KafkaProducer, topic: str, bootstrap: str
) -> None:
    metadata = producer.send(topic, b"value", key=b"order-7").get(timeout=10)

    span = _one(sdk.spans("send"))
    assert span.name == f"send {topic}"
    assert span.kind is SpanKind.PRODUCER
    assert span.status.status_code is StatusCode.UNSET
    attributes = span.attributes or {}
    assert attributes[MESSAGING_SYSTEM] == "kafka"
    assert attributes[MESSAGING_OPERATION_TYPE] == "send"
    assert attributes[MESSAGING_DESTINATION_NAME] == topic
    assert attributes[MESSAGING_DESTINATION_PARTITION_ID] == str(metadata.partition)
    assert attributes[MESSAGING_KAFKA_OFFSET] == metadata.offset
    assert attributes[MESSAGING_KAFKA_MESSAGE_KEY] == "order-7"
    host, port = bootstrap.rsplit(":", 1)
    assert (attributes[SERVER_ADDRESS], attributes[SERVER_PORT]) == (host, int(port))
    assert MESSAGING_KAFKA_MESSAGE_TOMBSTONE not in attributes


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda p, t, h: p.send(t, b"v", b"k", h), id="positional"),
        pytest.param(lambda p, t, h: p.send(t, value=b"v", key=b"k", headers=h), id="keyword"),
        pytest.param(lambda p, t, h: p.send(t, None, b"k", h), id="tombstone"),
        pytest.param(lambda p, t, h: p.send(topic=t, key=b"k", headers=h), id="all-keyword"),
    ],
)
def test_every_call_form_is_traced_and_keeps_the_callers_headers(
    sdk: RecordingSdk, producer: KafkaProducer, topic: str, bootstrap: str, call: Any
) -> None:
    headers = [("traceparent", b"stale"), ("app", b"1"), ("app", b"2")]
    original = list(headers)
    call(producer, topic, headers).get(timeout=10)
    assert headers == original, "the caller's header list was mutated"

    consumer = _consumer(bootstrap, topic)
    record = next(consumer)
    consumer.close()
    send = _one(sdk.spans("send"))
    context = send.context
    traceparent = (
        f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"
    ).encode()
    assert record.headers == [("app", b"1"), ("app", b"2"), ("traceparent", traceparent)]


def test_send_without_headers_gets_only_the_propagator_headers(
    sdk: RecordingSdk, producer: KafkaProducer, topic: str, bootstrap: str
) -> None:
    producer.send(topic, b"v").get(timeout=10)
    consumer = _consumer(bootstrap, topic)
    record = next(consumer)
    consumer.close()
    assert [key for key, _ in record.headers] == ["traceparent"]


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        pytest.param({"value": b"v", "headers": (("a", b"1"),)}, BAD_HEADERS, id="tuple-headers"),
        pytest.param(
            {"value": b"v", "headers": [("a", "str")]}, BAD_HEADERS, id="str-header-value"
        ),
        pytest.param({}, (ValueError, AssertionError), id="no-key-no-value"),
    ],
)
def test_invalid_calls_raise_exactly_as_without_instrumentation(
    sdk: RecordingSdk, producer: KafkaProducer, topic: str, kwargs: dict[str, Any], error: Any
) -> None:
    with pytest.raises(error) as traced:
        producer.send(topic, **kwargs)
    KafkaPythonInstrumentor().uninstrument()
    try:
        with pytest.raises(error) as plain:
            producer.send(topic, **kwargs)
    finally:
        KafkaPythonInstrumentor().instrument(
            tracer_provider=sdk.tracer_provider, meter_provider=sdk.meter_provider
        )
    assert type(traced.value) is type(plain.value)
    assert str(traced.value) == str(plain.value)
    span = _one(sdk.spans("send"))
    assert span.status.status_code is StatusCode.ERROR
    assert (span.attributes or {})[ERROR_TYPE] == type(plain.value).__qualname__


def test_undeliverable_send_ends_with_error_and_the_future_fails_as_before(
    sdk: RecordingSdk, tmp_path: Any
) -> None:
    private = start_private_broker(tmp_path / "broker.log")
    producer = KafkaProducer(
        bootstrap_servers=private.bootstrap_servers,
        request_timeout_ms=1000,
        retry_backoff_ms=100,
        reconnect_backoff_max_ms=200,
        max_block_ms=2000,
        **({"delivery_timeout_ms": 1500} if kafka.version.__version__ >= "2.1" else {}),
    )
    try:
        producer.send("doomed", b"warm-up").get(timeout=10)
        private.stop()
        future = producer.send("doomed", b"lost")
        errors: list[BaseException] = []
        future.add_errback(errors.append)
        with pytest.raises(Exception) as raised:
            future.get(timeout=30)
    finally:
        private.stop()
        producer.close(timeout=1)
    assert errors == [raised.value]
    lost = [s for s in sdk.spans("send") if s.status.status_code is StatusCode.ERROR]
    assert len(lost) == 1
    assert (lost[0].attributes or {})[ERROR_TYPE] == type(raised.value).__qualname__
    assert any(event.name == "exception" for event in lost[0].events)


def test_a_rejected_send_fails_unchanged_and_ends_the_span(
    sdk: RecordingSdk, topic: str, bootstrap: str
) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, max_request_size=512)
    try:
        # kafka-python 2.1+ raises; 2.0.x returns an already-failed future instead.
        with pytest.raises(MessageSizeTooLargeError) as raised:
            producer.send(topic, b"x" * 4096).get(timeout=10)
    finally:
        producer.close(timeout=5)
    span = _one(sdk.spans("send"))
    assert span.status.status_code is StatusCode.ERROR
    assert (span.attributes or {})[ERROR_TYPE] == "MessageSizeTooLargeError"
    assert str(raised.value) in (span.status.description or "")


def test_iteration_parents_process_spans_and_keeps_them_current_while_handling(
    sdk: RecordingSdk, producer: KafkaProducer, topic: str, bootstrap: str
) -> None:
    for index in range(3):
        producer.send(topic, f"m{index}".encode(), key=b"k")
    producer.flush()
    current_during_handling = []
    consumer = _consumer(bootstrap, topic)
    for count, record in enumerate(consumer, start=1):
        current_during_handling.append(trace.get_current_span())
        assert record.value == f"m{record.offset}".encode()
        if count == 3:
            break
    open_before_close = len(sdk.spans("process"))
    consumer.close()

    sends = sorted(
        sdk.spans("send"), key=lambda span: (span.attributes or {})[MESSAGING_KAFKA_OFFSET]
    )
    processes = sorted(
        sdk.spans("process"), key=lambda span: (span.attributes or {})[MESSAGING_KAFKA_OFFSET]
    )
    assert open_before_close == 2, "the last record's span must stay open until close()"
    assert len(processes) == 3
    assert not sdk.spans("poll"), "iteration is built on poll(); it must not add poll spans"
    for send, process, current in zip(sends, processes, current_during_handling):
        assert process.kind is SpanKind.CONSUMER
        assert process.context.trace_id == send.context.trace_id
        assert process.parent is not None and process.parent.span_id == send.context.span_id
        assert current.get_span_context().span_id == process.context.span_id
        attributes = process.attributes or {}
        assert attributes[MESSAGING_CONSUMER_GROUP_NAME] == f"{topic}-group"
        assert attributes[MESSAGING_OPERATION_TYPE] == "process"
        assert attributes[MESSAGING_KAFKA_MESSAGE_KEY] == "k"
    assert not trace.get_current_span().get_span_context().is_valid


def test_a_message_produced_while_handling_one_continues_its_trace(
    sdk: RecordingSdk, producer: KafkaProducer, topic: str, bootstrap: str
) -> None:
    producer.send(topic, b"first").get(timeout=10)
    consumer = _consumer(bootstrap, topic)
    record = next(consumer)
    producer.send(f"{topic}-next", record.value).get(timeout=10)
    consumer.close()
    first_send, next_send = sorted(sdk.spans("send"), key=lambda span: span.start_time or 0)
    process = _one(sdk.spans("process"))
    assert next_send.context.trace_id == first_send.context.trace_id
    assert next_send.parent is not None and next_send.parent.span_id == process.context.span_id


def test_poll_gets_a_batch_span_with_links_and_per_record_process_spans(
    sdk: RecordingSdk, producer: KafkaProducer, topic: str, bootstrap: str
) -> None:
    for index in range(4):
        producer.send(topic, f"m{index}".encode())
    producer.flush()
    consumer = _consumer(bootstrap, topic)
    records = _poll_until(consumer, 4)
    consumer.close()

    assert [record.value for record in records] == [b"m0", b"m1", b"m2", b"m3"]
    sends = {span.context.span_id: span for span in sdk.spans("send")}
    polls = sdk.spans("poll")
    assert polls, "a poll() that returned records must have a poll span"
    assert all(span.kind is SpanKind.CLIENT for span in polls)
    assert sum((span.attributes or {})[MESSAGING_BATCH_MESSAGE_COUNT] for span in polls) == 4
    linked = {link.context.span_id for span in polls for link in span.links}
    assert linked == set(sends)
    processes = sdk.spans("process")
    assert len(processes) == 4
    for process in processes:
        assert process.parent is not None and process.parent.span_id in sends
        assert process.context.trace_id == sends[process.parent.span_id].context.trace_id


def test_empty_polls_make_no_spans(sdk: RecordingSdk, topic: str, bootstrap: str) -> None:
    consumer = _consumer(bootstrap, topic)
    for _ in range(3):
        assert consumer.poll(timeout_ms=100) == {}
    consumer.close()
    assert sdk.spans() == []


def test_records_from_poll_are_still_plain_lists(
    sdk: RecordingSdk, producer: KafkaProducer, topic: str, bootstrap: str
) -> None:
    import copy
    import pickle

    producer.send(topic, b"v").get(timeout=10)
    consumer = _consumer(bootstrap, topic)
    records = _poll_until(consumer, 1)
    batch = consumer.poll(timeout_ms=0)
    consumer.close()
    assert batch == {}
    assert isinstance(records, list)
    assert pickle.loads(pickle.dumps(records)) == records
    assert copy.copy(records) == records


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param([("traceparent", b"\xff\xfe\xfd")], id="non-utf8"),
        pytest.param([("traceparent", b"00-zz-zz-zz")], id="malformed"),
        pytest.param([("traceparent", b"x"), ("traceparent", b"y")], id="duplicated"),
        pytest.param([("traceparent", b"00-" + b"a" * 200_000)], id="huge"),
        pytest.param([("tracestate", b"\x00" * 64), ("baggage", b"\xff=\xff")], id="binary-state"),
    ],
)
def test_hostile_trace_headers_are_delivered_and_traced(
    sdk: RecordingSdk, topic: str, bootstrap: str, headers: list[tuple[str, bytes]]
) -> None:
    KafkaPythonInstrumentor().uninstrument()  # deliver the hostile headers as they are
    raw = KafkaProducer(bootstrap_servers=bootstrap)
    raw.send(topic, b"payload", headers=headers).get(timeout=10)
    raw.close()
    KafkaPythonInstrumentor().instrument(
        tracer_provider=sdk.tracer_provider, meter_provider=sdk.meter_provider
    )
    consumer = _consumer(bootstrap, topic)
    record = next(consumer)
    consumer.close()
    assert record.value == b"payload"
    assert record.headers == headers
    process = _one(sdk.spans("process"))
    assert process.parent is None, "a broken traceparent must not become a parent"


def test_headers_that_are_none_are_delivered(
    sdk: RecordingSdk, producer: KafkaProducer, topic: str, bootstrap: str
) -> None:
    producer.send(topic, b"v", headers=None).get(timeout=10)
    consumer = _consumer(bootstrap, topic)
    record = next(consumer)
    consumer.close()
    assert record.value == b"v"
    assert _one(sdk.spans("process")).parent is not None


def test_tombstones_are_traced(
    sdk: RecordingSdk, producer: KafkaProducer, topic: str, bootstrap: str
) -> None:
    producer.send(topic, None, key=b"gone").get(timeout=10)
    consumer = _consumer(bootstrap, topic)
    record = next(consumer)
    consumer.close()
    assert record.value is None
    for span in (_one(sdk.spans("send")), _one(sdk.spans("process"))):
        assert (span.attributes or {})[MESSAGING_KAFKA_MESSAGE_TOMBSTONE] is True


def test_an_active_application_span_is_linked(
    sdk: RecordingSdk, producer: KafkaProducer, topic: str, bootstrap: str
) -> None:
    producer.send(topic, b"v").get(timeout=10)
    consumer = _consumer(bootstrap, topic)
    tracer = sdk.tracer_provider.get_tracer("app")
    with tracer.start_as_current_span("batch-job") as job:
        next(consumer)
        consumer.close()
    process = _one(sdk.spans("process"))
    assert [link.context.span_id for link in process.links] == [job.get_span_context().span_id]
    assert process.parent is not None
    assert process.parent.span_id == _one(sdk.spans("send")).context.span_id


@pytest.mark.settings(Settings(incoming_context=IncomingContext.LINK))
def test_link_mode_never_joins_a_forged_sampled_trace(
    sdk: RecordingSdk, topic: str, bootstrap: str
) -> None:
    KafkaPythonInstrumentor().uninstrument()
    raw = KafkaProducer(bootstrap_servers=bootstrap)
    raw.send(topic, b"v", headers=[("traceparent", FORGED_TRACEPARENT)]).get(timeout=10)
    raw.close()
    KafkaPythonInstrumentor().instrument(
        tracer_provider=sdk.tracer_provider,
        meter_provider=sdk.meter_provider,
        settings=Settings(incoming_context=IncomingContext.LINK),
    )
    consumer = _consumer(bootstrap, topic)
    next(consumer)
    consumer.close()
    process = _one(sdk.spans("process"))
    assert process.parent is None
    assert process.context.trace_id != 0x0AF7651916CD43DD8448EB211C80319C
    assert [link.context.trace_id for link in process.links] == [0x0AF7651916CD43DD8448EB211C80319C]


@pytest.mark.settings(Settings(exclude_topics=("skip-*",), capture_key=False))
def test_excluded_topics_and_key_capture_off(
    sdk: RecordingSdk, producer: KafkaProducer, topic: str
) -> None:
    producer.send(f"skip-{topic}", b"v", key=b"secret").get(timeout=10)
    producer.send(topic, b"v", key=b"secret").get(timeout=10)
    span = _one(sdk.spans("send"))
    assert span.name == f"send {topic}"
    assert MESSAGING_KAFKA_MESSAGE_KEY not in (span.attributes or {})


def test_close_from_another_thread_ends_the_span_without_detach_errors(
    sdk: RecordingSdk,
    producer: KafkaProducer,
    topic: str,
    bootstrap: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    producer.send(topic, b"v").get(timeout=10)
    consumer = _consumer(bootstrap, topic)
    # The process span stays attached to this thread (only this thread may detach it); the
    # test's own context is restored at the end so later tests start clean.
    token = otel_context.attach(otel_context.Context())
    try:
        next(consumer)
        closer = threading.Thread(target=consumer.close)
        closer.start()
        closer.join(10)
    finally:
        otel_context.detach(token)
    assert len(sdk.spans("process")) == 1
    assert "Failed to detach context" not in caplog.text


def test_hooks_run_and_their_errors_are_contained(
    producer: KafkaProducer, topic: str, bootstrap: str
) -> None:
    recording = RecordingSdk()
    seen: list[tuple[str, Any]] = []

    def produce_hook(span: Any, hook_topic: str, key: object, value: object) -> None:
        seen.append(("produce", (hook_topic, key, value)))
        span.set_attribute("app.tenant", "acme")
        raise RuntimeError("a broken hook")

    def consume_hook(span: Any, record: Any) -> None:
        seen.append(("consume", record.value))
        raise RuntimeError("a broken hook")

    instrumentor = KafkaPythonInstrumentor()
    instrumentor.instrument(
        tracer_provider=recording.tracer_provider,
        meter_provider=recording.meter_provider,
        produce_hook=produce_hook,
        consume_hook=consume_hook,
    )
    try:
        producer.send(topic, b"v", key=b"k").get(timeout=10)
        consumer = _consumer(bootstrap, topic)
        assert next(consumer).value == b"v"
        consumer.close()
    finally:
        instrumentor.uninstrument()
    assert seen == [("produce", (topic, b"k", b"v")), ("consume", b"v")]
    assert (_one(recording.spans("send")).attributes or {})["app.tenant"] == "acme"


def test_metrics_are_recorded(
    sdk: RecordingSdk, producer: KafkaProducer, topic: str, bootstrap: str
) -> None:
    producer.send(topic, b"v").get(timeout=10)
    consumer = _consumer(bootstrap, topic)
    next(consumer)
    consumer.close()
    sent = sdk.metric_points("messaging.client.sent.messages")
    assert [point.value for point in sent] == [1]
    assert sent[0].attributes[MESSAGING_DESTINATION_NAME] == topic
    consumed = sdk.metric_points("messaging.client.consumed.messages")
    assert [point.value for point in consumed] == [1]
    for name in (
        "messaging.client.operation.duration",
        "messaging.process.duration",
        "kafka_autotrace.record.age",
    ):
        points = sdk.metric_points(name)
        assert [point.count for point in points] == [1], name
        assert points[0].attributes[MESSAGING_SYSTEM] == "kafka"


def test_instrument_twice_is_harmless_and_uninstrument_restores_the_originals() -> None:
    originals = {
        (cls, name): cls.__dict__[name]
        for cls, name in (
            (KafkaProducer, "send"),
            (KafkaConsumer, "__next__"),
            (KafkaConsumer, "poll"),
            (KafkaConsumer, "close"),
        )
    }
    instrumentor = KafkaPythonInstrumentor()
    instrumentor.instrument()
    wrapped = {key: key[0].__dict__[key[1]] for key in originals}
    instrumentor.instrument()
    assert {key: key[0].__dict__[key[1]] for key in originals} == wrapped
    assert all(wrapped[key] is not originals[key] for key in originals)
    instrumentor.uninstrument()
    for (cls, name), original in originals.items():
        assert cls.__dict__[name] is original
