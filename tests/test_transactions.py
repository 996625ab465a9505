"""Transactions on a real Apache Kafka node, for each client that has them: the send spans of
a committed transaction and of an aborted one end saying so, at their acknowledgement time,
and the waterfall shows the aborted message as ABORTED, not MISSING, while a
``read_committed`` consumer processes the committed one.
"""

from __future__ import annotations

import asyncio
from contextlib import ExitStack
from typing import Any, Callable

import confluent_kafka
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from support.broker import create_topic, unique_topic
from support.kafka import KafkaCluster
from support.otel import RecordingSdk, instrumented
from support.receiving import WaitingReceiver

from kafka_autotrace.aiokafka import AIOKafkaInstrumentor
from kafka_autotrace.confluent_kafka import ConfluentKafkaInstrumentor
from kafka_autotrace.core.outcome import TRANSACTION_OUTCOME
from kafka_autotrace.kafka_python import KafkaPythonInstrumentor
from kafka_autotrace.tools.receiver import TRACES_PATH, ReceivedSpan
from kafka_autotrace.tools.waterfall import render_traces

Send = Callable[[str, str, list[tuple[str, bytes]]], None]
"""Sends each value of the list in a transaction of its own, committed or aborted as named."""


def confluent_transactions(
    bootstrap: str, topic: str, transactions: list[tuple[str, bytes]]
) -> None:
    producer = confluent_kafka.Producer(
        {"bootstrap.servers": bootstrap, "transactional.id": unique_topic("tx")}
    )
    producer.init_transactions(30)
    for outcome, value in transactions:
        producer.begin_transaction()
        producer.produce(topic, value)
        assert producer.flush(30) == 0
        if outcome == "commit":
            producer.commit_transaction(30)
        else:
            producer.abort_transaction(30)


def kafka_python_transactions(
    bootstrap: str, topic: str, transactions: list[tuple[str, bytes]]
) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, transactional_id=unique_topic("tx"))
    producer.init_transactions()
    for outcome, value in transactions:
        producer.begin_transaction()
        producer.send(topic, value).get(30)
        if outcome == "commit":
            producer.commit_transaction()
        else:
            producer.abort_transaction()
    producer.close()


def aiokafka_transactions(
    bootstrap: str, topic: str, transactions: list[tuple[str, bytes]]
) -> None:
    from aiokafka import AIOKafkaProducer

    async def run() -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap, transactional_id=unique_topic("tx")
        )
        await producer.start()
        try:
            for outcome, value in transactions:
                await producer.begin_transaction()
                await producer.send_and_wait(topic, value)
                if outcome == "commit":
                    await producer.commit_transaction()
                else:
                    await producer.abort_transaction()
        finally:
            await producer.stop()

    asyncio.run(run())


CLIENTS: dict[str, tuple[Any, Send]] = {
    "confluent-kafka": (ConfluentKafkaInstrumentor, confluent_transactions),
    "kafka-python": (KafkaPythonInstrumentor, kafka_python_transactions),
    "aiokafka": (AIOKafkaInstrumentor, aiokafka_transactions),
}


def read_committed(bootstrap: str, topic: str, count: int) -> list[bytes]:
    consumer = confluent_kafka.Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": unique_topic("group"),
            "isolation.level": "read_committed",
            "auto.offset.reset": "earliest",
        }
    )
    consumer.assign([confluent_kafka.TopicPartition(topic, 0)])
    values: list[bytes] = []
    for _ in range(40):
        message = consumer.poll(0.5)
        if message is not None and message.error() is None:
            values.append(message.value())
        if len(values) == count:
            consumer.poll(0.5)  # ends the process span of the last record
            break
    consumer.close()
    return values


@pytest.mark.parametrize("client", sorted(CLIENTS))
def test_send_spans_say_how_their_transaction_ended_and_the_viewer_shows_aborted(
    kafka: KafkaCluster, otlp_receiver: WaitingReceiver, client: str
) -> None:
    instrumentor, transactions = CLIENTS[client]
    sdk = RecordingSdk()
    exporter = OTLPSpanExporter(endpoint=otlp_receiver.endpoint + TRACES_PATH)
    sdk.tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    topic = create_topic(kafka.bootstrap_servers, unique_topic("tx"))
    with ExitStack() as stack:
        stack.enter_context(instrumented(instrumentor(), sdk))
        if instrumentor is not ConfluentKafkaInstrumentor:  # the reader's client
            stack.enter_context(instrumented(ConfluentKafkaInstrumentor(), sdk))
        transactions(kafka.bootstrap_servers, topic, [("commit", b"kept"), ("abort", b"dropped")])
        assert read_committed(kafka.bootstrap_servers, topic, 1) == [b"kept"]
    assert sdk.open_spans.names() == [], "every span must end"

    sends = sdk.spans(f"send {topic}")
    assert sorted(span.attributes[TRANSACTION_OUTCOME] for span in sends) == [
        "aborted",
        "committed",
    ]
    for span in sends:
        assert span.attributes["messaging.kafka.offset"] >= 0
    expected = [f"send {topic}", f"send {topic}", f"process {topic}"]

    def complete(received: list[ReceivedSpan]) -> bool:
        """Both sends and the committed record's processing have arrived."""
        names = [span.name for span in received]
        return all(names.count(name) >= expected.count(name) for name in expected)

    spans = otlp_receiver.wait_for_spans(complete)
    waterfall = render_traces(spans)
    aborted, committed = sorted(
        waterfall.split("\n\n"), key=lambda trace: f"process {topic}" in trace
    )
    assert "1 ABORTED" in aborted and "ABORTED: its transaction aborted" in aborted, waterfall
    assert "MISSING" not in waterfall, waterfall
    assert f"process {topic}" in committed and "ABORTED" not in committed, waterfall


def test_aio_producer_send_spans_say_how_their_transaction_ended(kafka: KafkaCluster) -> None:
    """confluent-kafka's AIOProducer, whose sends carry no context to their consumers (see
    tests/test_confluent_kafka_aio.py), so only its own spans are compared."""
    aio = pytest.importorskip("confluent_kafka.aio")
    if not hasattr(aio.AIOProducer, "commit_transaction"):
        pytest.skip("this confluent-kafka's AIOProducer has no transactions")
    bootstrap = kafka.bootstrap_servers
    topic = create_topic(bootstrap, unique_topic("tx"))

    async def run() -> None:
        producer = aio.AIOProducer(
            {"bootstrap.servers": bootstrap, "transactional.id": unique_topic("tx")},
            buffer_timeout=0.05,
        )
        try:
            await producer.init_transactions(30)
            for outcome, value in [("commit", b"kept"), ("abort", b"dropped")]:
                await producer.begin_transaction()
                delivered = await producer.produce(topic, value)
                await producer.flush()
                await asyncio.wait_for(delivered, 30)
                if outcome == "commit":
                    await producer.commit_transaction(30)
                else:
                    await producer.abort_transaction(30)
        finally:
            await producer.close()

    with instrumented(ConfluentKafkaInstrumentor()) as sdk:
        asyncio.run(run())
        assert read_committed(bootstrap, topic, 1) == [b"kept"]
    assert sdk.open_spans.names() == [], "every span must end"
    outcomes = {
        span.attributes[TRANSACTION_OUTCOME]: span.attributes["messaging.kafka.offset"]
        for span in sdk.spans(f"send {topic}")
    }
    assert sorted(outcomes) == ["aborted", "committed"]
    assert outcomes["committed"] < outcomes["aborted"], "sent in that order"
