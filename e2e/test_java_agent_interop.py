"""Our Python services and Java services under the OpenTelemetry Java agent, on the same
topics and exporting to one OTLP receiver: one trace per message across both, baggage both
ways, and what a Java hop does to the pipeline age.

One JVM serves the module (see support.java_agent); each test gives it its own topics.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.semconv._incubating.attributes.messaging_attributes import (
    MESSAGING_CONSUMER_GROUP_NAME,
    MESSAGING_DESTINATION_NAME,
    MESSAGING_DESTINATION_PARTITION_ID,
    MESSAGING_KAFKA_CONSUMER_GROUP,
    MESSAGING_KAFKA_MESSAGE_OFFSET,
    MESSAGING_KAFKA_OFFSET,
    MESSAGING_SYSTEM,
)
from support.apps import RunningApp, run_app
from support.broker import create_topic, unique_topic
from support.java_agent import command, start_java_hops
from support.receiving import WaitingReceiver

from kafka_autotrace.tools.receiver import ReceivedSpan

APP = Path(__file__).resolve().parent / "apps" / "baggage_step.py"
JAVA = "java-hops"
PYTHON = "python-hops"
PIPELINE_AGE = "kafka_autotrace.pipeline.age"
PIPELINE_ORIGIN = "kafka_autotrace.pipeline.origin"
COUNT = 2


@pytest.fixture(scope="module")
def receiver() -> Iterator[WaitingReceiver]:
    with WaitingReceiver() as running:
        yield running


@pytest.fixture(scope="module")
def java(receiver: WaitingReceiver) -> Iterator[RunningApp]:
    with start_java_hops(JAVA, receiver.endpoint) as hops:
        yield hops


def topics(bootstrap: str, *names: str) -> list[str]:
    return [create_topic(bootstrap, unique_topic(name)) for name in names]


def python_step(receiver: WaitingReceiver, *args: str) -> str:
    return run_app(APP, *args, service=PYTHON, endpoint=receiver.endpoint).stdout


def hop_spans(receiver: WaitingReceiver, topic: str, kind: str) -> list[ReceivedSpan]:
    return [
        span
        for span in receiver.spans()
        if span.kind == kind and span.attributes.get(MESSAGING_DESTINATION_NAME) == topic
    ]


def wait_for_chains(
    receiver: WaitingReceiver, hops: list[tuple[str, str, str]]
) -> list[list[ReceivedSpan]]:
    """Each message's spans hop by hop, ``hops`` being (service, kind, topic): wait until every
    hop has COUNT spans, then check that each message's spans form one chain, every span the
    child of the previous hop's, in one trace per message."""

    def complete(_: list[ReceivedSpan]) -> bool:
        return all(len(hop_spans(receiver, topic, kind)) >= COUNT for _, kind, topic in hops)

    receiver.wait_for_spans(complete, timeout=30)
    by_parent = {}
    firsts = hop_spans(receiver, hops[0][2], hops[0][1])
    for service, kind, topic in hops:
        spans = hop_spans(receiver, topic, kind)
        assert len(spans) == COUNT, [f"{s.service_name} {s.name}" for s in spans]
        assert {span.service_name for span in spans} == {service}, (service, kind, topic)
        by_parent[(service, kind, topic)] = {span.parent_span_id: span for span in spans}
    chains = []
    for first in firsts:
        chain = [first]
        for hop in hops[1:]:
            child = by_parent[hop].get(chain[-1].span_id)
            assert child is not None, f"no {hop} span is the child of {chain[-1].name}"
            chain.append(child)
        assert {span.trace_id for span in chain} == {first.trace_id}
        chains.append(chain)
    assert len({chain[0].trace_id for chain in chains}) == COUNT, "one trace per message"
    return chains


def consume(receiver: WaitingReceiver, bootstrap: str, source: str, *target: str) -> str:
    """Run our consumer of ``source`` (forwarding to ``target`` if given) in a group of its
    own; return what it printed."""
    group = unique_topic("group")
    return python_step(receiver, "consume", bootstrap, source, group, str(COUNT), *target)


def assert_baggage(tenant: str, printed: dict[str, str]) -> None:
    """Each consumer (its output by topic) saw baggage tenant=``tenant`` on every record."""
    for topic, output in printed.items():
        for offset in range(COUNT):
            assert f"got {topic} {offset} tenant={tenant}" in output, output


def seconds_between(earlier: ReceivedSpan, later: ReceivedSpan) -> float:
    return (later.start_time_unix_nano - earlier.start_time_unix_nano) / 1e9


