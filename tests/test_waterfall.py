"""Waterfalls rendered from real OTLP exports: SDK spans with chosen times and ids, sent by the
OTLP/HTTP exporter, decoded by the receiver, then drawn.

Exact text is compared where the layout is the point; elsewhere each test checks the one line
that carries its fact (a flag, a wait), so a layout change fails one test, not all of them.
"""

from __future__ import annotations

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags
from support.exports import T0, Services, trace_id
from support.receiving import WaitingReceiver

from kafka_autotrace.core.attributes import PIPELINE_AGE_ATTRIBUTE, PIPELINE_ORIGIN
from kafka_autotrace.core.gaps import SKIPPED_COUNT, SKIPPED_FROM
from kafka_autotrace.tools.receiver import TRACES_PATH
from kafka_autotrace.tools.waterfall import ASCII, render_traces, summarize

PRODUCER, CONSUMER = SpanKind.PRODUCER, SpanKind.CONSUMER


def pipeline(services: Services, offset: int, start: float, billed: bool = True) -> None:
    """One order through orders-api → shipping → billing; times in ms after ``start``."""
    message = {"offset": offset, "key": f"order-{offset}"}
    order = services.hop("orders-api", "send orders", PRODUCER, start, start + 2, **message)
    handling = services.hop(
        "shipping", "process orders", CONSUMER, start + 5, start + 9, order, **message
    )
    shipment = services.hop(
        "shipping", "send shipments", PRODUCER, start + 6, start + 8, handling, **message
    )
    if billed:
        services.hop(
            "billing", "process shipments", CONSUMER, start + 15, start + 17, shipment, **message
        )


def line_of(text: str, name: str) -> str:
    (line,) = [line for line in text.splitlines() if line.lstrip(" │├└─|`-").startswith(name)]
    return line


def test_one_message_through_three_services(
    otlp_receiver: WaitingReceiver, services: Services
) -> None:
    pipeline(services, offset=3, start=0)

    assert render_traces(otlp_receiver.spans()) == (
        "trace 00000000000000000000000000000001 · key order-3 · orders-api → shipping → billing"
        " · 17.0 ms\n"
        "  send orders                 orders-api  │████                            │"
        "    2.0 ms  p0@3\n"
        "  └─ process orders           shipping    │   ░░░░░░████████               │"
        "    4.0 ms  p0@3  waited 3.0 ms in Kafka\n"
        "     └─ send shipments        shipping    │           █████                │"
        "    2.0 ms  p0@3\n"
        "        └─ process shipments  billing     │               ░░░░░░░░░░░░░████│"
        "    2.0 ms  p0@3  waited 7.0 ms in Kafka"
    )


def test_ascii_rendering(otlp_receiver: WaitingReceiver, services: Services) -> None:
    pipeline(services, offset=3, start=0)

    text = render_traces(otlp_receiver.spans(), ASCII)

    assert text.isascii()
    assert text.splitlines()[0].endswith(
        " - key order-3 - orders-api > shipping > billing - 17.0 ms"
    )
    assert line_of(text, "process shipments").endswith(
        "|               .............####|    2.0 ms  p0@3  waited 7.0 ms in Kafka"
    )


def test_spans_are_grouped_by_trace_oldest_first(
    otlp_receiver: WaitingReceiver, services: Services
) -> None:
    pipeline(services, offset=1, start=100)  # trace 1, exported first, starts later
    pipeline(services, offset=0, start=0)  # trace 2

    blocks = render_traces(otlp_receiver.spans()).split("\n\n")

    assert [block.splitlines()[0].split(" · ")[:2] for block in blocks] == [
        [f"trace {trace_id(2)}", "key order-0"],
        [f"trace {trace_id(1)}", "key order-1"],
    ]
    for block, offset in zip(blocks, (0, 1)):
        assert len(block.splitlines()) == 5
        assert all(
            line.endswith(f"p0@{offset}") or f"p0@{offset} " in line
            for line in block.splitlines()[1:]
        )


def test_a_message_never_processed_is_missing(
    otlp_receiver: WaitingReceiver, services: Services
) -> None:
    pipeline(services, offset=0, start=0)
    pipeline(services, offset=1, start=20, billed=False)
    spans = otlp_receiver.spans()

    second = render_traces(spans).split("\n\n")[1]

    assert second.splitlines()[0].endswith(" · orders-api → shipping · 9.0 ms · 1 MISSING")
    assert line_of(second, "send shipments").endswith("p0@1  ✗ MISSING: sent, never processed")
    assert "MISSING" not in line_of(second, "send orders")
    assert summarize(spans).splitlines()[0] == (
        "2 traces, 7 spans from 3 services; 1 message MISSING; 0 spans with ERROR"
    )


def test_a_failed_send_is_an_error_not_a_missing_message(
    otlp_receiver: WaitingReceiver, services: Services
) -> None:
    services.hop(
        "orders-api", "send orders", PRODUCER, 0, 30, error="KafkaTimeoutError", partition=None
    )
    spans = otlp_receiver.spans()

    text = render_traces(spans)

    assert text.splitlines()[0].endswith(" · orders-api · 30.0 ms · 1 ERROR")
    assert line_of(text, "send orders").endswith("│   30.0 ms  ✗ ERROR KafkaTimeoutError")
    assert "1 span with ERROR" in summarize(spans)


