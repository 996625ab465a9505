"""The send flow, written once for every client library: :class:`SendFlow` wraps a producer's
send (wrapt's ``(call, client, args, kwargs)``), with an asynchronous twin that runs the same
steps around an ``await`` (tests/unit/test_flow_twins.py holds the two together). The steps:
docs/design.md, "Code layout".
"""

from __future__ import annotations

import logging
from typing import Any, Callable

from opentelemetry.instrumentation.utils import is_instrumentation_enabled

from kafka_autotrace.core.adapter import UNTOUCHED, SendAdapter
from kafka_autotrace.core.calls import Arguments, call_as_made, call_as_made_async
from kafka_autotrace.core.guard import learn_cluster_id, traced_state
from kafka_autotrace.core.sending import Send
from kafka_autotrace.core.telemetry import TelemetrySlot

_logger = logging.getLogger(__name__)


class _SendCall:
    """One send under way: its span and the arguments to call the library with."""

    __slots__ = ("arguments", "by_callback", "pending")

    def __init__(self, pending: Send, arguments: Arguments, by_callback: bool) -> None:
        self.pending = pending
        self.arguments = arguments
        self.by_callback = by_callback


class SendFlow:
    """The wrappers of one producer method."""

    __slots__ = ("_adapter", "_slot")

    def __init__(self, slot: TelemetrySlot, adapter: SendAdapter) -> None:
        self._slot = slot
        self._adapter = adapter

    def _start(
        self, client: object, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> _SendCall | None:
        telemetry = self._slot.telemetry
        if telemetry is None or not is_instrumentation_enabled():
            return None
        if telemetry.passes_send_untouched():
            return None
        adapter = self._adapter
        try:
            state = traced_state(client, adapter, self._slot)
            if state is None:
                return None
            if state.cluster_due is not None:
                learn_cluster_id(client, state, adapter)
            topic, key, value, partition, headers = adapter.shape.message(args, kwargs)
            # Asked first: a send whose context the message cannot carry is a CLIENT span.
            extended = (
                adapter.extendable(client, headers) if telemetry.settings.propagate else UNTOUCHED
            )
            pending = telemetry.start_send(
                state.info, topic, key, value, partition, headers, extended is not UNTOUCHED
            )
        except Exception:
            _logger.debug("kafka-autotrace: starting a send span failed", exc_info=True)
            return None
        if pending is None:
            return None
        if state.transaction is not None and pending.tracked:
            pending.transaction = state.transaction
        send = _SendCall(pending, (args, kwargs), False)
        try:
            if extended is not UNTOUCHED:
                traced = telemetry.headers_for(pending, extended)
                send.arguments = adapter.shape.replace(args, kwargs, "headers", traced)
            if pending.tracked:
                delivering = adapter.delivery_arguments(pending, state, send.arguments)
                if delivering is not None:
                    send.arguments, send.by_callback = delivering, True
        except Exception:
            # The span still ends, when the call as the application made it returns.
            _logger.debug("kafka-autotrace: preparing a send failed", exc_info=True)
            send.arguments, send.by_callback = (args, kwargs), False
        return send

    def _sent(self, send: _SendCall, result: Any, as_made: bool) -> None:
        """Follow the answer to a call that returned ``result``."""
        pending = send.pending
        if not pending.tracked:
            return
        if send.by_callback and not as_made:
            return  # our callback, passed with the call, ends the span
        try:
            if not send.by_callback and self._adapter.follow(pending, result):
                return
        except Exception:
            _logger.debug("kafka-autotrace: cannot follow a send", exc_info=True)
        pending.succeed(None, None)

    def call(
        self,
        call: Callable[..., Any],
        client: object,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        send = self._start(client, args, kwargs)
        if send is None:
            return call(*args, **kwargs)
        try:
            result, as_made = call_as_made(call, (args, kwargs), send.arguments, self._adapter)
        except BaseException as exception:
            self._adapter.failed(send.pending, exception)
            raise
        self._sent(send, result, as_made)
        return result

    async def call_async(
        self,
        call: Callable[..., Any],
        client: object,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        send = self._start(client, args, kwargs)
        if send is None:
            return await call(*args, **kwargs)
        try:
            result, as_made = await call_as_made_async(
                call, (args, kwargs), send.arguments, self._adapter
            )
        except BaseException as exception:
            self._adapter.failed(send.pending, exception)
            raise
        self._sent(send, result, as_made)
        return result
