"""Assertions over spans an OTLP receiver collected from instrumented apps."""

from __future__ import annotations

from collections.abc import Iterable

from opentelemetry.semconv._incubating.attributes.messaging_attributes import (
    MESSAGING_DESTINATION_NAME,
    MESSAGING_DESTINATION_PARTITION_ID,
    MESSAGING_KAFKA_MESSAGE_KEY,
    MESSAGING_KAFKA_OFFSET,
)

from kafka_autotrace.tools.receiver import ReceivedSpan
from support.receiving import WaitingReceiver

RecordId = tuple[str, str, int]


def record_id(span: ReceivedSpan) -> RecordId:
    """(topic, partition, offset): what ties a send span to the process spans of its message."""
    attributes = span.attributes
    return (
        attributes[MESSAGING_DESTINATION_NAME],
        attributes[MESSAGING_DESTINATION_PARTITION_ID],
        attributes[MESSAGING_KAFKA_OFFSET],
    )


def named(spans: Iterable[ReceivedSpan], name: str) -> list[ReceivedSpan]:
    return [span for span in spans if span.name == name]


def count_named(name: str, count: int) -> object:
    """A ``wait_for_spans`` predicate: at least ``count`` spans called ``name`` arrived."""
    return lambda spans: len(named(spans, name)) >= count


def assert_process_spans_are_children_of_sends(
    sends: list[ReceivedSpan], processes: list[ReceivedSpan]
) -> None:
    """Every process span has its message's send span as parent, in the same trace."""
    unacknowledged = [span for span in sends if MESSAGING_KAFKA_OFFSET not in span.attributes]
    assert not unacknowledged, (
        f"{len(unacknowledged)} of {len(sends)} send spans have no offset: ended before the ack?"
    )
    by_record = {record_id(span): span for span in sends}
    assert len(by_record) == len(sends), "two send spans claim the same record"
    assert processes, "no process spans"
    for process in processes:
        send = by_record.get(record_id(process))
        assert send is not None, f"no send span for {record_id(process)}"
        assert process.kind == "CONSUMER" and send.kind == "PRODUCER"
        assert process.trace_id == send.trace_id, f"{record_id(process)} left the trace"
        assert process.parent_span_id == send.span_id, f"{record_id(process)}: wrong parent"


def wait_for_one_trace_per_message(
    receiver: WaitingReceiver,
    topic: str,
    count: int,
    producer: str = "orders-api",
    consumer: str = "orders-consumer",
) -> list[ReceivedSpan]:
    """Wait for ``count`` process spans on ``topic``, then check that each message made one
    trace of its own: a send span of service ``producer`` parenting a process span of
    ``consumer``. Returns the spans received."""
    spans = receiver.wait_for_spans(count_named(f"process {topic}", count), timeout=20)
    sends = named(spans, f"send {topic}")
    processes = named(spans, f"process {topic}")
    assert len(sends) == count and len(processes) == count
    assert {span.service_name for span in sends} == {producer}
    assert {span.service_name for span in processes} == {consumer}
    assert_process_spans_are_children_of_sends(sends, processes)
    assert len({span.trace_id for span in sends}) == count, "one trace per message"
    return spans


def assert_three_hops_in_one_trace(
    spans: list[ReceivedSpan], orders: str, shipments: str, count: int
) -> None:
    """A producer sends ``count`` orders, a stage forwards each as a shipment (with the order's
    key) while handling it, a consumer reads the shipments: each message makes one trace across
    all three. The key tells which order a shipment came from, so a send made under another
    order's context is caught even when every trace still has one shipment."""
    order_sends = named(spans, f"send {orders}")
    order_processes = named(spans, f"process {orders}")
    shipment_sends = named(spans, f"send {shipments}")
    shipment_processes = named(spans, f"process {shipments}")
    assert_process_spans_are_children_of_sends(order_sends, order_processes)
    assert_process_spans_are_children_of_sends(shipment_sends, shipment_processes)
    by_id = {span.span_id: span for span in order_processes}
    for shipment in shipment_sends:
        parent = by_id.get(shipment.parent_span_id)
        assert parent is not None, "the stage's send must be a child of the message it handles"
        assert shipment.trace_id == parent.trace_id
        key = shipment.attributes.get(MESSAGING_KAFKA_MESSAGE_KEY)
        assert key is not None, "the stage must forward each order's key"
        assert key == parent.attributes.get(MESSAGING_KAFKA_MESSAGE_KEY), (
            f"the shipment keyed {key!r} was sent under another order's context"
        )
    traces = {span.trace_id for span in order_sends}
    assert len(traces) == count
    assert {span.trace_id for span in shipment_processes} == traces
