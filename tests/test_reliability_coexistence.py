"""Coexistence with the upstream contrib instrumentors of the same clients.

``opentelemetry-bootstrap -a install`` puts opentelemetry-instrumentation-kafka-python,
-confluent-kafka or -aiokafka beside any Kafka client, and ``opentelemetry-instrument`` then
loads theirs and ours in whatever order entry points come. Either way each message must get one
send span, one process span and one ``traceparent``: ours. One warning says what happened.

The mechanism is tested here against a stand-in upstream instrumentor; the tests marked
``needs_upstream`` run against the real packages, which pin their own release of
opentelemetry-instrumentation and so live in a virtualenv of their own (``make
test-coexistence``). In any other environment they are skipped.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import importlib.util
import logging
from collections.abc import Iterator
from typing import Any

import aiokafka
import confluent_kafka
import pytest
from confluent_kafka.cimpl import Producer as UntracedProducer
from support.broker import read_record
from support.fake_upstream import FakeUpstreamInstrumentor
from support.otel import RecordingSdk, instrumented, traceparent

from kafka_autotrace.aiokafka import AIOKafkaInstrumentor
from kafka_autotrace.clients.registry import CLIENTS, KAFKA_PYTHON
from kafka_autotrace.clients.spec import Upstream
from kafka_autotrace.confluent_kafka import ConfluentKafkaInstrumentor
from kafka_autotrace.core.instrumentor import KafkaClientInstrumentor
from kafka_autotrace.kafka_python import KafkaPythonInstrumentor

TAKEOVER = "is installed too"
BASE_WARNING = "Attempting to instrument while already instrumented"
needs_upstream = pytest.mark.skipif(
    any(importlib.util.find_spec(client.upstream.module) is None for client in CLIENTS),
    reason="needs the upstream contrib instrumentations: run `make test-coexistence`",
)


def takeovers(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if TAKEOVER in record.getMessage()]


# -- the mechanism, against a stand-in ----------------------------------------------------------


@pytest.fixture
def fake_upstream(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeUpstreamInstrumentor]:
    monkeypatch.setattr(
        KafkaPythonInstrumentor,
        "client",
        dataclasses.replace(
            KAFKA_PYTHON,
            upstream=Upstream(
                "support.fake_upstream", "FakeUpstreamInstrumentor", "fake", "fake-contrib"
            ),
        ),
    )
    monkeypatch.delenv("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", raising=False)
    upstream = FakeUpstreamInstrumentor()
    yield upstream
    if upstream.is_instrumented_by_opentelemetry:
        upstream.uninstrument()


@pytest.mark.parametrize("upstream_first", [True, False], ids=["upstream-first", "ours-first"])
def test_ours_takes_over_whichever_is_instrumented_first(
    fake_upstream: FakeUpstreamInstrumentor,
    upstream_first: bool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    ours = KafkaPythonInstrumentor()
    with caplog.at_level(logging.WARNING):
        if upstream_first:
            fake_upstream.instrument()
        ours.instrument()
        fake_upstream.instrument()  # a no-op, and a silent one
        assert not FakeUpstreamInstrumentor.tracing
        fake_upstream.uninstrument()  # a no-op too: ours stays in place
        ours.uninstrument()
    [line] = takeovers(caplog)
    assert "fake-contrib" in line
    assert "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=kafka_autotrace_kafka_python" in line
    assert ("switched off" in line) is upstream_first
    assert BASE_WARNING not in caplog.text

    fake_upstream.instrument()  # once ours is gone, the upstream one works again
    assert FakeUpstreamInstrumentor.tracing


def test_a_disabled_upstream_is_left_alone(
    fake_upstream: FakeUpstreamInstrumentor,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "flask, fake")
    ours = KafkaPythonInstrumentor()
    with caplog.at_level(logging.WARNING):
        ours.instrument()
        fake_upstream.instrument()
        ours.uninstrument()
    assert FakeUpstreamInstrumentor.tracing, "a programmatic instrument() still works"
    assert takeovers(caplog) == []


# -- the real upstream packages -----------------------------------------------------------------


def upstream_of(ours: KafkaClientInstrumentor) -> Any:
    module = importlib.import_module(ours.client.upstream.module)
    return getattr(module, ours.client.upstream.class_name)()


def kafka_python_round_trip(bootstrap: str, topic: str) -> list[tuple[str, bytes]]:
    """Send one message and read it back; its headers as the consumer got them."""
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition

    producer = KafkaProducer(bootstrap_servers=bootstrap)
    producer.send(topic, b"v").get(timeout=10)
    producer.close(timeout=5)
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, auto_offset_reset="earliest", consumer_timeout_ms=10_000
    )
    consumer.assign([TopicPartition(topic, 0)])
    record = next(consumer)
    consumer.close()
    return list(record.headers)


def confluent_round_trip(bootstrap: str, topic: str) -> list[tuple[str, bytes]]:
    producer = confluent_kafka.Producer({"bootstrap.servers": bootstrap})
    producer.produce(topic, b"v")
    assert producer.flush(10) == 0
    return list(read_record(bootstrap, topic).headers() or [])


def aiokafka_round_trip(bootstrap: str, topic: str) -> list[tuple[str, bytes]]:
    async def round_trip() -> list[tuple[str, bytes]]:
        producer = aiokafka.AIOKafkaProducer(bootstrap_servers=bootstrap)
        consumer = aiokafka.AIOKafkaConsumer(
            bootstrap_servers=bootstrap, auto_offset_reset="earliest"
        )
        await producer.start()
        await consumer.start()
        try:
            await producer.send_and_wait(topic, b"v")
            consumer.assign([aiokafka.TopicPartition(topic, 0)])
            record = await consumer.getone()
        finally:
            await producer.stop()
            await consumer.stop()
        return list(record.headers)

    return asyncio.run(round_trip())


ROUND_TRIPS = {
    "kafka-python": (KafkaPythonInstrumentor, kafka_python_round_trip),
    "confluent-kafka": (ConfluentKafkaInstrumentor, confluent_round_trip),
    "aiokafka": (AIOKafkaInstrumentor, aiokafka_round_trip),
}


@needs_upstream
@pytest.mark.parametrize("upstream_first", [True, False], ids=["upstream-first", "ours-first"])
@pytest.mark.parametrize("client", sorted(ROUND_TRIPS))
def test_with_the_upstream_instrumentor_enabled_each_message_is_traced_once(
    client: str,
    upstream_first: bool,
    bootstrap: str,
    topic: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.delenv("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", raising=False)
    instrumentor, round_trip = ROUND_TRIPS[client]
    sdk = RecordingSdk()
    upstream = upstream_of(instrumentor())
    providers = {"tracer_provider": sdk.tracer_provider}
    with caplog.at_level(logging.WARNING):
        if upstream_first:
            upstream.instrument(**providers)
        with instrumented(instrumentor(), sdk):
            upstream.instrument(**providers)
            headers = round_trip(bootstrap, topic)
        upstream.uninstrument()

    spans = sdk.spans()
    assert {span.instrumentation_scope.name for span in spans} == {"kafka_autotrace"}
    [send] = sdk.spans("send")
    [process] = sdk.spans("process")
    assert process.parent is not None and process.parent.span_id == send.context.span_id
    assert [value for key, value in headers if key == "traceparent"] == [traceparent(send.context)]
    assert len(takeovers(caplog)) == 1
    assert BASE_WARNING not in caplog.text


@needs_upstream
def test_the_upstream_instrumentor_works_again_once_ours_is_gone(
    bootstrap: str, topic: str
) -> None:
    sdk = RecordingSdk()
    with instrumented(ConfluentKafkaInstrumentor(), sdk):
        pass
    upstream = upstream_of(ConfluentKafkaInstrumentor())
    upstream.instrument(tracer_provider=sdk.tracer_provider)
    try:
        producer = confluent_kafka.Producer({"bootstrap.servers": bootstrap})
        producer.produce(topic, b"v")
        assert producer.flush(10) == 0
    finally:
        upstream.uninstrument()
    assert confluent_kafka.Producer is UntracedProducer
    assert [span.instrumentation_scope.name for span in sdk.spans()] == [
        "opentelemetry.instrumentation.confluent_kafka"
    ]
