"""Unmodified kafka-python apps under ``opentelemetry-instrument``, exporting real OTLP."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.apps import run_app, run_consumer_app, run_producer_app
from support.broker import create_topic, unique_topic
from support.receiving import WaitingReceiver
from support.traces import (
    assert_three_hops_in_one_trace,
    count_named,
    named,
    wait_for_one_trace_per_message,
)

APPS = Path(__file__).parent / "apps"
COUNT = 5


def _produce(receiver: WaitingReceiver, bootstrap: str, topic: str, **env: str) -> None:
    app = APPS / "kafka_python_producer.py"
    run_producer_app(app, bootstrap, topic, COUNT, endpoint=receiver.endpoint, env=env)


def _consume(receiver: WaitingReceiver, bootstrap: str, topic: str, mode: str) -> None:
    app = APPS / "kafka_python_consumer.py"
    run_consumer_app(app, bootstrap, topic, COUNT, mode, endpoint=receiver.endpoint)


@pytest.mark.parametrize("mode", ["iterate", "poll"])
def test_producer_and_consumer_apps_make_one_trace_per_message(
    otlp_receiver: WaitingReceiver, bootstrap: str, topic: str, mode: str
) -> None:
    _produce(otlp_receiver, bootstrap, topic)
    _consume(otlp_receiver, bootstrap, topic, mode)

    spans = wait_for_one_trace_per_message(otlp_receiver, topic, COUNT)
    sends = named(spans, f"send {topic}")
    if mode == "poll":
        polls = named(spans, f"poll {topic}")
        assert polls and {span.kind for span in polls} == {"CLIENT"}
        linked = {link.span_id for span in polls for link in span.links}
        assert linked == {span.span_id for span in sends}


def test_three_hop_pipeline_is_one_trace(otlp_receiver: WaitingReceiver, bootstrap: str) -> None:
    orders = create_topic(bootstrap, unique_topic("orders"))
    shipments = create_topic(bootstrap, unique_topic("shipments"))
    _produce(otlp_receiver, bootstrap, orders)
    stage = run_app(
        APPS / "kafka_python_stage.py",
        bootstrap,
        orders,
        shipments,
        str(COUNT),
        unique_topic("stage"),
        service="shipping",
        endpoint=otlp_receiver.endpoint,
    )
    assert f"forwarded {COUNT}" in stage.stdout
    _consume(otlp_receiver, bootstrap, shipments, "iterate")

    spans = otlp_receiver.wait_for_spans(count_named(f"process {shipments}", COUNT), timeout=20)
    assert_three_hops_in_one_trace(spans, orders, shipments, COUNT)


def test_metrics_reach_the_otlp_receiver(
    otlp_receiver: WaitingReceiver, bootstrap: str, topic: str
) -> None:
    _produce(otlp_receiver, bootstrap, topic)
    _consume(otlp_receiver, bootstrap, topic, "poll")
    points = [
        point
        for point in otlp_receiver.metric_points()
        if point.attributes.get("messaging.destination.name") == topic
    ]
    kafka_points = {
        (point.service_name, point.name)
        for point in points
        if point.attributes.get("messaging.system") == "kafka"
    }
    assert {
        ("orders-api", "messaging.client.sent.messages"),
        ("orders-api", "messaging.client.operation.duration"),
        ("orders-consumer", "messaging.client.consumed.messages"),
        ("orders-consumer", "messaging.client.operation.duration"),
        ("orders-consumer", "messaging.process.duration"),
        ("orders-consumer", "kafka_autotrace.record.age"),
    } <= kafka_points
    sent = [p for p in points if p.name == "messaging.client.sent.messages"]
    assert max(point.value or 0 for point in sent) == COUNT


def test_kafka_python_can_be_disabled_alone(
    otlp_receiver: WaitingReceiver, bootstrap: str, topic: str
) -> None:
    _produce(
        otlp_receiver,
        bootstrap,
        topic,
        OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="kafka_autotrace_kafka_python",
    )
    _consume(otlp_receiver, bootstrap, topic, "iterate")
    spans = otlp_receiver.wait_for_spans(count_named(f"process {topic}", COUNT), timeout=20)
    assert named(spans, f"send {topic}") == []
    assert all(span.parent_span_id == "" for span in named(spans, f"process {topic}"))
