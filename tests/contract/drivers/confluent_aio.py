"""The driver of ``confluent_kafka.aio``: ``AIOProducer`` and ``AIOConsumer``."""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, ClassVar

from contract.drivers.asynchronous import AsyncDriver
from contract.drivers.base import (
    CLUSTER_ID,
    HEADERS,
    Ack,
    Handled,
    InvalidCall,
    Record,
    Undelivered,
)
from contract.drivers.confluent_kafka import (
    ConfluentKafka,
    confluent_consumer_config,
    confluent_producer_config,
    confluent_record,
    from_the_start,
    handled,
    next_message,
    unreachable,
)
from kafka_autotrace.confluent_kafka import ConfluentKafkaInstrumentor


def aio_module() -> ModuleType:
    """``confluent_kafka.aio``: ``confluent_kafka.experimental.aio`` in 2.12, absent before."""
    try:
        return importlib.import_module("confluent_kafka.aio")
    except ImportError:
        return importlib.import_module("confluent_kafka.experimental.aio")


class ConfluentAio(AsyncDriver):
    """``AIOProducer`` and ``AIOConsumer``: one message by poll(), batches by consume(n)."""

    name = "confluent-kafka-aio"
    instrumentor = ConfluentKafkaInstrumentor
    entry_point = "kafka_autotrace_confluent_kafka"
    acks_on_flush = True
    invalid_calls = (
        InvalidCall(
            "headers",
            lambda p, t: p.produce(t, b"v", headers=[("app", b"1")]),
            (NotImplementedError,),
        ),
    )
    missing: ClassVar[Mapping[str, str]] = {
        HEADERS: "AIOProducer sends through produce_batch(), which cannot carry headers: it "
        "raises NotImplementedError when given some and adds none (test_confluent_kafka_aio.py); "
        "the contract tests that need context propagated send with the driver's carrier, "
        "a traced confluent_kafka.Producer",
        CLUSTER_ID: "the asyncio classes' client runs on executor threads, which a call from "
        "the event loop could wait for: their cluster id is not read",
    }

    def __init__(self, bootstrap: str) -> None:
        super().__init__(bootstrap)
        self.aio = self.require()
        self.carrier = ConfluentKafka(bootstrap)

    @classmethod
    def require(cls) -> ModuleType:
        return aio_module()

    def shutdown(self) -> None:
        for producer in self._producers:
            self.run(producer.close())
        self._close_loop()
        self.carrier.shutdown()

    # -- producing ----------------------------------------------------------------------------

    async def _new_producer(self, config: Mapping[str, Any]) -> Any:
        """Made in the loop, as AIOProducer takes the running loop for its futures."""
        producer = self.aio.AIOProducer(
            confluent_producer_config(self.bootstrap, config), buffer_timeout=0.05
        )
        self._producers.append(producer)
        return producer

    def produce(
        self, topic: str, value: bytes | None, key: bytes | None = None, producer: Any = None
    ) -> Callable[[], Ack]:
        producer = producer or self._shared_producer()
        future = self.run(producer.produce(topic, value, key))
        return lambda: self.run(self._acked(producer, future))

    def send_to_partition(self, topic: str, value: bytes, partition: int) -> Ack:
        producer = self._shared_producer()
        future = self.run(producer.produce(topic, value, partition=partition))
        return self.run(self._acked(producer, future))

    async def _acked(self, producer: Any, future: asyncio.Future[Any]) -> Ack:
        await producer.flush()  # 2.12 resolves futures only on flush
        message = await asyncio.wait_for(future, 10)
        return Ack(message.partition(), message.offset())

    def undeliverable(self, tmp_path: Path) -> Undelivered:
        async def lost() -> Any:
            producer = await self._new_producer({**unreachable(), "log_level": 0})
            future = await producer.produce("doomed", b"lost")
            await producer.flush()
            return future.exception()

        error = self.run(lost()).args[0]
        assert error.name() == "_MSG_TIMED_OUT"
        return Undelivered(error.name(), sends=1)

    # -- consuming ----------------------------------------------------------------------------

    async def _new_consumer(
        self, topics: Sequence[str], cls: Any, config: Mapping[str, Any]
    ) -> Any:
        consumer = cls(confluent_consumer_config(self.bootstrap, topics[0], config))
        if asyncio.iscoroutine(consumer):  # the asyncio deserializing class is awaited
            consumer = await consumer
        await consumer.assign(from_the_start(topics))
        return consumer

    def consumer(self, *topics: str, cls: Any = None, **config: Any) -> Any:
        """``cls``: AIOConsumer by default, or the AsyncDeserializingConsumer."""
        return self.run(self._new_consumer(topics, cls or self.aio.AIOConsumer, config))

    def next_record(self, consumer: Any) -> Record:
        return next_message(lambda timeout: self.run(consumer.poll(timeout)))

    def poll_batch(self, consumer: Any, up_to: int, timeout: float) -> list[Handled]:
        async def consume() -> list[Handled]:
            return handled(await consumer.consume(up_to, timeout))

        return self.run(consume())

    def consumer_past_the_end(self, topic: str) -> Any:
        import confluent_kafka

        async def made() -> Any:
            config = {"auto.offset.reset": "error"}
            consumer = self.aio.AIOConsumer(
                confluent_consumer_config(self.bootstrap, topic, config)
            )
            await consumer.assign([confluent_kafka.TopicPartition(topic, 0, 1_000)])
            return consumer

        return self.run(made())

    def receive_once(self, consumer: Any, method: str) -> None:
        if method == "next":
            self.run(consumer.poll(0.5))
        else:
            self.run(consumer.consume(1, 0.5))

    def close(self, consumer: Any) -> None:
        self.run(consumer.close())

    def record(self, raw: Any) -> Record:
        return confluent_record(raw)

    def patch_targets(self) -> tuple[list[Any], set[str]]:
        namespaces = [self.aio, self.aio.producer]
        names = (
            "AIOProducer",
            "AIOConsumer",
            "AsyncSerializingProducer",
            "AsyncDeserializingConsumer",
        )
        # Releases differ in which of the classes they have.
        return namespaces, {
            f"{ns.__name__}.{name}" for ns in namespaces for name in names if name in vars(ns)
        }
