"""The driver of kafka-python: ``KafkaProducer`` and ``KafkaConsumer``."""

from __future__ import annotations

import importlib.metadata
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Callable, ClassVar

import pytest
from support.broker import start_private_broker

from contract.drivers.base import (
    BAD_HEADERS,
    CLIENT_ID,
    CLUSTER_ID,
    Ack,
    CallForm,
    Driver,
    Handled,
    InvalidCall,
    Record,
    Undelivered,
    current_span_context,
)
from kafka_autotrace.kafka_python import KafkaPythonInstrumentor


def producer_config(bootstrap: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """A kafka-python or aiokafka producer's configuration (the same spelling)."""
    return {"bootstrap_servers": bootstrap, "linger_ms": 0, "client_id": CLIENT_ID, **config}


def consumer_config(bootstrap: str, topic: str) -> dict[str, Any]:
    """A kafka-python or aiokafka consumer's configuration: its group, read from the start,
    committing nothing."""
    return {
        "bootstrap_servers": bootstrap,
        "group_id": f"{topic}-group",
        "auto_offset_reset": "earliest",
        "enable_auto_commit": False,
    }


def attribute_record(raw: Any) -> Record:
    """A kafka-python or aiokafka record, read: aiokafka gives its headers as a tuple."""
    return Record(raw.value, raw.key, list(raw.headers), raw.offset)


def handled_by_partition(batches: Mapping[Any, list[Any]]) -> list[Handled]:
    """A ``{TopicPartition: [records]}`` batch iterated as an application would."""
    assert all(batches.values()), "a batch call leaves out partitions without records"
    return [
        Handled(attribute_record(raw), current_span_context())
        for records in batches.values()
        for raw in records
    ]


def _release() -> str:
    try:
        return importlib.metadata.version("kafka-python")
    except importlib.metadata.PackageNotFoundError:
        return ""


def _kafka_python_ack(future: Any) -> Ack:
    metadata = future.get(timeout=10)
    return Ack(metadata.partition, metadata.offset)


class KafkaPython(Driver):
    """``KafkaProducer`` and ``KafkaConsumer``: one record by iteration, batches by poll()."""

    name = "kafka-python"
    module = "kafka"
    instrumentor = KafkaPythonInstrumentor
    entry_point = "kafka_autotrace_kafka_python"
    acks_on_flush = False  # its I/O thread acknowledges on its own, maybe before any check
    header_kinds = ("list", "none")  # kafka-python takes headers as a list only
    missing: ClassVar[Mapping[str, str]] = (
        {CLUSTER_ID: "kafka-python 2.0 keeps no cluster id from the metadata it reads"}
        if _release().startswith("2.0.")
        else {}
    )
    call_forms = (
        CallForm("positional", lambda p, t, h: p.send(t, b"v", b"k", h)),
        CallForm("keyword", lambda p, t, h: p.send(t, value=b"v", key=b"k", headers=h)),
        CallForm("tombstone", lambda p, t, h: p.send(t, None, b"k", h), value=None),
        CallForm("all-keyword", lambda p, t, h: p.send(topic=t, key=b"k", headers=h), value=None),
    )
    invalid_calls = (
        InvalidCall(
            "tuple-headers", lambda p, t: p.send(t, value=b"v", headers=(("a", b"1"),)), BAD_HEADERS
        ),
        InvalidCall(
            "str-header-value",
            lambda p, t: p.send(t, value=b"v", headers=[("a", "s")]),
            BAD_HEADERS,
        ),
        InvalidCall("no-key-no-value", lambda p, t: p.send(t), (ValueError, AssertionError)),
    )

    def __init__(self, bootstrap: str) -> None:
        super().__init__(bootstrap)
        self.kafka = self.require()

    def shutdown(self) -> None:
        for producer in self._producers:
            producer.close(timeout=5)

    def producer(self, **config: Any) -> Any:
        producer = self.kafka.KafkaProducer(**producer_config(self.bootstrap, config))
        self._producers.append(producer)
        return producer

    def produce(
        self, topic: str, value: bytes | None, key: bytes | None = None, producer: Any = None
    ) -> Callable[[], Ack]:
        future = (producer or self._shared_producer()).send(topic, value, key=key)
        return lambda: _kafka_python_ack(future)

    def send_to_partition(self, topic: str, value: bytes, partition: int) -> Ack:
        return _kafka_python_ack(self._shared_producer().send(topic, value, partition=partition))

    def send_form(self, topic: str, form: CallForm, headers: Any) -> Ack:
        return _kafka_python_ack(form.call(self._shared_producer(), topic, headers))

    def undeliverable(self, tmp_path: Path) -> Undelivered:
        """To a broker stopped after the producer learned its metadata: without metadata,
        kafka-python would block in send() instead of queueing the message."""
        private = start_private_broker(tmp_path / "broker.log")
        timeouts = {"delivery_timeout_ms": 1500} if self.kafka.version.__version__ >= "2.1" else {}
        producer = self.producer(
            bootstrap_servers=private.bootstrap_servers,
            request_timeout_ms=1000,
            retry_backoff_ms=100,
            reconnect_backoff_max_ms=200,
            max_block_ms=2000,
            **timeouts,
        )
        try:
            producer.send("doomed", b"warm-up").get(timeout=10)
            private.stop()
            future = producer.send("doomed", b"lost")
            errors: list[BaseException] = []
            future.add_errback(errors.append)
            with pytest.raises(Exception) as raised:
                future.get(timeout=30)
        finally:
            private.stop()
            producer.close(timeout=1)
        assert errors == [raised.value], "the errback gets what get() raises"
        return Undelivered(type(raised.value).__qualname__, sends=2)

    def consumer(self, *topics: str, **config: Any) -> Any:
        consumer = self.kafka.KafkaConsumer(
            **consumer_config(self.bootstrap, topics[0]), consumer_timeout_ms=10_000, **config
        )
        consumer.assign([self.kafka.TopicPartition(topic, 0) for topic in topics])
        return consumer

    def next_record(self, consumer: Any) -> Record:
        return self.record(next(consumer))

    def poll_batch(self, consumer: Any, up_to: int, timeout: float) -> list[Handled]:
        return handled_by_partition(
            consumer.poll(timeout_ms=int(timeout * 1000), max_records=up_to)
        )

    def consumer_past_the_end(self, topic: str) -> Any:
        config = {**consumer_config(self.bootstrap, topic), "auto_offset_reset": "none"}
        consumer = self.kafka.KafkaConsumer(**config, consumer_timeout_ms=1_000)
        partition = self.kafka.TopicPartition(topic, 0)
        consumer.assign([partition])
        consumer.seek(partition, 1_000)
        return consumer

    def receive_once(self, consumer: Any, method: str) -> None:
        if method == "next":
            next(consumer, None)
        else:
            consumer.poll(timeout_ms=500)

    def record(self, raw: Any) -> Record:
        return attribute_record(raw)

    def patch_targets(self) -> tuple[list[Any], set[str]]:
        namespaces = [self.kafka.KafkaProducer, self.kafka.KafkaConsumer]
        transactions = {  # in releases that have transactions
            f"KafkaProducer.{name}"
            for name in ("begin_transaction", "commit_transaction", "abort_transaction")
            if hasattr(self.kafka.KafkaProducer, name)
        }
        return namespaces, {
            "KafkaProducer.send",
            "KafkaConsumer.__init__",
            "KafkaConsumer.subscribe",
            *transactions,
            "KafkaConsumer.__next__",
            "KafkaConsumer.poll",
            "KafkaConsumer.close",
            "KafkaConsumer.seek",
            "KafkaConsumer.seek_to_beginning",
            "KafkaConsumer.seek_to_end",
        }
