"""Unmodified confluent-kafka apps under ``opentelemetry-instrument``, exporting real OTLP."""

from __future__ import annotations

import socket
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


def _run(receiver: WaitingReceiver, app: str, *args: str, service: str, **env: str) -> str:
    result = run_app(
        APPS / app, *args, service=service, endpoint=receiver.endpoint, env=env, timeout=60
    )
    return result.stdout


def _produce(
    receiver: WaitingReceiver,
    bootstrap: str,
    topic: str,
    *kind: str,
    app: str = "confluent_producer.py",
    **env: str,
) -> None:
    endpoint = receiver.endpoint
    run_producer_app(APPS / app, bootstrap, topic, COUNT, *kind, endpoint=endpoint, env=env)


def _consume(
    receiver: WaitingReceiver,
    bootstrap: str,
    topic: str,
    mode: str,
    app: str = "confluent_consumer.py",
    **env: str,
) -> None:
    endpoint = receiver.endpoint
    run_consumer_app(APPS / app, bootstrap, topic, COUNT, mode, endpoint=endpoint, env=env)


@pytest.mark.parametrize("mode", ["poll", "consume"])
def test_producer_and_consumer_apps_make_one_trace_per_message_and_emit_metrics(
    otlp_receiver: WaitingReceiver, bootstrap: str, topic: str, mode: str
) -> None:
    _produce(otlp_receiver, bootstrap, topic, "plain", KAFKA_AUTOTRACE_CAPTURE_CLIENT="true")
    _consume(otlp_receiver, bootstrap, topic, mode)

    wait_for_one_trace_per_message(otlp_receiver, topic, COUNT)
    spans = otlp_receiver.spans()
    sends = named(spans, f"send {topic}")
    assert {span.attributes["messaging.client.id"] for span in sends} == {"orders-producer"}
    processes = named(spans, f"process {topic}")
    assert processes and all("messaging.client.id" not in span.attributes for span in processes)
    polls = named(spans, f"poll {topic}")
    if mode == "consume":
        assert polls and {span.kind for span in polls} == {"CLIENT"}
        assert sum(span.attributes["messaging.batch.message_count"] for span in polls) == COUNT
        assert {link.span_id for span in polls for link in span.links} == {
            span.span_id for span in sends
        }
    else:
        assert polls == []

    points = [
        point
        for point in otlp_receiver.metric_points()
        if point.attributes.get("messaging.destination.name") == topic
        and point.attributes.get("messaging.system") == "kafka"
    ]
    assert {
        ("orders-api", "messaging.client.sent.messages"),
        ("orders-api", "messaging.client.operation.duration"),
        ("orders-consumer", "messaging.client.consumed.messages"),
        ("orders-consumer", "messaging.process.duration"),
        ("orders-consumer", "kafka_autotrace.record.age"),
    } <= {(point.service_name, point.name) for point in points}
    sent = [p for p in points if p.name == "messaging.client.sent.messages"]
    consumed = [p for p in points if p.name == "messaging.client.consumed.messages"]
    assert max(point.value or 0 for point in sent) == COUNT
    assert max(point.value or 0 for point in consumed) == COUNT


def test_serializing_producer_and_deserializing_consumer_apps_are_linked(
    otlp_receiver: WaitingReceiver, bootstrap: str, topic: str
) -> None:
    _produce(otlp_receiver, bootstrap, topic, "serializing")
    _consume(otlp_receiver, bootstrap, topic, "deserializing")
    wait_for_one_trace_per_message(otlp_receiver, topic, COUNT)
    keys = {span.attributes["messaging.kafka.message.key"] for span in otlp_receiver.spans()}
    assert keys == {f"k{index}" for index in range(COUNT)}


@pytest.mark.parametrize(
    ("producer", "consumer"),
    [
        pytest.param(
            ("kafka_python_producer.py",),
            "confluent_consumer.py",
            id="kafka-python-to-confluent",
        ),
        pytest.param(
            ("confluent_producer.py", "plain"),
            "kafka_python_consumer.py",
            id="confluent-to-kafka-python",
        ),
    ],
)
def test_a_message_crossing_clients_is_one_trace(
    otlp_receiver: WaitingReceiver,
    bootstrap: str,
    topic: str,
    producer: tuple[str, ...],
    consumer: str,
) -> None:
    app, *kind = producer
    _produce(otlp_receiver, bootstrap, topic, *kind, app=app)
    _consume(otlp_receiver, bootstrap, topic, "poll", app=consumer)
    wait_for_one_trace_per_message(otlp_receiver, topic, COUNT)
    assert {span.scope_name for span in otlp_receiver.spans()} == {"kafka_autotrace"}


def test_a_confluent_pipeline_stage_keeps_one_trace_over_three_hops(
    otlp_receiver: WaitingReceiver, bootstrap: str
) -> None:
    orders = create_topic(bootstrap, unique_topic("orders"))
    shipments = create_topic(bootstrap, unique_topic("shipments"))
    _produce(otlp_receiver, bootstrap, orders, "plain")
    stdout = _run(
        otlp_receiver,
        "confluent_stage.py",
        bootstrap,
        orders,
        shipments,
        str(COUNT),
        unique_topic("stage"),
        service="shipping",
    )
    assert f"forwarded {COUNT}" in stdout
    _consume(otlp_receiver, bootstrap, shipments, "consume")

    spans = otlp_receiver.wait_for_spans(count_named(f"process {shipments}", COUNT), timeout=20)
    assert_three_hops_in_one_trace(spans, orders, shipments, COUNT)


def test_an_undeliverable_message_gives_an_error_span_and_the_callback_still_gets_it(
    otlp_receiver: WaitingReceiver,
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"127.0.0.1:{sock.getsockname()[1]}"
    stdout = _run(
        otlp_receiver, "confluent_undeliverable.py", closed, "orders", service="orders-api"
    )
    assert "failed _MSG_TIMED_OUT b'lost order'" in stdout
    assert "left in queue 0" in stdout
    spans = otlp_receiver.wait_for_spans(count_named("send orders", 1), timeout=20)
    [span] = named(spans, "send orders")
    assert span.status_code == "ERROR"
    assert span.attributes["error.type"] == "_MSG_TIMED_OUT"
    assert [event.name for event in span.events] == ["messaging.send.exception"]


def test_an_asyncio_consumer_app_continues_the_producers_traces(
    otlp_receiver: WaitingReceiver, bootstrap: str, topic: str
) -> None:
    pytest.importorskip("confluent_kafka.aio", reason="confluent-kafka < 2.12 has no aio")
    _produce(otlp_receiver, bootstrap, topic, "plain")
    _consume(otlp_receiver, bootstrap, topic, "poll", app="confluent_aio_consumer.py")
    wait_for_one_trace_per_message(otlp_receiver, topic, COUNT)


def test_confluent_kafka_can_be_disabled_alone(
    otlp_receiver: WaitingReceiver, bootstrap: str, topic: str
) -> None:
    disabled = {"OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "kafka_autotrace_confluent_kafka"}
    _produce(otlp_receiver, bootstrap, topic, "plain", **disabled)
    _consume(otlp_receiver, bootstrap, topic, "iterate", app="kafka_python_consumer.py", **disabled)
    spans = otlp_receiver.wait_for_spans(count_named(f"process {topic}", COUNT), timeout=20)
    assert named(spans, f"send {topic}") == []
    assert all(span.parent_span_id == "" for span in named(spans, f"process {topic}"))
