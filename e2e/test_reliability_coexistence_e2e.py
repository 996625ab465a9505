"""Unmodified apps under ``opentelemetry-instrument`` with the upstream contrib Kafka
instrumentations installed and enabled beside kafka-autotrace: each message is traced once, by
kafka-autotrace, and each app says so in one log line per client.

Runs in the virtualenv ``make test-coexistence`` creates; skipped anywhere else.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from support.apps import run_app
from support.broker import unique_topic
from support.receiving import WaitingReceiver
from support.traces import assert_process_spans_are_children_of_sends, count_named, named

from kafka_autotrace.clients.registry import CLIENTS

APPS = Path(__file__).parent / "apps"
COUNT = 5
UPSTREAM = {
    "kafka-python": "opentelemetry-instrumentation-kafka-python",
    "confluent-kafka": "opentelemetry-instrumentation-confluent-kafka",
    "aiokafka": "opentelemetry-instrumentation-aiokafka",
}
PRODUCER = {
    "kafka-python": ("kafka_python_producer.py",),
    "confluent-kafka": ("confluent_producer.py", "plain"),
    "aiokafka": ("aiokafka_producer.py",),
}
CONSUMER = {
    "kafka-python": ("kafka_python_consumer.py", "iterate"),
    "confluent-kafka": ("confluent_consumer.py", "poll"),
    "aiokafka": ("aiokafka_consumer.py", "getone"),
}
UPSTREAM_MODULES = tuple(client.upstream.module for client in CLIENTS)

pytestmark = pytest.mark.skipif(
    any(importlib.util.find_spec(module) is None for module in UPSTREAM_MODULES),
    reason="needs the upstream contrib instrumentations: run `make test-coexistence`",
)


@pytest.mark.parametrize("client", sorted(UPSTREAM))
def test_with_upstream_installed_each_message_is_traced_once(
    client: str, otlp_receiver: WaitingReceiver, bootstrap: str, topic: str
) -> None:
    producer_app, *producer_args = PRODUCER[client]
    produced = run_app(
        APPS / producer_app,
        bootstrap,
        topic,
        str(COUNT),
        *producer_args,
        service="producer",
        endpoint=otlp_receiver.endpoint,
    )
    consumer_app, mode = CONSUMER[client]
    consumed = run_app(
        APPS / consumer_app,
        bootstrap,
        topic,
        str(COUNT),
        mode,
        unique_topic("group"),
        service="consumer",
        endpoint=otlp_receiver.endpoint,
    )

    spans = otlp_receiver.wait_for_spans(count_named(f"process {topic}", COUNT), timeout=20)
    assert {span.scope_name for span in spans} == {"kafka_autotrace"}
    sends, processes = named(spans, f"send {topic}"), named(spans, f"process {topic}")
    assert len(sends) == len(processes) == COUNT
    assert_process_spans_are_children_of_sends(sends, processes)
    for result in (produced, consumed):
        # Every client is installed, so each of our instrumentors takes over: one line each,
        # and nothing else from kafka-autotrace.
        ours = sorted(line for line in result.stderr.splitlines() if "kafka-autotrace:" in line)
        assert len(ours) == len(UPSTREAM), result.stderr
        for line, distribution in zip(ours, sorted(UPSTREAM.values())):
            assert line.startswith(f"kafka-autotrace: {distribution} is installed too"), line
