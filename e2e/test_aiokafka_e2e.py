"""Unmodified aiokafka and FastStream apps under ``opentelemetry-instrument``, exporting real
OTLP: the same span model as the other clients, whichever way an asyncio app takes its records.
"""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

import pytest
from packaging.version import Version
from support.apps import run_app, run_consumer_app, run_producer_app, start_app
from support.broker import create_topic, unique_topic
from support.receiving import WaitingReceiver
from support.traces import (
    assert_three_hops_in_one_trace,
    count_named,
    named,
    record_id,
    wait_for_one_trace_per_message,
)

APPS = Path(__file__).parent / "apps"
COUNT = 5


def _run(receiver: WaitingReceiver, app: str, *args: str, service: str) -> str:
    return run_app(APPS / app, *args, service=service, endpoint=receiver.endpoint).stdout


def _produce(
    receiver: WaitingReceiver,
    bootstrap: str,
    topic: str,
    app: str = "aiokafka_producer.py",
    **env: str,
) -> None:
    run_producer_app(APPS / app, bootstrap, topic, COUNT, endpoint=receiver.endpoint, env=env)


def _consume(
    receiver: WaitingReceiver,
    bootstrap: str,
    topic: str,
    mode: str,
    app: str = "aiokafka_consumer.py",
) -> None:
    run_consumer_app(APPS / app, bootstrap, topic, COUNT, mode, endpoint=receiver.endpoint)


def _pipeline_topics(bootstrap: str) -> tuple[str, str]:
    orders = create_topic(bootstrap, unique_topic("orders"))
    return orders, create_topic(bootstrap, unique_topic("shipments"))


@pytest.mark.parametrize("mode", ["iterate", "getone", "getmany"])
def test_each_message_is_one_trace_whichever_way_the_consumer_takes_it(
    otlp_receiver: WaitingReceiver, bootstrap: str, topic: str, mode: str
) -> None:
    _produce(otlp_receiver, bootstrap, topic, KAFKA_AUTOTRACE_CAPTURE_CLIENT="true")
    _consume(otlp_receiver, bootstrap, topic, mode)

    spans = wait_for_one_trace_per_message(otlp_receiver, topic, COUNT)
    sends = named(spans, f"send {topic}")
    # Only an acknowledgement tells the partition and offset: a send span ended before it
    # cannot carry them.
    assert sorted(record_id(span) for span in sends) == [(topic, "0", n) for n in range(COUNT)]
    assert {span.attributes["messaging.client.id"] for span in sends} == {"orders-producer"}


def test_getmany_makes_a_poll_span_linking_each_record_then_a_process_span_per_record(
    otlp_receiver: WaitingReceiver, bootstrap: str, topic: str
) -> None:
    _produce(otlp_receiver, bootstrap, topic)
    _consume(otlp_receiver, bootstrap, topic, "getmany")

    spans = wait_for_one_trace_per_message(otlp_receiver, topic, COUNT)
    sends = {span.span_id: span for span in named(spans, f"send {topic}")}
    polls = named(spans, f"poll {topic}")
    assert polls and {span.kind for span in polls} == {"CLIENT"}
    assert sum(span.attributes["messaging.batch.message_count"] for span in polls) == COUNT
    linked = sorted(link.span_id for span in polls for link in span.links)
    assert linked == sorted(sends), "one link per record, to its send span"
    poll_of = {link.span_id: span for span in polls for link in span.links}
    for process in named(spans, f"process {topic}"):
        poll = poll_of[process.parent_span_id]
        assert poll.start_time_unix_nano <= process.start_time_unix_nano


