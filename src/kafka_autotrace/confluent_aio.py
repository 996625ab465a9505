"""The asyncio classes of confluent-kafka (``confluent_kafka.aio``), traced where they allow it.

Loaded by a post-import hook only once the application imports ``confluent_kafka.aio`` (or
``confluent_kafka.experimental.aio``, its name in 2.12); :func:`patch_aio` then replaces
``AIOProducer``, ``AIOConsumer``, ``AsyncSerializingProducer`` and
``AsyncDeserializingConsumer`` (those the release has) with traced subclasses, like the
synchronous classes.

- ``AIOProducer.produce()``: a ``send`` span from the call until the returned future resolves,
  with partition and offset, or ERROR with the KafkaError name. No headers are ever added:
  AIOProducer batches messages through ``produce_batch``, which cannot carry headers (it raises
  NotImplementedError when given any), so these spans cannot propagate their context and the
  consumers of such messages start their own traces.
- ``AIOConsumer.poll()`` / ``consume()`` / ``close()``: the same spans as the synchronous
  consumer, parented from the message headers. The process span is made current in the task
  that awaited the call; ending it from another task ends the span without touching that
  task's context (:class:`~kafka_autotrace.scope.ProcessScope`).
- The ``confluent_kafka.Producer``/``Consumer`` an aio client wraps is itself of a traced class
  but runs on executor threads, where a span would be made current in the wrong context and
  would duplicate this one; it is marked delegated, and the aio class traces on its behalf.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from functools import partial
from types import ModuleType
from typing import Any, ClassVar

from kafka_autotrace.calls import CallShape
from kafka_autotrace.confluent_kafka import (
    ACTIVE,
    STATE_ATTR,
    ClientState,
    consuming_state,
    end_send,
    enter_message,
    fail_send,
    replace_classes,
    start_send,
    state_of,
    traced_batch,
)
from kafka_autotrace.model import ClientInfo
from kafka_autotrace.telemetry import PendingSend

_logger = logging.getLogger(__name__)


def _aio_state(client: Any, inner: str) -> ClientState:
    """The state of an aio client, made on first use from the wrapped client's, which is then
    left to us."""
    state: ClientState | None = client.__dict__.get(STATE_ATTR)
    if state is None:
        wrapped = state_of(getattr(client, inner, None))
        if wrapped is not None:
            wrapped.delegated = True
        state = ClientState(wrapped.info if wrapped is not None else ClientInfo())
        client.__dict__[STATE_ATTR] = state
    return state


def _consuming(consumer: Any) -> ClientState | None:
    try:
        _aio_state(consumer, "_consumer")
    except Exception:
        _logger.debug("kafka-autotrace: reading an aio consumer failed", exc_info=True)
        return None
    return consuming_state(consumer)


def _resolved(pending: PendingSend, future: asyncio.Future[Any]) -> None:
    """End a send span when AIOProducer resolves the message's future."""
    try:
        if future.cancelled():
            pending.fail_with(asyncio.CancelledError("the message was purged before delivery"))
            return
        exception = future.exception()
        if exception is not None:
            fail_send(pending, exception)
        else:
            end_send(pending, None, future.result())
    except Exception:
        _logger.debug("kafka-autotrace: ending a send span failed", exc_info=True)


class _TracedAIOProducer:
    """Mixed in ahead of ``AIOProducer``: ``produce(topic, value, key, **kwargs)``."""

    __slots__ = ()
    _produce_shape: ClassVar[CallShape] = CallShape(
        "topic", "value", "key", keyword_only=("partition", "headers")
    )

    async def produce(self, *args: Any, **kwargs: Any) -> Any:
        produce = super().produce  # type: ignore[misc]
        pending = None
        try:
            pending = start_send(_aio_state(self, "_producer"), self._produce_shape, args, kwargs)
        except Exception:
            _logger.debug("kafka-autotrace: starting a send span failed", exc_info=True)
        if pending is None:
            return await produce(*args, **kwargs)
        try:
            future = await produce(*args, **kwargs)
        except BaseException as exception:
            fail_send(pending, exception)
            raise
        if not pending.tracked:
            return future
        try:
            future.add_done_callback(partial(_resolved, pending))
        except Exception:
            _logger.debug("kafka-autotrace: cannot follow a produce future", exc_info=True)
            pending.succeed(None, None)
        return future


class _TracedAsyncSerializingProducer(_TracedAIOProducer):
    """Mixed in ahead of ``AsyncSerializingProducer``, which takes the key before the value."""

    __slots__ = ()
    _produce_shape = CallShape("topic", "key", "value", "partition", "timestamp", "headers")


class _TracedAIOConsumer:
    """Mixed in ahead of ``AIOConsumer`` and ``AsyncDeserializingConsumer``."""

    __slots__ = ()

    async def poll(self, *args: Any, **kwargs: Any) -> Any:
        state = _consuming(self)
        message = await super().poll(*args, **kwargs)  # type: ignore[misc]
        if state is not None:
            enter_message(state, message)
        return message

    async def consume(self, *args: Any, **kwargs: Any) -> Any:
        state = _consuming(self)
        started_ns, started = time.time_ns(), time.perf_counter()
        messages = await super().consume(*args, **kwargs)  # type: ignore[misc]
        if state is None:
            return messages
        return traced_batch(state, messages, started_ns, started)

    async def close(self, *args: Any, **kwargs: Any) -> Any:
        consuming_state(self)
        return await super().close(*args, **kwargs)  # type: ignore[misc]


def patch_aio(module: ModuleType) -> None:
    """Replace the aio classes (those this release has); the post-import hook."""
    if ACTIVE.telemetry is None:
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
