"""The aiokafka adapter: ``AIOKafkaProducer.send``, ``AIOKafkaConsumer.getone``, ``getmany`` and
``stop``, patched at class level (docs/design.md, "Code layout").
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Iterable
from typing import Any, ClassVar

from kafka_autotrace.clients.registry import AIOKAFKA
from kafka_autotrace.core.adapter import (
    UNTOUCHED,
    AttributeRecordGetter,
    MappingBatches,
    ReceiveAdapter,
    SendAdapter,
)
from kafka_autotrace.core.calls import Arguments, CallShape
from kafka_autotrace.core.client import ClientInfo, ClientState
from kafka_autotrace.core.gaps import Found, Partition
from kafka_autotrace.core.instrumentor import MethodWrappingInstrumentor, Wrappers
from kafka_autotrace.core.lag import Lag
from kafka_autotrace.core.listeners import Note, listener_subscription, noting_listener
from kafka_autotrace.core.receive_flow import ReceiveFlow
from kafka_autotrace.core.send_flow import SendFlow
from kafka_autotrace.core.sending import MeasuredSend, end_when_done
from kafka_autotrace.core.telemetry import TelemetrySlot
from kafka_autotrace.core.transactions import TransactionFlow

_logger = logging.getLogger(__name__)


def _acknowledged(metadata: Any) -> tuple[int | None, int | None]:
    """The partition and offset of a RecordMetadata; None for both with ``acks=0``."""
    if metadata is None:
        return None, None
    return metadata.partition, metadata.offset


@functools.cache
def _falsy_headers_are_none() -> bool:
    """Whether the installed aiokafka sends ``headers or []`` (0.13 and later) rather than
    replacing only None."""
    from aiokafka import __version__

    return tuple(int(part) for part in __version__.split(".")[:2]) >= (0, 13)


def _info(client: Any, group: object = None) -> ClientState:
    return ClientState(
        ClientInfo.from_config(
            getattr(client, "_client_id", None), getattr(client, "_bootstrap_servers", None), group
        )
    )


class _Send(SendAdapter):
    shape = CallShape("topic", "value", "key", "partition", "timestamp_ms", "headers")

    def describe(self, client: Any) -> ClientState:
        return _info(getattr(client, "client", None))

    def extendable(self, client: Any, headers: object) -> object:
        """aiokafka takes a list only: anything else (a tuple, a dict) is left for aiokafka to
        reject as without us. None is no headers, and so is any falsy value from aiokafka 0.13,
        which sends ``headers or []``; earlier releases take any value but None as given."""
        if headers is None:
            return None
        if type(headers) is list:
            return headers
        return None if not headers and _falsy_headers_are_none() else UNTOUCHED

    def rejected(self, error: Exception) -> bool:
        """send() checks the size of the serialized message, headers included, before queueing
        it: one too large only with our headers is sent again as the application made it."""
        from aiokafka.errors import MessageSizeTooLargeError

        return isinstance(error, MessageSizeTooLargeError)

    def follow(self, pending: MeasuredSend, result: Any) -> bool:
        end_when_done(pending, result, _acknowledged, self.failed)
        return True


class _Receive(MappingBatches, ReceiveAdapter):
    """``getmany()`` returns ``{TopicPartition: [records]}``. The listener runs in the
    consumer's coordination task."""

    getter = AttributeRecordGetter()
    rebalances_elsewhere = True

    def describe(self, client: Any) -> ClientState:
        return _info(getattr(client, "_client", None), getattr(client, "_group_id", None))

    def assigned_partitions(self, consumer: Any) -> Iterable[Any]:
        return list(consumer.assignment())

    def noting_subscription(self, arguments: Arguments, note: Note) -> Arguments | None:
        from aiokafka.abc import ConsumerRebalanceListener

        return listener_subscription(arguments, [ConsumerRebalanceListener], note)

    def note_constructed_subscription(self, consumer: Any, note: Note) -> None:
        from aiokafka.abc import ConsumerRebalanceListener

        subscription = consumer._subscription
        if subscription.listener is None:
            subscription._listener = noting_listener(None, [ConsumerRebalanceListener], note)

    def partition_lag(self, consumer: Any, partition: Any) -> Lag | None:
        """From the high watermark of the last fetch and the position, both read synchronously
        (``position()`` is a coroutine, and awaits a position that is not known yet); None for
        either while unknown, or where aiokafka keeps them elsewhere than 0.9 to 0.14 do."""
        highwater = consumer.highwater(partition)
        position = _position(consumer, partition)
        if not isinstance(highwater, int) or position is None:
            return None
        return partition.topic, partition.partition, highwater - position

    def look_up(self, consumer: Any, partition: Partition, committed: bool, found: Found) -> None:
        _look_up(consumer, partition, committed, found)


def _look_up(consumer: Any, partition: Partition, committed: bool, found: Found) -> None:
    """A task beside the application's, on its event loop: aiokafka keeps no log start
    offset (its fetcher drops it from fetch responses), so it is asked for, as is the
    committed offset."""
    from aiokafka import TopicPartition

    topic_partition = TopicPartition(*partition)

    async def look() -> None:
        try:
            offset = await consumer.committed(topic_partition) if committed else None
            starts = await consumer.beginning_offsets([topic_partition])
            found(offset, starts.get(topic_partition))
        except Exception:
            _logger.debug("kafka-autotrace: a look-up for a gap failed", exc_info=True)

    task = asyncio.get_running_loop().create_task(look())
    _LOOKING.add(task)
    task.add_done_callback(_LOOKING.discard)


_LOOKING: set[asyncio.Task[None]] = set()
"""Look-ups under way, kept from the garbage collector."""


def _position(consumer: Any, partition: Any) -> int | None:
    """The consumer's position in ``partition``, as ``position()`` would return it once known."""
    subscription = getattr(getattr(consumer, "_subscription", None), "subscription", None)
    assignment = getattr(subscription, "assignment", None)
    partition_state = getattr(assignment, "state_value", lambda _: None)(partition)
    if not getattr(partition_state, "has_valid_position", False):
        return None
    position = getattr(partition_state, "position", None)
    return position if isinstance(position, int) else None


TELEMETRY = TelemetrySlot()
_SEND = SendFlow(TELEMETRY, _Send())
_TRANSACTIONS = TransactionFlow(TELEMETRY, _Send())
_RECEIVE = ReceiveFlow(TELEMETRY, _Receive())


class AIOKafkaInstrumentor(MethodWrappingInstrumentor):
    """Traces aiokafka producers and consumers (entry point ``kafka_autotrace_aiokafka``)."""

    client = AIOKAFKA
    telemetry_slot = TELEMETRY
    module = "aiokafka"
    wrappers: ClassVar[Wrappers] = {
        "AIOKafkaProducer": {
            "send": _SEND.call_async,
            "begin_transaction": _TRANSACTIONS.begin_async,
            "commit_transaction": _TRANSACTIONS.commit_async,
            "abort_transaction": _TRANSACTIONS.abort_async,
        },
        "AIOKafkaConsumer": {
            "__init__": _RECEIVE.construct,
            "subscribe": _RECEIVE.subscribe,
            "getone": _RECEIVE.one_async,
            "getmany": _RECEIVE.batch_async,
            "stop": _RECEIVE.close_async,
            "seek": _RECEIVE.seek,
            "seek_to_beginning": _RECEIVE.seek_async,
            "seek_to_end": _RECEIVE.seek_async,
            "seek_to_committed": _RECEIVE.seek_async,
        },
    }
