"""What every client adapter does, against a real broker, for each driver (see contract.drivers).

A test here runs once per client; where a client lacks what a test needs, its driver says
why and the test is skipped for it. What only one client does is tested in its own file.
"""

from __future__ import annotations

import contextvars
import copy
import importlib.metadata
import time
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
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
from opentelemetry.semconv.attributes.exception_attributes import (
    EXCEPTION_MESSAGE,
    EXCEPTION_STACKTRACE,
    EXCEPTION_TYPE,
)
from opentelemetry.semconv.attributes.server_attributes import SERVER_ADDRESS, SERVER_PORT
from opentelemetry.trace import SpanKind, StatusCode
from support.otel import RecordingSdk, instrumented, traceparent
from support.spans import one, parent_id

from contract.drivers.base import (
    CLIENT_ID,
    HEADER_KINDS,
    HEADERS,
    CallForm,
    Driver,
    InvalidCall,
    write_untraced,
)
from kafka_autotrace import IncomingContext, Settings
from kafka_autotrace.core.attributes import AttributeBuilder
from kafka_autotrace.core.pipeline import ORIGIN_HEADER

METHODS = ["next", "batch"]
"""How a test takes records: the client's one-record call, or its batch call."""

FORGED_TRACEPARENT = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
FORGED_TRACE_ID = 0x0AF7651916CD43DD8448EB211C80319C


def _by_offset(spans: list[ReadableSpan]) -> dict[int, ReadableSpan]:
    return {(span.attributes or {})[MESSAGING_KAFKA_OFFSET]: span for span in spans}


def _send_many(driver: Driver, topic: str, count: int, key: bytes | None = None) -> None:
    """``m0``, ``m1``, ... sent with a producer whose context reaches the consumer."""
    for index in range(count):
        driver.carrier.send(topic, f"m{index}".encode(), key)


# -- producing --------------------------------------------------------------------------------


def test_send_span_ends_on_the_ack_with_partition_and_offset(
    driver: Driver, sdk: RecordingSdk, topic: str, bootstrap: str
) -> None:
    acknowledged = driver.produce(topic, b"value", key=b"order-7")
    if driver.acks_on_flush:
        assert sdk.spans() == [], "the span must wait for the acknowledgement"
    ack = acknowledged()

    span = one(sdk.spans("send"))
    assert span.name == f"send {topic}"
    # A producer that cannot carry the span's context: not the message's creation context.
    assert span.kind is (SpanKind.CLIENT if HEADERS in driver.missing else SpanKind.PRODUCER)
    assert span.status.status_code is StatusCode.UNSET
    attributes = span.attributes or {}
    assert attributes[MESSAGING_SYSTEM] == "kafka"
    assert attributes[MESSAGING_OPERATION_TYPE] == "send"
    assert attributes[MESSAGING_DESTINATION_NAME] == topic
    assert attributes[MESSAGING_DESTINATION_PARTITION_ID] == str(ack.partition)
    assert attributes[MESSAGING_KAFKA_OFFSET] == ack.offset
    assert attributes[MESSAGING_KAFKA_MESSAGE_KEY] == "order-7"
    assert attributes[SERVER_ADDRESS] == bootstrap.rsplit(":", 1)[0]
    assert MESSAGING_KAFKA_MESSAGE_TOMBSTONE not in attributes
    # The same on every span of the client: only when asked for.
    assert MESSAGING_CLIENT_ID not in attributes
    assert SERVER_PORT not in attributes


@pytest.mark.settings(Settings(capture_client=True))
def test_the_client_id_and_server_port_are_recorded_when_asked_for(
    driver: Driver, sdk: RecordingSdk, topic: str, bootstrap: str
) -> None:
    driver.send(topic, b"v")
    driver.read(topic)
    port = int(bootstrap.rsplit(":", 1)[1])
    sent = one(sdk.spans("send")).attributes or {}
    assert (sent[MESSAGING_CLIENT_ID], sent[SERVER_PORT]) == (CLIENT_ID, port)
    assert (one(sdk.spans("process")).attributes or {})[SERVER_PORT] == port


