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
from kafka_autotrace.core.sending import MeasuredSend, Send
from kafka_autotrace.core.telemetry import TelemetrySlot

_logger = logging.getLogger(__name__)


_SendCall = tuple[Send, Arguments, bool]
"""One send under way: its send, the arguments to call the library with, and whether our
callback among them follows the broker's answer. A tuple: one is made per message."""


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
            pending.join(state.transaction)
        # Every argument we change, replaced in one copy of the call's arguments.
        changes: dict[str, Any] = {}
        by_callback = False
        try:
            if extended is not UNTOUCHED:
                changes["headers"] = telemetry.headers_for(pending, extended)
            if pending.tracked:
                delivery = adapter.delivery_callback(pending, state, args, kwargs)
                if delivery is not None:
                    name, ours = delivery
                    changes[name] = ours
                    by_callback = True
            return pending, adapter.shape.replace_all(args, kwargs, changes), by_callback
        except Exception:
            # The span still ends, when the call as the application made it returns.
            _logger.debug("kafka-autotrace: preparing a send failed", exc_info=True)
            return pending, (args, kwargs), False

    def _follow(self, pending: MeasuredSend, result: Any, by_callback: bool) -> None:
        """Follow the answer to a call that returned ``result`` without our callback: one
        made without it, or made again as the application made it (the span ends now)."""
        try:
            if not by_callback and self._adapter.follow(pending, result):
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
        pending, arguments, by_callback = send
        try:
            result, as_made = call_as_made(call, (args, kwargs), arguments, self._adapter)
        except BaseException as exception:
            self._adapter.failed(pending, exception)
            raise
        if pending.tracked and (as_made or not by_callback):  # else our callback follows it
            self._follow(pending, result, by_callback)
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
        pending, arguments, by_callback = send
        try:
            result, as_made = await call_as_made_async(
                call, (args, kwargs), arguments, self._adapter
            )
        except BaseException as exception:
            self._adapter.failed(pending, exception)
            raise
        if pending.tracked and (as_made or not by_callback):  # else our callback follows it
            self._follow(pending, result, by_callback)
        return result