@pytest.mark.parametrize("mode", ["inline", "tasks"])
def test_a_stage_forwarding_each_record_keeps_one_trace_over_three_hops(
    otlp_receiver: WaitingReceiver, bootstrap: str, mode: str
) -> None:
    """inline: ``send_and_wait`` while handling the record; tasks: each record handed to its
    own ``asyncio.create_task``, every task sending after the loop has taken the last record."""
    orders, shipments = _pipeline_topics(bootstrap)
    _produce(otlp_receiver, bootstrap, orders)
    group = unique_topic("stage")
    args = (bootstrap, orders, shipments, str(COUNT), group, mode)
    stdout = _run(otlp_receiver, "aiokafka_stage.py", *args, service="shipping")
    assert f"forwarded {COUNT}" in stdout
    _consume(otlp_receiver, bootstrap, shipments, "iterate")

    spans = otlp_receiver.wait_for_spans(count_named(f"process {shipments}", COUNT), timeout=20)
    assert_three_hops_in_one_trace(spans, orders, shipments, COUNT)


@pytest.mark.parametrize(
    ("producer", "consumer"),
    [
        pytest.param(
            "kafka_python_producer.py",
            ("aiokafka_consumer.py", "iterate"),
            id="kafka-python-to-aiokafka",
        ),
        pytest.param(
            "aiokafka_producer.py",
            ("confluent_consumer.py", "poll"),
            id="aiokafka-to-confluent",
        ),
    ],
)
def test_a_message_crossing_clients_is_one_trace(
    otlp_receiver: WaitingReceiver,
    bootstrap: str,
    topic: str,
    producer: str,
    consumer: tuple[str, str],
) -> None:
    app, mode = consumer
    _produce(otlp_receiver, bootstrap, topic, app=producer)
    _consume(otlp_receiver, bootstrap, topic, mode, app=app)
    wait_for_one_trace_per_message(otlp_receiver, topic, COUNT)
    assert {span.scope_name for span in otlp_receiver.spans()} == {"kafka_autotrace"}


def test_a_faststream_stage_keeps_one_trace_over_three_hops(
    otlp_receiver: WaitingReceiver, bootstrap: str
) -> None:
    """FastStream's default subscriber takes records with ``getone()`` and runs the handler,
    then its ``@publisher``, in the same task; the publish is an aiokafka ``send``."""
    pytest.importorskip("faststream.kafka", reason="FastStream needs Python 3.10+")
    if Version(version("aiokafka")) < Version("0.10"):
        pytest.skip("FastStream passes group_instance_id, which aiokafka 0.10 brought")
    orders, shipments = _pipeline_topics(bootstrap)
    args = (bootstrap, orders, shipments, str(COUNT))
    app = APPS / "faststream_stage.py"
    with start_app(app, *args, service="shipping", endpoint=otlp_receiver.endpoint) as stage:
        stage.wait_for_output("ready")
        _produce(otlp_receiver, bootstrap, orders)
        stage.wait_for_output(f"forwarded {COUNT}")
        stage.process.wait(30)  # exporting its spans at exit, which a SIGTERM would cut short
    _consume(otlp_receiver, bootstrap, shipments, "iterate")

    spans = otlp_receiver.wait_for_spans(count_named(f"process {shipments}", COUNT), timeout=20)
    assert_three_hops_in_one_trace(spans, orders, shipments, COUNT)


def test_aiokafka_can_be_disabled_alone(
    otlp_receiver: WaitingReceiver, bootstrap: str, topic: str
) -> None:
    """Its entry point switched off, aiokafka's sends are not traced while kafka-python's
    consumer in the same environment still is."""
    disabled = {"OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "kafka_autotrace_aiokafka"}
    run_producer_app(
        APPS / "aiokafka_producer.py",
        bootstrap,
        topic,
        COUNT,
        endpoint=otlp_receiver.endpoint,
        env=disabled,
    )
    run_consumer_app(
        APPS / "kafka_python_consumer.py",
        bootstrap,
        topic,
        COUNT,
        "iterate",
        endpoint=otlp_receiver.endpoint,
        env=disabled,
    )
    spans = otlp_receiver.wait_for_spans(count_named(f"process {topic}", COUNT), timeout=20)
    assert named(spans, f"send {topic}") == []
    assert all(span.parent_span_id == "" for span in named(spans, f"process {topic}"))