def test_a_consumer_in_link_mode_processes_the_message(
    otlp_receiver: WaitingReceiver, services: Services
) -> None:
    """With KAFKA_AUTOTRACE_INCOMING_CONTEXT=link the process span starts its own trace and
    only links to the send: the message was processed, even though no child span says so."""
    send = services.hop("orders-api", "send orders", PRODUCER, 0, 2, offset=0)
    services.hop("billing", "process orders", CONSUMER, 5, 6, links=[send], offset=0)

    text = render_traces(otlp_receiver.spans())

    assert "MISSING" not in text
    assert [line.split(" · ")[0] for line in text.splitlines() if line.startswith("trace")] == [
        f"trace {trace_id(1)}",
        f"trace {trace_id(2)}",
    ]


def test_wait_is_an_upper_bound_when_the_ack_was_seen_after_processing_began(
    otlp_receiver: WaitingReceiver, services: Services
) -> None:
    """confluent-kafka reports the ack only at the producer's next poll()/flush(), so the send
    span can end after the consumer started: only "at most since the send began" is known."""
    send = services.hop("shipping", "send shipments", PRODUCER, 0, 10, offset=0)
    services.hop("billing", "process shipments", CONSUMER, 4, 5, send, offset=0)

    text = render_traces(otlp_receiver.spans())

    assert line_of(text, "process shipments").endswith("p0@0  waited ≤ 4.0 ms in Kafka")
    assert "waited <= 4.0 ms in Kafka" in render_traces(otlp_receiver.spans(), ASCII)


def test_a_span_whose_parent_was_not_received_says_so(
    otlp_receiver: WaitingReceiver, services: Services
) -> None:
    """E.g. the producing service exports somewhere else: the consumer still shows, as a root."""
    elsewhere = NonRecordingSpan(
        SpanContext(0xABC, 0xDEF, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED))
    )
    services.hop("billing", "process shipments", CONSUMER, 0, 1, elsewhere, offset=7)

    text = render_traces(otlp_receiver.spans())

    assert text.splitlines()[0].startswith(f"trace {format(0xABC, '032x')} · billing · ")
    assert line_of(text, "process shipments").endswith("p0@7  (parent span not received)")


def test_spans_whose_parents_form_a_loop_are_still_shown(otlp_receiver: WaitingReceiver) -> None:
    """Another SDK or a buggy propagator can export nonsense; the viewer must not hide it."""
    first, second = SpanContext(7, 1, is_remote=False), SpanContext(7, 2, is_remote=False)
    resource = Resource.create({"service.name": "odd"})
    looping = [
        ReadableSpan("a", first, parent=second, resource=resource, start_time=T0, end_time=T0 + 1),
        ReadableSpan("b", second, parent=first, resource=resource, start_time=T0, end_time=T0 + 1),
    ]
    OTLPSpanExporter(endpoint=otlp_receiver.endpoint + TRACES_PATH).export(looping)

    lines = render_traces(otlp_receiver.spans()).splitlines()

    assert [line.split()[0:2] for line in lines[1:]] == [["a", "odd"], ["└─", "b"]]


def test_process_spans_show_their_pipeline_age_and_the_trace_its_oldest(
    otlp_receiver: WaitingReceiver, services: Services
) -> None:
    """Time to glass: each process span says how long the message's pipeline had run when it
    began, since its first send (to ``orders`` here); the header gives the last hop's."""
    order = services.hop("orders-api", "send orders", PRODUCER, 0, 2, offset=1)
    handling = services.hop(
        "shipping",
        "process orders",
        CONSUMER,
        5,
        9,
        order,
        offset=1,
        extra={PIPELINE_ORIGIN: "orders", PIPELINE_AGE_ATTRIBUTE: 0.005},
    )
    shipment = services.hop("shipping", "send shipments", PRODUCER, 6, 8, handling, offset=1)
    services.hop(
        "billing",
        "process shipments",
        CONSUMER,
        15,
        17,
        shipment,
        offset=1,
        extra={PIPELINE_ORIGIN: "orders", PIPELINE_AGE_ATTRIBUTE: 1.25},
    )

    text = render_traces(otlp_receiver.spans())

    assert " · 1.25 s since orders (pipeline age)" in text.splitlines()[0]
    assert line_of(text, "process orders").endswith("waited 3.0 ms in Kafka  5.0 ms since orders")
    assert line_of(text, "process shipments").endswith("1.25 s since orders")
    assert "since" not in line_of(text, "send shipments")


def test_a_process_span_after_a_gap_shows_the_records_skipped(
    otlp_receiver: WaitingReceiver, services: Services
) -> None:
    send = services.hop("orders-api", "send orders", PRODUCER, 0, 2, offset=6)
    skipped = {SKIPPED_FROM: 3, SKIPPED_COUNT: 3}
    services.hop("billing", "process orders", CONSUMER, 5, 9, send, offset=6, extra=skipped)

    text = render_traces(otlp_receiver.spans())

    assert line_of(text, "process orders").endswith(
        "✗ 3 skipped before it (deleted, from offset 3)"
    )
