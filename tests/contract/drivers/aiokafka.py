"""The driver of aiokafka: ``AIOKafkaProducer`` and ``AIOKafkaConsumer``."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping, Sequence
from pathlib import Path
from typing import Any, Callable, ClassVar

import pytest
from support.broker import start_private_broker

from contract.drivers.asynchronous import AsyncDriver
from contract.drivers.base import (
    CLUSTER_ID,
    Ack,
    CallForm,
    Handled,
    InvalidCall,
    Record,
    Undelivered,
)
from contract.drivers.kafka_python import (
    attribute_record,
    consumer_config,
    handled_by_partition,
    producer_config,
)
from kafka_autotrace.aiokafka import AIOKafkaInstrumentor


async def _aiokafka_ack(sent: Awaitable[Any]) -> Ack:
    """The acknowledgement of a send call: ``send()`` gives a future to await as well,
    ``send_and_wait()`` the RecordMetadata itself."""
    result = await sent
    metadata = await asyncio.wait_for(result, 10) if asyncio.isfuture(result) else result
    return Ack(metadata.partition, metadata.offset)


class AIOKafka(AsyncDriver):
    """``AIOKafkaProducer`` and ``AIOKafkaConsumer``: one record by getone(), batches by
    getmany()."""

    name = "aiokafka"
    module = "aiokafka"
    instrumentor = AIOKafkaInstrumentor
    entry_point = "kafka_autotrace_aiokafka"
    acks_on_flush = False  # its sender task acknowledges on its own, maybe before any check
    header_kinds = ("list", "none")  # aiokafka rejects a dict with TypeError
    missing: ClassVar[Mapping[str, str]] = {
        CLUSTER_ID: "aiokafka's cluster metadata keeps nothing of the cluster id that metadata "
        "responses carry, and it has no other way to tell it",
    }
    call_forms = (
        CallForm("positional", lambda p, t, h: p.send(t, b"v", b"k", None, None, h)),
        CallForm("keyword", lambda p, t, h: p.send(t, value=b"v", key=b"k", headers=h)),
        CallForm("tombstone", lambda p, t, h: p.send(t, None, b"k", headers=h), value=None),
        CallForm("all-keyword", lambda p, t, h: p.send(topic=t, key=b"k", headers=h), value=None),
        CallForm("send-and-wait", lambda p, t, h: p.send_and_wait(t, b"v", b"k", headers=h)),
    )
    invalid_calls = (
        InvalidCall("no-key-no-value", lambda p, t: p.send(t), (AssertionError,)),
        InvalidCall(
            "str-header-value", lambda p, t: p.send(t, b"v", headers=[("a", "s")]), (TypeError,)
        ),
        InvalidCall(
            "dict-headers", lambda p, t: p.send(t, b"v", headers={"a": b"1"}), (TypeError,)
        ),
        InvalidCall(
            "size",
            lambda p, t: p.send(t, b"x" * 4000),
            (Exception,),
            config={"max_request_size": 1000},
        ),
    )

    def __init__(self, bootstrap: str) -> None:
        super().__init__(bootstrap)
        self.aiokafka = self.require()

    def shutdown(self) -> None:
        for producer in self._producers:
            self.run(producer.stop())
        self._close_loop()

    # -- producing ----------------------------------------------------------------------------

    async def _new_producer(self, config: Mapping[str, Any]) -> Any:
        """Made and started in the loop, whose tasks send its batches."""
        producer = self.aiokafka.AIOKafkaProducer(**producer_config(self.bootstrap, config))
        await producer.start()
        self._producers.append(producer)
        return producer

    def produce(
        self, topic: str, value: bytes | None, key: bytes | None = None, producer: Any = None
    ) -> Callable[[], Ack]:
        future = self.run((producer or self._shared_producer()).send(topic, value, key=key))

        async def acked() -> Any:
            return future

        return lambda: self.run(_aiokafka_ack(acked()))

    def send_to_partition(self, topic: str, value: bytes, partition: int) -> Ack:
        producer = self._shared_producer()
        return self.run(_aiokafka_ack(producer.send(topic, value, partition=partition)))

    def send_form(self, topic: str, form: CallForm, headers: Any) -> Ack:
        return self.run(_aiokafka_ack(form.call(self._shared_producer(), topic, headers)))

    def undeliverable(self, tmp_path: Path) -> Undelivered:
        """To a broker stopped after the producer learned its metadata: without metadata,
        send() would wait for it instead of queueing the message."""
        private = start_private_broker(tmp_path / "broker.log")

        async def lost() -> BaseException:
            producer = await self._new_producer(
                {
                    "bootstrap_servers": private.bootstrap_servers,
                    "request_timeout_ms": 1000,
                    "retry_backoff_ms": 100,
                }
            )
            await _aiokafka_ack(producer.send("doomed", b"warm-up"))
            private.stop()
            future = await producer.send("doomed", b"lost")
            with pytest.raises(self.aiokafka.errors.KafkaError) as raised:
                await asyncio.wait_for(future, 30)
            return raised.value

        try:
            error = self.run(lost())
        finally:
            private.stop()
        return Undelivered(type(error).__qualname__, sends=2)

    # -- consuming ----------------------------------------------------------------------------

    async def _new_consumer(self, topics: Sequence[str], config: Mapping[str, Any]) -> Any:
        consumer = self.aiokafka.AIOKafkaConsumer(
            **consumer_config(self.bootstrap, topics[0]), **config
        )
        await consumer.start()
        consumer.assign([self.aiokafka.TopicPartition(topic, 0) for topic in topics])
        return consumer

    def consumer(self, *topics: str, **config: Any) -> Any:
        return self.run(self._new_consumer(topics, config))

    def next_record(self, consumer: Any) -> Record:
        async def next_record() -> Record:
            # Awaited here, not in wait_for()'s task: the span must be current in this one.
            return self.record(await consumer.getone())

        return self.run(next_record())

    def poll_batch(self, consumer: Any, up_to: int, timeout: float) -> list[Handled]:
        async def poll() -> list[Handled]:
            return handled_by_partition(
                await consumer.getmany(timeout_ms=int(timeout * 1000), max_records=up_to)
            )

        return self.run(poll())

    def consumer_past_the_end(self, topic: str) -> Any:
        async def made() -> Any:
            config = {**consumer_config(self.bootstrap, topic), "auto_offset_reset": "none"}
            consumer = self.aiokafka.AIOKafkaConsumer(**config)
            await consumer.start()
            partition = self.aiokafka.TopicPartition(topic, 0)
            consumer.assign([partition])
            consumer.seek(partition, 1_000)
            return consumer

        return self.run(made())

    def receive_once(self, consumer: Any, method: str) -> None:
        if method == "next":
            self.run(asyncio.wait_for(consumer.getone(), 5))
        else:
            self.run(consumer.getmany(timeout_ms=500))

    def close(self, consumer: Any) -> None:
        self.run(consumer.stop())

    def record(self, raw: Any) -> Record:
        return attribute_record(raw)

    def patch_targets(self) -> tuple[list[Any], set[str]]:
        namespaces = [self.aiokafka.AIOKafkaProducer, self.aiokafka.AIOKafkaConsumer]
        return namespaces, {
            "AIOKafkaProducer.send",
            "AIOKafkaConsumer.__init__",
            "AIOKafkaConsumer.subscribe",
            "AIOKafkaProducer.begin_transaction",
            "AIOKafkaProducer.commit_transaction",
            "AIOKafkaProducer.abort_transaction",
            "AIOKafkaConsumer.getone",
            "AIOKafkaConsumer.getmany",
            "AIOKafkaConsumer.stop",
            "AIOKafkaConsumer.seek",
            "AIOKafkaConsumer.seek_to_beginning",
            "AIOKafkaConsumer.seek_to_end",
            "AIOKafkaConsumer.seek_to_committed",
        }
