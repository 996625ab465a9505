"""confluent-kafka's asyncio classes (``confluent_kafka.aio``, ``confluent_kafka.experimental.aio``
in 2.12): ``AIOProducer``, ``AIOConsumer``, ``AsyncSerializingProducer`` and
``AsyncDeserializingConsumer``, replaced by traced subclasses when their module is imported.

- ``AIOProducer.produce()``: a ``send`` span from the call until the returned future resolves.
  No headers are ever added: AIOProducer batches messages through ``produce_batch``, which
  cannot carry headers (it raises NotImplementedError when given any), so these spans cannot
  propagate their context and the consumers of such messages start their own traces: not the
  messages' creation context, they are CLIENT spans. ``begin_transaction()``,
  ``commit_transaction()``, ``abort_transaction()``: followed as the synchronous producer's
  (:mod:`~kafka_autotrace.core.transactions`).
- ``AIOConsumer.poll()`` / ``consume()`` / ``close()``: the spans of the synchronous consumer,
  made current in the task that awaited the call. ``subscribe()``: the rebalance callbacks
  that count the consumer's group changes
  (:mod:`~kafka_autotrace.clients.confluent.group_callbacks`). They run on the consumer's
  executor threads, or in tasks the consumer starts from there, where no span of the
  application is current: the changes are counted but are no span's events.
- The ``Producer``/``Consumer`` an aio client wraps runs on executor threads, where a span would
  be made current in the wrong context and would duplicate this one: it is marked delegated,
  and the aio class traces on its behalf.
"""

from __future__ import annotations

import sys
from types import ModuleType
from typing import Any, ClassVar

from kafka_autotrace.clients.confluent.common import (
    TELEMETRY,
    ConfluentReceives,
    ConfluentSends,
    ConfluentState,
    acknowledged,
    log_start_of,
    look_up_committed,
    replace_classes,
)
from kafka_autotrace.core.adapter import UNTOUCHED
from kafka_autotrace.core.calls import CallShape
from kafka_autotrace.core.client import ClientInfo, ClientState, state_of
from kafka_autotrace.core.gaps import Found, Partition
from kafka_autotrace.core.receive_flow import ReceiveFlow
from kafka_autotrace.core.send_flow import SendFlow
from kafka_autotrace.core.sending import MeasuredSend, end_when_done
from kafka_autotrace.core.transactions import TransactionFlow


def _delegating(client: Any, inner: str) -> ClientState:
    """The state of an aio client, from the wrapped client's, which is then left to us."""
    wrapped = state_of(getattr(client, inner, None))
    if wrapped is not None:
        wrapped.delegated = True
    return ClientState(wrapped.info if wrapped is not None else ClientInfo())


class _Produce(ConfluentSends):
    """``AIOProducer.produce(topic, value, key, **kwargs)``."""

    shape = CallShape("topic", "value", "key", keyword_only=("partition", "headers"))

    def describe(self, client: Any) -> ClientState:
        return _delegating(client, "_producer")

    def extendable(self, client: Any, headers: object) -> object:
        return UNTOUCHED

    def follow(self, pending: MeasuredSend, result: Any) -> bool:
        end_when_done(pending, result, acknowledged, self.failed)
        return True


class _SerializingProduce(_Produce):
    """``AsyncSerializingProducer.produce``, which takes the key before the value."""

    shape = CallShape("topic", "key", "value", "partition", "timestamp", "headers")


class _Receive(ConfluentReceives):
    """Keeps the lag's figures in the aio consumer's state, read from the consumer it wraps
    after each call (in the event loop's thread, the call having returned)."""

    awaits_keyword_callbacks = True
    rebalances_elsewhere = True

    def describe(self, client: Any) -> ClientState:
        wrapped = state_of(getattr(client, "_consumer", None))
        starts_at_earliest = isinstance(wrapped, ConfluentState) and wrapped.starts_at_earliest
        info = _delegating(client, "_consumer").info
        return ConfluentState(info, starts_at_earliest=starts_at_earliest)

    def librdkafka_consumer(self, consumer: Any) -> Any:
        return consumer._consumer

    def log_start(self, consumer: Any, partition: Partition) -> int | None:
        return log_start_of(consumer._consumer, partition)

    def look_up(self, consumer: Any, partition: Partition, committed: bool, found: Found) -> None:
        look_up_committed(consumer, consumer._consumer, partition, found)


_RECEIVE = ReceiveFlow(TELEMETRY, _Receive())
_TRANSACTIONS = TransactionFlow(TELEMETRY, _Produce())


class _TracedAIOProducer:
    """Mixed in ahead of ``AIOProducer``."""

    __slots__ = ()
    _sends: ClassVar[SendFlow] = SendFlow(TELEMETRY, _Produce())

    async def produce(self, *args: Any, **kwargs: Any) -> Any:
        return await self._sends.call_async(super().produce, self, args, kwargs)  # type: ignore[misc]

    async def begin_transaction(self, *args: Any, **kwargs: Any) -> Any:
        return await _TRANSACTIONS.begin_async(super().begin_transaction, self, args, kwargs)  # type: ignore[misc]

    async def commit_transaction(self, *args: Any, **kwargs: Any) -> Any:
        return await _TRANSACTIONS.commit_async(super().commit_transaction, self, args, kwargs)  # type: ignore[misc]

    async def abort_transaction(self, *args: Any, **kwargs: Any) -> Any:
        return await _TRANSACTIONS.abort_async(super().abort_transaction, self, args, kwargs)  # type: ignore[misc]


class _TracedAsyncSerializingProducer(_TracedAIOProducer):
    """Mixed in ahead of ``AsyncSerializingProducer``."""

    __slots__ = ()
    _sends = SendFlow(TELEMETRY, _SerializingProduce())


class _TracedAIOConsumer:
    """Mixed in ahead of ``AIOConsumer`` and ``AsyncDeserializingConsumer``."""

    __slots__ = ()

    async def subscribe(self, *args: Any, **kwargs: Any) -> Any:
        return await _RECEIVE.subscribe(super().subscribe, self, args, kwargs)  # type: ignore[misc]

    async def poll(self, *args: Any, **kwargs: Any) -> Any:
        return await _RECEIVE.one_async(super().poll, self, args, kwargs)  # type: ignore[misc]

    async def consume(self, *args: Any, **kwargs: Any) -> Any:
        return await _RECEIVE.batch_async(super().consume, self, args, kwargs)  # type: ignore[misc]

    async def close(self, *args: Any, **kwargs: Any) -> Any:
        return await _RECEIVE.close_async(super().close, self, args, kwargs)  # type: ignore[misc]

    async def seek(self, *args: Any, **kwargs: Any) -> Any:
        return await _RECEIVE.seek_async(super().seek, self, args, kwargs)  # type: ignore[misc]


def patch_aio(module: ModuleType) -> None:
    """Replace the aio classes (those this release has); the post-import hook."""
    if TELEMETRY.telemetry is None:
        return
    targets = [
        (module, "AIOProducer", _TracedAIOProducer),
        (module, "AsyncSerializingProducer", _TracedAsyncSerializingProducer),
        (module, "AIOConsumer", _TracedAIOConsumer),
        (module, "AsyncDeserializingConsumer", _TracedAIOConsumer),
    ]
    producer_module = sys.modules.get(f"{module.__name__}.producer")
    if producer_module is not None:
        targets.append((producer_module, "AIOProducer", _TracedAIOProducer))
    replace_classes(targets)
