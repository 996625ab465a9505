"""confluent-kafka's synchronous classes: ``Producer``, ``SerializingProducer``, ``Consumer``
and ``DeserializingConsumer``, replaced by traced subclasses (see
:mod:`~kafka_autotrace.clients.confluent.common`).

``produce()`` reports the broker's answer to a delivery callback, served by the application's
own ``poll()``/``flush()``. We pass one of ours per message that ends the span, then calls the
callback librdkafka would have called without us, once, with the same arguments: the
per-message ``callback`` (which wins over its alias ``on_delivery`` whenever it is passed,
even as None, as in the C code), else ``on_delivery``, else the config-level one. With
``delivery.report.only.error=true`` (no report for delivered messages) or a callback that is
not callable, we pass none and the span ends when ``produce()`` returns.

The serializing classes are traced at their outermost call, so spans see keys and values as
the application does; their own calls into the C base go through ``super(SerializingProducer,
self)``, past our subclass, so they never make a second span.
"""

from __future__ import annotations

import logging
from functools import partial
from types import ModuleType
from typing import Any, Callable, ClassVar

from kafka_autotrace.clients.confluent.common import (
    TELEMETRY,
    ClusterIdOfClient,
    ConfluentReceives,
    ConfluentSends,
    ConfluentState,
    acknowledged,
    remember,
    tapped,
)
from kafka_autotrace.core.calls import CallShape
from kafka_autotrace.core.client import ClientState
from kafka_autotrace.core.receive_flow import ReceiveFlow
from kafka_autotrace.core.send_flow import SendFlow
from kafka_autotrace.core.sending import MeasuredSend
from kafka_autotrace.core.transactions import TransactionFlow

_logger = logging.getLogger(__name__)


def _delivered(
    failed: Any,
    pending: MeasuredSend,
    state: ConfluentState,
    callback: Any,
    error: Any,
    message: Any,
) -> Any:
    """Our per-message delivery callback: end the span (counting a failed delivery), then call
    the application's."""
    try:
        if error is None:
            pending.succeed(*acknowledged(message))
        else:
            state.delivery_errors += 1
            from confluent_kafka import KafkaException

            failed(pending, KafkaException(error))
    except Exception:
        _logger.debug("kafka-autotrace: reading a delivery report failed", exc_info=True)
    if callback is not None:
        return callback(error, message)
    return None


class _Produce(ClusterIdOfClient, ConfluentSends):
    """``Producer.produce(topic, value, key, partition, callback, on_delivery, timestamp,
    headers)``."""

    shape = CallShape(
        "topic", "value", "key", "partition", "callback", "on_delivery", "timestamp", "headers"
    )
    callbacks: tuple[str, ...] = ("callback", "on_delivery")
    """The names a delivery callback may be passed under, the one that wins first."""

    def rejected(self, error: Exception) -> bool:
        """A TypeError, or a message over ``message.max.bytes``."""
        from confluent_kafka import KafkaError

        if isinstance(error, TypeError):
            return True
        reason = error.args[0] if error.args else None
        return isinstance(reason, KafkaError) and reason.code() == KafkaError.MSG_SIZE_TOO_LARGE

    def delivery_callback(
        self,
        pending: MeasuredSend,
        state: ClientState,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> tuple[str, Callable[..., Any]] | None:
        if not isinstance(state, ConfluentState) or not state.follows_delivery:
            return None
        name, callback = self.shape.first_given(args, kwargs, self.callbacks)
        if callback is None:
            callback = state.default_callback
        if callback is not None and not callable(callback):
            return None
        return name, partial(_delivered, self.failed, pending, state, callback)


class _SerializingProduce(_Produce):
    """``SerializingProducer.produce``: its own argument order, no ``callback`` alias."""

    shape = CallShape("topic", "key", "value", "partition", "on_delivery", "timestamp", "headers")
    callbacks = ("on_delivery",)


class _Receive(ClusterIdOfClient, ConfluentReceives):
    """A ``Consumer``'s or ``DeserializingConsumer``'s calls."""


_RECEIVE = ReceiveFlow(TELEMETRY, _Receive())
_TRANSACTIONS = TransactionFlow(TELEMETRY, _Produce())


def _construct(client: Any, base: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Call the C type's ``__init__`` as the application called ours (with our statistics tap
    when the clients' statistics are bridged), then keep what tracing needs: with no keywords
    when it passed none, because librdkafka's binding tells "no configuration" (a TypeError)
    from an empty keyword dict (a client with default settings)."""
    tapped_args, tapped_kwargs, statistics = tapped(args, kwargs)
    if tapped_kwargs:
        base.__init__(*tapped_args, **tapped_kwargs)
    else:
        base.__init__(*tapped_args)
    remember(client, args, kwargs, statistics)


class _TracedProducer:
    """Mixed in ahead of ``Producer``."""

    __slots__ = ()
    _sends: ClassVar[SendFlow] = SendFlow(TELEMETRY, _Produce())

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        _construct(self, super(), args, kwargs)

    def produce(self, *args: Any, **kwargs: Any) -> Any:
        return self._sends.call(super().produce, self, args, kwargs)  # type: ignore[misc]

    def begin_transaction(self, *args: Any, **kwargs: Any) -> Any:
        return _TRANSACTIONS.begin(super().begin_transaction, self, args, kwargs)  # type: ignore[misc]

    def commit_transaction(self, *args: Any, **kwargs: Any) -> Any:
        return _TRANSACTIONS.commit(super().commit_transaction, self, args, kwargs)  # type: ignore[misc]

    def abort_transaction(self, *args: Any, **kwargs: Any) -> Any:
        return _TRANSACTIONS.abort(super().abort_transaction, self, args, kwargs)  # type: ignore[misc]


class _TracedSerializingProducer(_TracedProducer):
    """Mixed in ahead of ``SerializingProducer``."""

    __slots__ = ()
    _sends = SendFlow(TELEMETRY, _SerializingProduce())


class _TracedConsumer:
    """Mixed in ahead of ``Consumer`` and ``DeserializingConsumer``."""

    __slots__ = ()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        _construct(self, super(), args, kwargs)

    def subscribe(self, *args: Any, **kwargs: Any) -> Any:
        return _RECEIVE.subscribe(super().subscribe, self, args, kwargs)  # type: ignore[misc]

    def poll(self, *args: Any, **kwargs: Any) -> Any:
        return _RECEIVE.one(super().poll, self, args, kwargs)  # type: ignore[misc]

    def consume(self, *args: Any, **kwargs: Any) -> Any:
        return _RECEIVE.batch(super().consume, self, args, kwargs)  # type: ignore[misc]

    def close(self, *args: Any, **kwargs: Any) -> Any:
        return _RECEIVE.close(super().close, self, args, kwargs)  # type: ignore[misc]

    def seek(self, *args: Any, **kwargs: Any) -> Any:
        return _RECEIVE.seek(super().seek, self, args, kwargs)  # type: ignore[misc]

    def __exit__(self, *args: Any) -> Any:
        return _RECEIVE.close(super().__exit__, self, args, {})  # type: ignore[misc]


def targets(module: ModuleType) -> list[tuple[ModuleType, str, type]]:
    """The classes of ``confluent_kafka`` to replace, with the mixin of each."""
    return [
        (module, "Producer", _TracedProducer),
        (module, "SerializingProducer", _TracedSerializingProducer),
        (module, "Consumer", _TracedConsumer),
        (module, "DeserializingConsumer", _TracedConsumer),
    ]
