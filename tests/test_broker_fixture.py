"""The test infrastructure itself: broker fixture, topic helper and instrumented app runner.

If these fail, every end-to-end test would fail for reasons unrelated to the instrumentation,
so they pin down the infrastructure's contract separately and with clear messages.
"""

from __future__ import annotations

import os
import signal
import textwrap
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient
from kafka import KafkaConsumer, KafkaProducer
from support.apps import run_app, start_app, stop_app
from support.broker import BROKER_ENV, Broker, create_topic, unique_topic
from support.processes import read_log_tail
from support.receiving import WaitingReceiver


def test_kafka_python_round_trip(bootstrap: str, topic: str) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    metadata = producer.send(topic, value=b"hello", key=b"k", headers=[("h", b"v")]).get(timeout=10)
    producer.close()
    assert (metadata.topic, metadata.partition, metadata.offset) == (topic, 0, 0)

    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=unique_topic("group"),
        auto_offset_reset="earliest",
        session_timeout_ms=6000,
        consumer_timeout_ms=15000,
    )
    try:
        record = next(iter(consumer))
    finally:
        consumer.close()
    assert (record.value, record.key, record.headers) == (b"hello", b"k", [("h", b"v")])
    assert (record.partition, record.offset) == (0, 0)


def test_confluent_kafka_round_trip(bootstrap: str, topic: str) -> None:
    delivered = []
    producer = Producer({"bootstrap.servers": bootstrap})
    producer.produce(
        topic,
        value=b"hello",
        key=b"k",
        headers=[("h", b"v")],
        on_delivery=lambda err, msg: delivered.append((err, msg.offset())),
    )
    assert producer.flush(10) == 0
    assert delivered == [(None, 0)]

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": unique_topic("group"),
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 6000,
        }
    )
    consumer.subscribe([topic])
    try:
        deadline = time.monotonic() + 15
        message = None
        while message is None and time.monotonic() < deadline:
            message = consumer.poll(0.5)
    finally:
        consumer.close()
    assert message is not None, "no message consumed within 15 s"
    assert message.error() is None
    assert (message.value(), message.key(), message.headers()) == (b"hello", b"k", [("h", b"v")])


def test_create_topic_waits_for_all_partitions(bootstrap: str) -> None:
    name = create_topic(bootstrap, unique_topic("test_create_topic[3 partitions]"), partitions=3)
    assert name.startswith("test_create_topic-3-partitions-")
    topics = AdminClient({"bootstrap.servers": bootstrap}).list_topics(name, timeout=10).topics
    assert sorted(topics[name].partitions) == [0, 1, 2]
    assert all(p.leader >= 0 for p in topics[name].partitions.values())


def test_unique_topic_names_are_legal_and_distinct() -> None:
    names = {unique_topic("a b/c[1]") for _ in range(100)}
    assert len(names) == 100
    assert all(name.startswith("a-b-c-1-") for name in names)


def test_broker_log_is_readable(broker: Broker) -> None:
    if broker.log_path is None:
        pytest.skip("external cluster: no broker log")
    started = {"kafka": "Kafka Server started", "noida": "noida-db start --only kafka"}
    assert started[os.environ.get(BROKER_ENV, "kafka")] in broker.log_tail()
    assert read_log_tail(broker.log_path.with_name("missing.log")).startswith("<cannot read")


def write_script(tmp_path: Path, source: str) -> Path:
    script = tmp_path / "app.py"
    script.write_text(textwrap.dedent(source), encoding="utf-8")
    return script


def test_run_app_exports_through_opentelemetry_instrument(
    otlp_receiver: WaitingReceiver, tmp_path: Path
) -> None:
    script = write_script(
        tmp_path,
        """
        import os, sys
        from opentelemetry import metrics, trace

        with trace.get_tracer("app").start_as_current_span("app-span") as span:
            span.set_attribute("argv", sys.argv[1:])
            span.set_attribute("extra", os.environ["EXTRA"])
        metrics.get_meter("app").create_counter("app.runs").add(1)
        print("done")
        """,
    )
    result = run_app(
        script, "one", "two", service="runner", endpoint=otlp_receiver.endpoint, env={"EXTRA": "x"}
    )
    assert result.stdout.strip() == "done"

    # Spans and metrics arrive only if opentelemetry-instrument configured the SDK from our env
    # and flushed at exit.
    (span,) = otlp_receiver.wait_for_spans(lambda spans: bool(spans))
    assert (span.name, span.service_name) == ("app-span", "runner")
    assert span.attributes == {"argv": ["one", "two"], "extra": "x"}
    points = otlp_receiver.wait_for_metric_points(lambda ps: any(p.name == "app.runs" for p in ps))
    assert next(p for p in points if p.name == "app.runs").value == 1


def test_run_app_failure_shows_output(otlp_receiver: WaitingReceiver, tmp_path: Path) -> None:
    script = write_script(
        tmp_path,
        """
        import sys
        print("some progress")
        sys.exit("fatal: broker unreachable")
        """,
    )
    with pytest.raises(AssertionError) as raised:
        run_app(script, service="failing", endpoint=otlp_receiver.endpoint)
    message = str(raised.value)
    assert "app.py exited with code 1" in message
    assert "some progress" in message
    assert "fatal: broker unreachable" in message


def test_long_running_consumer_app(
    otlp_receiver: WaitingReceiver, bootstrap: str, topic: str, tmp_path: Path
) -> None:
    script = write_script(
        tmp_path,
        """
        import sys
        from kafka import KafkaConsumer
        from opentelemetry import trace

        bootstrap, topic, group = sys.argv[1:]
        consumer = KafkaConsumer(
            topic, bootstrap_servers=bootstrap, group_id=group,
            auto_offset_reset="earliest", session_timeout_ms=6000,
        )
        while not consumer.assignment():
            consumer.poll(timeout_ms=100)
        print("ready")
        tracer = trace.get_tracer("consumer-app")
        for record in consumer:
            with tracer.start_as_current_span("handle"):
                print("received", record.value.decode())
        """,
    )
    with start_app(
        script,
        bootstrap,
        topic,
        unique_topic("group"),
        service="consumer",
        endpoint=otlp_receiver.endpoint,
    ) as app:
        app.wait_for_output("ready")
        producer = KafkaProducer(bootstrap_servers=bootstrap)
        producer.send(topic, b"payload").get(timeout=10)
        producer.close()
        app.wait_for_output("received payload")
        otlp_receiver.wait_for_spans(
            lambda spans: any(s.name == "handle" and s.service_name == "consumer" for s in spans)
        )
        result = stop_app(app)

    assert result.returncode == -signal.SIGTERM
    assert result.stdout.splitlines() == ["ready", "received payload"]
    assert stop_app(app) is result


def test_stop_app_reports_a_crashed_app(otlp_receiver: WaitingReceiver, tmp_path: Path) -> None:
    script = write_script(tmp_path, "raise SystemExit('crashed on start')\n")
    app = start_app(script, service="crasher", endpoint=otlp_receiver.endpoint)
    app.process.wait(30)
    with pytest.raises(AssertionError, match="had already exited with code 1"):
        stop_app(app)
    assert "crashed on start" in app.stderr()
