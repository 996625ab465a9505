"""The spans of every client against the messaging semantic conventions (v1.44), span type by
span type: kind, name, the attributes a sampler sees at start, links and their attributes,
and how failures are recorded. docs/design.md's attribute table says where we depart.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.semconv._incubating.attributes.messaging_attributes import (
    MESSAGING_BATCH_MESSAGE_COUNT,
    MESSAGING_CONSUMER_GROUP_NAME,
    MESSAGING_DESTINATION_NAME,
    MESSAGING_DESTINATION_PARTITION_ID,
    MESSAGING_KAFKA_MESSAGE_KEY,
    MESSAGING_KAFKA_OFFSET,
    MESSAGING_OPERATION_NAME,
    MESSAGING_OPERATION_TYPE,
    MESSAGING_SYSTEM,
)
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.semconv.attributes.exception_attributes import (
    EXCEPTION_MESSAGE,
    EXCEPTION_STACKTRACE,
    EXCEPTION_TYPE,
)
from opentelemetry.trace import SpanKind, StatusCode
from support.otel import RecordingSdk
from support.spans import one, parent_id

from contract.drivers.base import HEADERS, Driver
from kafka_autotrace import Settings
from kafka_autotrace.core.attributes import AttributeBuilder

NOT_UTF8 = b"\xff\xfe-key"


def _attributes(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def _operation(span: ReadableSpan) -> tuple[str, SpanKind, str, str]:
    attributes = _attributes(span)
    return (
        span.name,
        span.kind,
        attributes[MESSAGING_OPERATION_NAME],
        attributes[MESSAGING_OPERATION_TYPE],
    )


def test_each_span_type_has_the_conventions_name_kind_and_operation(
    driver: Driver, sdk: RecordingSdk, topic: str
) -> None:
    driver.carrier.send(topic, b"v")
    consumer = driver.consumer(topic)
    driver.batches(consumer, 1)
    driver.close(consumer)
    assert _operation(one(sdk.spans(f"send {topic}"))) == (
        f"send {topic}",
        SpanKind.PRODUCER,
        "send",
        "send",
    )
    assert _operation(one(sdk.spans("poll"))) == (
        f"poll {topic}",
        SpanKind.CLIENT,
        "poll",
        "receive",
    )
    assert _operation(one(sdk.spans("process"))) == (
        f"process {topic}",
        SpanKind.CONSUMER,
        "process",
        "process",
    )
    for span in sdk.spans():
        attributes = _attributes(span)
        assert attributes[MESSAGING_SYSTEM] == "kafka"
        assert attributes[MESSAGING_DESTINATION_NAME] == topic
    for span in (one(sdk.spans("poll")), one(sdk.spans("process"))):
        assert _attributes(span)[MESSAGING_CONSUMER_GROUP_NAME] == f"{topic}-group"
    assert _attributes(one(sdk.spans("poll")))[MESSAGING_BATCH_MESSAGE_COUNT] == 1
    assert MESSAGING_BATCH_MESSAGE_COUNT not in _attributes(one(sdk.spans("process")))


@pytest.mark.parametrize("method", ["next", "batch"])
def test_a_process_span_has_its_message_s_creation_context_as_parent_and_not_as_a_link(
    driver: Driver, sdk: RecordingSdk, topic: str, method: str
) -> None:
    """A link to the parent would replace the parent in Jaeger (docs/design.md)."""
    driver.carrier.send(topic, b"v")
    driver.read(topic, method)
    send, process = one(sdk.spans(f"send {topic}")), one(sdk.spans("process"))
    assert parent_id(process) == send.context.span_id
    assert list(process.links) == []


def test_a_poll_span_s_links_carry_each_record_s_partition_offset_and_key(
    driver: Driver, sdk: RecordingSdk, topic: str
) -> None:
    acks = [driver.carrier.send(topic, f"m{index}".encode(), b"k%d" % index) for index in range(3)]
    consumer = driver.consumer(topic)
    driver.batches(consumer, 3)
    driver.close(consumer)
    sends = {span.context.span_id: span for span in sdk.spans(f"send {topic}")}
    links = [link for poll in sdk.spans("poll") for link in poll.links]
    assert len(links) == 3
    by_offset = {(link.attributes or {})[MESSAGING_KAFKA_OFFSET]: link for link in links}
    assert sorted(by_offset) == [ack.offset for ack in acks]
    for index, ack in enumerate(acks):
        link = by_offset[ack.offset]
        assert dict(link.attributes or {}) == {
            MESSAGING_DESTINATION_PARTITION_ID: str(ack.partition),
            MESSAGING_KAFKA_OFFSET: ack.offset,
            MESSAGING_KAFKA_MESSAGE_KEY: f"k{index}",
        }
        assert _attributes(sends[link.context.span_id])[MESSAGING_KAFKA_OFFSET] == ack.offset


@pytest.mark.settings(Settings(capture_key=False))
def test_with_key_capture_off_no_link_carries_a_key(
    driver: Driver, sdk: RecordingSdk, topic: str
) -> None:
    driver.carrier.send(topic, b"v", b"secret")
    driver.read(topic, "batch")
    [link] = one(sdk.spans("poll")).links
    assert MESSAGING_KAFKA_MESSAGE_KEY not in (link.attributes or {})


@pytest.mark.needs(HEADERS)
@pytest.mark.settings(Settings(propagate=False))
def test_a_send_whose_context_is_not_propagated_is_a_client_span(
    driver: Driver, sdk: RecordingSdk, topic: str
) -> None:
    driver.send(topic, b"v")
    driver.read(topic)
    send = one(sdk.spans(f"send {topic}"))
    assert _operation(send) == (f"send {topic}", SpanKind.CLIENT, "send", "send")
    assert one(sdk.spans("process")).parent is None


def test_a_key_that_is_not_utf8_is_left_out(driver: Driver, sdk: RecordingSdk, topic: str) -> None:
    driver.carrier.send(topic, b"v", NOT_UTF8)
    assert driver.read(topic, "batch").key == NOT_UTF8
    spans = [one(sdk.spans(f"send {topic}")), one(sdk.spans("process"))]
    assert all(MESSAGING_KAFKA_MESSAGE_KEY not in _attributes(span) for span in spans)
    [link] = one(sdk.spans("poll")).links
    assert MESSAGING_KAFKA_MESSAGE_KEY not in (link.attributes or {})


def test_the_sampler_sees_the_partition_of_a_process_span_and_of_a_send_to_a_chosen_one(
    driver: Driver, sdk: RecordingSdk, topic: str
) -> None:
    driver.send_to_partition(topic, b"chosen", 0)
    driver.send(topic, b"anywhere")
    driver.read(topic)
    chosen, anywhere, process = sdk.sampler.seen[:3]
    assert chosen[MESSAGING_OPERATION_TYPE] == anywhere[MESSAGING_OPERATION_TYPE] == "send"
    assert chosen[MESSAGING_DESTINATION_PARTITION_ID] == "0"
    assert MESSAGING_DESTINATION_PARTITION_ID not in anywhere, "not known before the ack"
    assert process[MESSAGING_OPERATION_TYPE] == "process"
    assert process[MESSAGING_DESTINATION_PARTITION_ID] == "0"


def _assert_exception_event(span: ReadableSpan, name: str, exception: BaseException) -> None:
    [event] = span.events
    assert event.name == name
    attributes = dict(event.attributes or {})
    kind = type(exception)
    assert attributes[EXCEPTION_TYPE] in (
        kind.__qualname__,
        f"{kind.__module__}.{kind.__qualname__}",
    )
    assert attributes[EXCEPTION_MESSAGE] == str(exception)
    assert kind.__name__ in attributes[EXCEPTION_STACKTRACE]
    assert set(attributes) == {EXCEPTION_TYPE, EXCEPTION_MESSAGE, EXCEPTION_STACKTRACE}


def _failed_receive(driver: Driver, sdk: RecordingSdk, consumer: Any, method: str) -> Any:
    """Receive until a call fails: what it raised, None where it returned an error event."""
    deadline = time.monotonic() + 10
    while not sdk.spans("poll"):
        assert time.monotonic() < deadline, "no receive failed"
        try:
            driver.receive_once(consumer, method)
        except Exception as raised:
            return raised
    return None


@pytest.mark.parametrize("method", ["next", "batch"])
def test_a_receive_that_fails_leaves_a_failed_poll_span_and_duration(
    driver: Driver, sdk: RecordingSdk, topic: str, method: str
) -> None:
    driver.carrier.send(topic, b"v")
    consumer = driver.consumer_past_the_end(topic)
    raised = _failed_receive(driver, sdk, consumer, method)
    driver.close(consumer)
    failed = one(sdk.spans("poll"))
    assert (failed.name, failed.kind) == ("poll", SpanKind.CLIENT)
    assert failed.status.status_code is StatusCode.ERROR
    attributes = _attributes(failed)
    assert attributes[MESSAGING_OPERATION_TYPE] == "receive"
    error_type = attributes[ERROR_TYPE]
    # What the client calls an offset out of range with no reset policy.
    assert error_type == ("_AUTO_OFFSET_RESET" if raised is None else "OffsetOutOfRangeError")
    [event] = failed.events
    assert event.name == "messaging.receive.exception"
    if raised is not None:
        _assert_exception_event(failed, "messaging.receive.exception", raised)
    assert set(event.attributes or {}) == {EXCEPTION_TYPE, EXCEPTION_MESSAGE, EXCEPTION_STACKTRACE}
    durations = sdk.metric_points("messaging.client.operation.duration")
    failures = [point for point in durations if ERROR_TYPE in point.attributes]
    assert [(point.attributes[ERROR_TYPE], point.count) for point in failures] == [(error_type, 1)]


def test_a_poll_span_the_sampler_drops_reads_no_record_for_its_links(
    driver: Driver, sdk: RecordingSdk, topic: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    driver.carrier.send(topic, b"v", b"k")
    built: list[object] = []
    original = AttributeBuilder.link

    def counted(self: AttributeBuilder, *args: Any) -> Any:
        built.append(args)
        return original(self, *args)

    monkeypatch.setattr(AttributeBuilder, "link", counted)
    sdk.sampler.decide(sampled=False)
    driver.read(topic, "batch")
    assert not sdk.spans("poll")
    assert built == []
    sdk.sampler.decide(sampled=True)
    driver.read(topic, "batch")
    assert len(one(sdk.spans("poll")).links) == len(built) == 1