def mean_pipeline_ages(receiver: WaitingReceiver, topic: str, origin: str) -> list[float]:
    """The mean pipeline age of each export of our consumer of ``topic``, whose origin must
    be ``origin``."""
    points = [
        point
        for point in receiver.metric_points()
        if point.name == PIPELINE_AGE and point.attributes.get(MESSAGING_DESTINATION_NAME) == topic
    ]
    assert points and {point.attributes[PIPELINE_ORIGIN] for point in points} == {origin}
    return [point.sum / point.count for point in points if point.count and point.sum is not None]


def test_python_then_java_then_python(
    bootstrap: str, receiver: WaitingReceiver, java: RunningApp
) -> None:
    """Python send → Java consumer → Java send → Python consumer is one trace; the Python
    baggage reaches both consumers; the Java hop, which knows nothing of our origin header,
    starts the pipeline anew: the last consumer's pipeline age counts from the Java send."""
    orders, shipments = topics(bootstrap, "py-orders", "java-shipments")
    command(java, "relay", bootstrap, orders, shipments, unique_topic("group"), str(COUNT), "plain")
    java.wait_for_output(f"ready {orders}")
    python_step(receiver, "produce", bootstrap, orders, str(COUNT), "py-tenant")
    consumed = consume(receiver, bootstrap, shipments)
    java_out = java.wait_for_output(f"relayed {orders} {COUNT}")

    assert_baggage("py-tenant", {orders: java_out, shipments: consumed})
    chains = wait_for_chains(
        receiver,
        [
            (PYTHON, "PRODUCER", orders),
            (JAVA, "CONSUMER", orders),
            (JAVA, "PRODUCER", shipments),
            (PYTHON, "CONSUMER", shipments),
        ],
    )
    for python_send, java_process, java_send, python_process in chains:
        # Both name the record the same way, except the offset and group, which the agent
        # names as older versions of the conventions did (docs/design.md lists every difference).
        for ours, theirs in ((python_send, java_process), (python_process, java_send)):
            for name in (MESSAGING_SYSTEM, MESSAGING_DESTINATION_PARTITION_ID):
                assert ours.attributes[name] == theirs.attributes[name], name
            offset = ours.attributes[MESSAGING_KAFKA_OFFSET]
            assert offset == theirs.attributes[MESSAGING_KAFKA_MESSAGE_OFFSET]
        assert MESSAGING_CONSUMER_GROUP_NAME in python_process.attributes
        assert MESSAGING_KAFKA_CONSUMER_GROUP in java_process.attributes
    biggest = max(mean_pipeline_ages(receiver, shipments, origin=shipments))
    assert biggest < min(seconds_between(chain[0], chain[3]) for chain in chains), (
        "the age must not reach back past the Java hop"
    )
    assert biggest <= max(seconds_between(chain[2], chain[3]) for chain in chains) + 0.5


def test_java_then_python_then_java_then_python(
    bootstrap: str, receiver: WaitingReceiver, java: RunningApp
) -> None:
    """Java send → Python consumer → Python send → Java consumer → Java send → Python consumer
    is one trace; the Java baggage reaches every consumer; a Java relay that keeps the
    headers it consumed (as Kafka Streams does) passes our origin header through untouched, so
    the pipeline age of the last hop counts from the first Java send."""
    orders, shipments, invoices = topics(bootstrap, "java-orders", "py-shipments", "java-invoices")
    command(
        java, "relay", bootstrap, shipments, invoices, unique_topic("group"), str(COUNT), "forward"
    )
    java.wait_for_output(f"ready {shipments}")
    command(java, "produce", bootstrap, orders, str(COUNT), "java-tenant")
    java.wait_for_output(f"sent {orders} {COUNT}")
    staged = consume(receiver, bootstrap, orders, shipments)
    consumed = consume(receiver, bootstrap, invoices)
    java_out = java.wait_for_output(f"relayed {shipments} {COUNT}")

    assert_baggage("java-tenant", {orders: staged, shipments: java_out, invoices: consumed})
    chains = wait_for_chains(
        receiver,
        [
            (JAVA, "PRODUCER", orders),
            (PYTHON, "CONSUMER", orders),
            (PYTHON, "PRODUCER", shipments),
            (JAVA, "CONSUMER", shipments),
            (JAVA, "PRODUCER", invoices),
            (PYTHON, "CONSUMER", invoices),
        ],
    )
    assert all(chain[0].parent_span_id == "" for chain in chains), "the Java send is the root"
    ages = mean_pipeline_ages(receiver, invoices, origin=orders)
    whole_chains = [seconds_between(chain[0], chain[5]) for chain in chains]
    # The origin is the first record's timestamp, which the Java producer stamps after its
    # send span started (and, for a first send, after fetching metadata): hence the second.
    assert min(ages) >= min(whole_chains) - 1.0, "the age counts from the first send"
    assert max(ages) <= max(whole_chains) + 0.05