def test_a_span_the_sampler_drops_gets_no_per_message_attributes_built(
    driver: Driver, sdk: RecordingSdk, topic: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a dropped span would carry (key, partition, offset, pipeline age) is not built;
    the sampler still sees what it may decide on."""
    sdk.sampler.decide(sampled=False)
    built: list[object] = []
    original = AttributeBuilder.message

    def counted(self: AttributeBuilder, *args: object) -> Any:
        built.append(args)
        return original(self, *args)

    monkeypatch.setattr(AttributeBuilder, "message", counted)
    driver.send(topic, b"v", key=b"k")
    driver.read(topic)
    assert built == []
    for seen in sdk.sampler.seen:
        assert {MESSAGING_SYSTEM, MESSAGING_OPERATION_TYPE, MESSAGING_DESTINATION_NAME} <= set(seen)
    assert len(sdk.sampler.seen) >= 2
    sdk.sampler.decide(sampled=True)
    driver.send(topic, b"v", key=b"k")
    assert len(built) == 1


@pytest.mark.needs(HEADERS)
def test_every_call_form_is_traced_and_keeps_the_callers_headers(
    driver: Any, sdk: RecordingSdk, topic: str, call_form: CallForm, header_kind: str
) -> None:
    headers = copy.deepcopy(HEADER_KINDS[header_kind])
    ack = driver.send_form(topic, call_form, headers)
    assert headers == HEADER_KINDS[header_kind], "the caller's headers were mutated"

    send = one(sdk.spans("send"))
    assert (send.attributes or {})[MESSAGING_KAFKA_OFFSET] == ack.offset
    record = driver.read(topic)
    assert record.value == call_form.value
    items = headers.items() if isinstance(headers, dict) else headers or []
    kept = [(key, value) for key, value in items if key != "traceparent"]
    assert record.headers == [*kept, ("traceparent", traceparent(send.context))]
    assert parent_id(one(sdk.spans("process"))) == send.context.span_id


@pytest.mark.needs(HEADERS)
def test_a_send_without_headers_gets_only_the_propagator_s_headers(
    driver: Driver, sdk: RecordingSdk, topic: str
) -> None:
    """A send that starts a pipeline carries no origin: its record's timestamp is one."""
    driver.send(topic, b"v")
    record = driver.read(topic)
    assert record.headers == [("traceparent", traceparent(one(sdk.spans("send")).context))]


def test_invalid_calls_raise_exactly_as_without_instrumentation(
    driver: Driver, sdk: RecordingSdk, topic: str, invalid_call: InvalidCall
) -> None:
    traced = driver.attempt(invalid_call, topic)
    driver.instrumentor().uninstrument()
    try:
        plain = driver.attempt(invalid_call, topic)
    finally:
        driver.instrumentor().instrument(
            tracer_provider=sdk.tracer_provider, meter_provider=sdk.meter_provider
        )
    assert (type(traced), str(traced)) == (type(plain), str(plain))
    sends = sdk.spans("send")
    assert len(sends) == invalid_call.sends, [span.status for span in sends]
    failed = one([span for span in sends if span.status.status_code is StatusCode.ERROR])
    expected = invalid_call.error_type or type(plain).__qualname__
    assert (failed.attributes or {})[ERROR_TYPE] == expected


def test_an_undeliverable_send_ends_with_error(
    driver: Driver, sdk: RecordingSdk, tmp_path: Path
) -> None:
    undelivered = driver.undeliverable(tmp_path)
    sends = sdk.spans("send")
    assert len(sends) == undelivered.sends
    lost = one([span for span in sends if span.status.status_code is StatusCode.ERROR])
    assert (lost.attributes or {})[ERROR_TYPE] == undelivered.error_type
    [event] = lost.events
    assert event.name == "messaging.send.exception"
    assert set(event.attributes or {}) == {EXCEPTION_TYPE, EXCEPTION_MESSAGE, EXCEPTION_STACKTRACE}


@pytest.mark.settings(Settings(exclude_topics=("skip-*",), capture_key=False))
def test_excluded_topics_and_key_capture_off(driver: Driver, sdk: RecordingSdk, topic: str) -> None:
    driver.send(f"skip-{topic}", b"v", key=b"secret")
    driver.send(topic, b"v", key=b"secret")
    span = one(sdk.spans("send"))
    assert span.name == f"send {topic}"
    assert MESSAGING_KAFKA_MESSAGE_KEY not in (span.attributes or {})


# -- consuming --------------------------------------------------------------------------------


def test_process_spans_are_parented_on_the_send_and_current_while_handling(
    driver: Driver, sdk: RecordingSdk, topic: str
) -> None:
    _send_many(driver, topic, 3, key=b"k")
    consumer = driver.consumer(topic)
    current = []
    for _ in range(3):
        record = driver.next_record(consumer)
        assert record.value == f"m{record.offset}".encode()
        current.append(driver.current())
    open_before_close = len(sdk.spans("process"))
    driver.close(consumer)

    sends = _by_offset(sdk.spans("send"))
    processes = sorted(_by_offset(sdk.spans("process")).items())
    assert open_before_close == 2, "the last record's span must stay open until close()"
    assert len(processes) == 3
    assert not sdk.spans("poll"), "a one-record call makes no poll span"
    for (offset, process), active in zip(processes, current):
        send = sends[offset]
        assert process.kind is SpanKind.CONSUMER
        assert process.context.trace_id == send.context.trace_id
        assert parent_id(process) == send.context.span_id
        assert active.span_id == process.context.span_id
        attributes = process.attributes or {}
        assert attributes[MESSAGING_CONSUMER_GROUP_NAME] == f"{topic}-group"
        assert attributes[MESSAGING_OPERATION_TYPE] == "process"
        assert attributes[MESSAGING_KAFKA_MESSAGE_KEY] == "k"
    assert not driver.current().is_valid, "close() must restore the application's context"


def test_a_message_produced_while_handling_one_continues_its_trace(
    driver: Driver, sdk: RecordingSdk, topic: str
) -> None:
    _send_many(driver, topic, 3)
    consumer = driver.consumer(topic)
    for _ in range(3):
        driver.send(f"{topic}-next", driver.next_record(consumer).value)
    driver.close(consumer)

    sends = _by_offset([span for span in sdk.spans("send") if span.name == f"send {topic}"])
    forwarded = {parent_id(span): span for span in sdk.spans(f"send {topic}-next")}
    processes = sdk.spans("process")
    assert len(processes) == len(forwarded) == 3
    for process in processes:
        send = sends[(process.attributes or {})[MESSAGING_KAFKA_OFFSET]]
        assert forwarded[process.context.span_id].context.trace_id == send.context.trace_id


def test_a_batch_gets_poll_spans_with_links_and_per_record_process_spans(
    driver: Driver, sdk: RecordingSdk, topic: str
) -> None:
    _send_many(driver, topic, 4)
    consumer = driver.consumer(topic)
    batches = driver.batches(consumer, 4)
    driver.close(consumer)

    handled = [item for batch in batches for item in batch]
    assert [item.record.value for item in handled] == [b"m0", b"m1", b"m2", b"m3"]
    sends = {span.context.span_id: span for span in sdk.spans("send")}
    polls = sorted(sdk.spans("poll"), key=lambda span: span.start_time or 0)
    counts = [(span.attributes or {})[MESSAGING_BATCH_MESSAGE_COUNT] for span in polls]
    assert counts == [len(batch) for batch in batches], "a poll span per batch with records"
    assert all(span.kind is SpanKind.CLIENT for span in polls)
    assert {link.context.span_id for span in polls for link in span.links} == set(sends)
    processes = {span.context.span_id: span for span in sdk.spans("process")}
    assert {item.current.span_id for item in handled} == set(processes), "current while handled"
    assert len(processes) == 4
    for process in processes.values():
        assert parent_id(process) in sends
        assert process.context.trace_id == sends[parent_id(process)].context.trace_id


def test_empty_polls_make_no_spans(driver: Driver, sdk: RecordingSdk, topic: str) -> None:
    consumer = driver.consumer(topic)
    batches = [driver.poll_batch(consumer, 5, 0.1) for _ in range(3)]
    driver.close(consumer)
    assert batches == [[], [], []]
    assert sdk.spans() == []


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(
    "headers",
    [
        pytest.param([("traceparent", b"\xff\xfe\xfd")], id="non-utf8"),
        pytest.param([("traceparent", b"00-zz-zz-zz")], id="malformed"),
        pytest.param([("traceparent", b"x"), ("traceparent", b"y")], id="duplicated"),
        pytest.param([("traceparent", b"00-" + b"a" * 200_000)], id="huge"),
        pytest.param([("traceparent", None), ("baggage", None)], id="none-values"),
        pytest.param([("tracestate", b"\x00" * 64), ("baggage", b"\xff=\xff")], id="binary-state"),
    ],
)
def test_hostile_trace_headers_are_delivered_and_traced_without_a_parent(
    driver: Driver, sdk: RecordingSdk, topic: str, headers: list[Any], method: str
) -> None:
    write_untraced(driver.bootstrap, topic, b"payload", headers)
    record = driver.read(topic, method)
    assert record.value == b"payload"
    assert record.headers == headers
    assert sdk.spans("send") == []
    assert one(sdk.spans("process")).parent is None, "a broken traceparent must not be a parent"


def test_of_repeated_trace_headers_the_last_one_wins(
    driver: Driver, sdk: RecordingSdk, topic: str
) -> None:
    stale = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    fresh = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    write_untraced(driver.bootstrap, topic, b"v", [("traceparent", stale), ("traceparent", fresh)])
    driver.read(topic)
    process = one(sdk.spans("process"))
    assert process.parent is not None
    assert (process.parent.trace_id, process.parent.span_id) == (
        0x4BF92F3577B34DA6A3CE929D0E0E4736,
        0x00F067AA0BA902B7,
    )


@pytest.mark.parametrize("method", METHODS)
def test_tombstones_are_traced(driver: Driver, sdk: RecordingSdk, topic: str, method: str) -> None:
    driver.send(topic, None, key=b"gone")
    record = driver.read(topic, method)
    assert record.value is None
    send, process = one(sdk.spans("send")), one(sdk.spans("process"))
    # A producer that cannot carry headers leaves its consumers to start their own traces.
    parent = send.context.span_id if HEADERS not in driver.missing else None
    assert parent_id(process) == parent
    for span in (send, process):
        assert (span.attributes or {})[MESSAGING_KAFKA_MESSAGE_TOMBSTONE] is True


def test_an_active_application_span_is_linked(
    driver: Driver, sdk: RecordingSdk, topic: str
) -> None:
    driver.carrier.send(topic, b"v")
    consumer = driver.consumer(topic)
    job = sdk.tracer_provider.get_tracer("app").start_span("batch-job")
    with driver.using(job):
        driver.next_record(consumer)
        driver.close(consumer)
    job.end()
    process, send = one(sdk.spans("process")), one(sdk.spans("send"))
    linked = [link.context.span_id for link in process.links]
    assert linked == [job.get_span_context().span_id]
    assert parent_id(process) == send.context.span_id


@pytest.mark.settings(Settings(incoming_context=IncomingContext.LINK))
def test_link_mode_never_joins_a_forged_sampled_trace(
    driver: Driver, sdk: RecordingSdk, topic: str
) -> None:
    write_untraced(driver.bootstrap, topic, b"v", [("traceparent", FORGED_TRACEPARENT)])
    driver.read(topic)
    process = one(sdk.spans("process"))
    assert process.parent is None
    assert process.context.trace_id != FORGED_TRACE_ID
    assert [link.context.trace_id for link in process.links] == [FORGED_TRACE_ID]


def test_the_next_call_or_close_from_another_thread_or_task_ends_the_span(
    driver: Driver, sdk: RecordingSdk, topic: str, caplog: pytest.LogCaptureFixture
) -> None:
    _send_many(driver, topic, 2)
    consumer = driver.consumer(topic)
    # Handled in a context of its own, which the thread or task ending its span cannot detach.
    contextvars.copy_context().run(driver.next_record, consumer)
    driver.elsewhere(lambda: driver.next_record(consumer))
    driver.elsewhere(lambda: driver.close(consumer))
    assert len(sdk.spans("process")) == 2
    assert "Failed to detach context" not in caplog.text
    assert not trace.get_current_span().get_span_context().is_valid


# -- pipeline age -----------------------------------------------------------------------------

PIPELINE_AGE = "kafka_autotrace.pipeline.age"
PIPELINE_ORIGIN = "kafka_autotrace.pipeline.origin"
EARLIER_S = 5


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _pipeline_ages(sdk: RecordingSdk) -> dict[str, Any]:
    """The pipeline-age histogram points by the origin they name."""
    return {point.attributes[PIPELINE_ORIGIN]: point for point in sdk.metric_points(PIPELINE_AGE)}


@pytest.mark.parametrize("method", METHODS)
def test_a_record_s_pipeline_age_is_measured_from_its_origin(
    driver: Driver, sdk: RecordingSdk, topic: str, method: str
) -> None:
    began = b"%d first-topic" % (_now_ms() - EARLIER_S * 1000)
    write_untraced(driver.bootstrap, topic, b"v", [(ORIGIN_HEADER, began)])
    driver.read(topic, method)
    [(origin, point)] = _pipeline_ages(sdk).items()
    assert origin == "first-topic"
    assert point.count == 1
    assert EARLIER_S <= point.sum < EARLIER_S + 5
    assert point.attributes[MESSAGING_DESTINATION_NAME] == topic
    assert point.attributes[MESSAGING_CONSUMER_GROUP_NAME] == f"{topic}-group"


@pytest.mark.needs(HEADERS)
def test_a_send_made_while_handling_a_record_carries_its_origin_on(
    driver: Driver, sdk: RecordingSdk, topic: str
) -> None:
    began = b"%d first-topic" % (_now_ms() - EARLIER_S * 1000)
    write_untraced(driver.bootstrap, topic, b"v", [(ORIGIN_HEADER, began)])
    consumer = driver.consumer(topic)
    driver.send(f"{topic}-next", driver.next_record(consumer).value)
    driver.close(consumer)
    forwarded = driver.read(f"{topic}-next")
    assert dict(forwarded.headers)[ORIGIN_HEADER] == began


UNTRUSTED_ORIGINS = [
    pytest.param(b"%d first-topic" % (_now_ms() + 3_600_000), id="future-dated"),
    pytest.param(b"yesterday first-topic", id="malformed"),
    pytest.param(b"%d first topic" % _now_ms(), id="not-a-topic-name"),
]


def _assert_the_record_began_its_own_pipeline(
    driver: Driver, sdk: RecordingSdk, topic: str
) -> None:
    """What follows a record whose origin is not taken: it is the start of its own pipeline,
    at its own timestamp and topic, measured and carried on as such."""
    consumer = driver.consumer(topic)
    record = driver.next_record(consumer)
    driver.send(f"{topic}-next", record.value)
    driver.close(consumer)
    assert list(_pipeline_ages(sdk)) == [topic]
    carried = dict(driver.read(f"{topic}-next").headers)[ORIGIN_HEADER]
    assert carried.split(b" ")[1] == topic.encode()
    assert int(carried.split(b" ")[0]) <= _now_ms()


@pytest.mark.needs(HEADERS)
def test_a_pipeline_begins_at_its_first_record(
    driver: Driver, sdk: RecordingSdk, topic: str
) -> None:
    """A send made outside any consumed record sends no origin: the record it stores is one."""
    driver.send(topic, b"v")
    _assert_the_record_began_its_own_pipeline(driver, sdk, topic)


@pytest.mark.needs(HEADERS)
@pytest.mark.parametrize("header", UNTRUSTED_ORIGINS)
def test_a_malformed_or_future_dated_origin_is_not_taken(
    driver: Driver, sdk: RecordingSdk, topic: str, header: bytes
) -> None:
    write_untraced(driver.bootstrap, topic, b"v", [(ORIGIN_HEADER, header)])
    _assert_the_record_began_its_own_pipeline(driver, sdk, topic)


@pytest.mark.needs(HEADERS)
@pytest.mark.settings(Settings(incoming_context=IncomingContext.LINK))
def test_in_link_mode_a_producer_s_origin_is_not_taken(
    driver: Driver, sdk: RecordingSdk, topic: str
) -> None:
    write_untraced(driver.bootstrap, topic, b"v", [(ORIGIN_HEADER, b"0 first-topic")])
    _assert_the_record_began_its_own_pipeline(driver, sdk, topic)


@pytest.mark.needs(HEADERS)
@pytest.mark.settings(Settings(propagate=False))
def test_with_propagation_off_no_origin_is_sent(
    driver: Driver, sdk: RecordingSdk, topic: str
) -> None:
    driver.send(topic, b"v")
    assert ORIGIN_HEADER not in dict(driver.read(topic).headers)


# -- instrumentation --------------------------------------------------------------------------


def test_hooks_run_and_their_errors_are_contained(driver: Driver, topic: str) -> None:
    seen: list[tuple[str, Any]] = []

    def produce_hook(span: Any, hook_topic: str, key: object, value: object) -> None:
        seen.append(("produce", (hook_topic, key, value)))
        span.set_attribute("app.tenant", "acme")
        raise RuntimeError("a broken hook")

    def consume_hook(span: Any, record: Any) -> None:
        seen.append(("consume", driver.record(record).value))
        raise RuntimeError("a broken hook")

    with instrumented(
        driver.instrumentor(), produce_hook=produce_hook, consume_hook=consume_hook
    ) as recording:
        driver.send(topic, b"v", key=b"k")
        assert driver.read(topic).value == b"v"
    assert seen == [("produce", (topic, b"k", b"v")), ("consume", b"v")]
    assert (one(recording.spans("send")).attributes or {})["app.tenant"] == "acme"


def test_metrics_are_recorded(driver: Driver, sdk: RecordingSdk, topic: str) -> None:
    for value in (b"a", b"b"):
        driver.send(topic, value)
    # Two consumers: kafka-python 2.0.x cannot mix iteration and poll() on one.
    for method in METHODS:
        driver.read(topic, method)

    sent = sdk.metric_points("messaging.client.sent.messages")
    assert [point.value for point in sent] == [2]
    assert sent[0].attributes[MESSAGING_DESTINATION_NAME] == topic
    consumed = sdk.metric_points("messaging.client.consumed.messages")
    assert sum(point.value for point in consumed) == 2
    durations = sdk.metric_points("messaging.client.operation.duration")
    counts = {point.attributes["messaging.operation.name"]: point.count for point in durations}
    assert counts == {"send": 2, "poll": 1}, "a one-record call is not a receive operation"
    for name in ("messaging.process.duration", "kafka_autotrace.record.age"):
        assert sum(point.count for point in sdk.metric_points(name)) == 2, name
    for name in (
        "messaging.client.operation.duration",
        "messaging.process.duration",
        "kafka_autotrace.record.age",
    ):
        assert all(p.attributes[MESSAGING_SYSTEM] == "kafka" for p in sdk.metric_points(name)), name


def test_instrument_twice_is_harmless_and_uninstrument_restores_the_originals(
    driver: Driver, topic: str
) -> None:
    namespaces, patched = driver.patch_targets()
    # What instrumentation could replace: functions and descriptors, not the class data a
    # client changes itself (aiokafka counts its producers in a class attribute).
    originals = {
        (ns, name): value
        for ns in namespaces
        for name, value in list(vars(ns).items())
        if callable(value) or hasattr(type(value), "__get__")
    }

    def now() -> dict[tuple[Any, str], Any]:
        return {key: vars(key[0]).get(key[1]) for key in originals}

    recording = RecordingSdk()
    instrumentor = driver.instrumentor()
    instrumentor.instrument(tracer_provider=recording.tracer_provider)
    traced = now()
    instrumentor.instrument(tracer_provider=recording.tracer_provider)
    assert now() == traced
    replaced = {
        f"{ns.__name__}.{name}"
        for (ns, name), value in traced.items()
        if value is not originals[ns, name]
    }
    assert replaced == patched
    producer = driver.producer()
    instrumentor.uninstrument()
    assert all(value is originals[key] for key, value in now().items())
    driver.send(topic, b"after uninstrument", producer=producer)
    assert driver.read(topic).headers == [], "no headers are added once uninstrumented"
    assert recording.spans() == []


def test_the_entry_point_names_this_instrumentor(driver: Driver) -> None:
    [entry_point] = [
        ep
        for ep in importlib.metadata.distribution("kafka-autotrace").entry_points
        if (ep.group, ep.name) == ("opentelemetry_instrumentor", driver.entry_point)
    ]
    assert entry_point.load() is driver.instrumentor
