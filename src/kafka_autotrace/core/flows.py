"""The messaging lifecycle, written once for every client library: :class:`SendFlow` and
:class:`ReceiveFlow` wrap a client's calls (wrapt's ``(call, client, args, kwargs)``), each
wrapper with an asynchronous twin that runs the same steps around an ``await``, and a unit test
holding the two together. The steps: docs/design.md, "Code layout".
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any, Callable

from opentelemetry.instrumentation.utils import is_instrumentation_enabled

from kafka_autotrace.core.adapter import UNTOUCHED, ReceiveAdapter, RecordGetter, SendAdapter
from kafka_autotrace.core.batch import TracedRecords
from kafka_autotrace.core.calls import Arguments, call_as_made, call_as_made_async
from kafka_autotrace.core.client import ClientState, keep_state, state_of
from kafka_autotrace.core.failures import Failure
from kafka_autotrace.core.lag import refresh_lags
from kafka_autotrace.core.scope import Suppressed, is_suppressed
from kafka_autotrace.core.sending import Send
from kafka_autotrace.core.telemetry import TelemetrySlot

_logger = logging.getLogger(__name__)


def _traced_state(client: object, adapter: SendAdapter | ReceiveAdapter) -> ClientState | None:
    """The state of a client whose call is to be traced, made on its first call; None for a
    call nested in a traced one, and for a client to leave alone or traced by another. The
    one guard of every flow."""
    if is_suppressed():
        return None
    state = state_of(client)
    if state is None:
        try:
            state = adapter.describe(client)
            if state is None:
                return None
            keep_state(client, state)
        except Exception:
            _logger.debug("kafka-autotrace: reading a client failed", exc_info=True)
            return None
    if state.delegated:
        return None
    return state


class _SendCall:
    """One send under way: its span and the arguments to call the library with."""

    __slots__ = ("arguments", "by_callback", "pending")

    def __init__(self, pending: Send, arguments: Arguments, by_callback: bool) -> None:
        self.pending = pending
        self.arguments = arguments
        self.by_callback = by_callback


def _hand(state: ClientState, getter: RecordGetter[Any], record: Any) -> None:
    """Note the consumer's position after handing ``record`` to the application."""
    offset = getter.offset(record)
    if offset is not None:
        state.lag.handed[getter.topic(record), getter.partition(record) or 0] = offset + 1


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
            state = _traced_state(client, adapter)
            if state is None:
                return None
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


class ReceiveFlow:
    """The wrappers of one consumer class's record-returning methods and ``close``."""

    __slots__ = ("_adapter", "_slot", "_suppress_nested")

    def __init__(
        self, slot: TelemetrySlot, adapter: ReceiveAdapter, suppress_nested: bool = False
    ) -> None:
        """``suppress_nested``: the library's single-record call is built on its batch call,
        whose span would duplicate the record's."""
        self._slot = slot
        self._adapter = adapter
        self._suppress_nested = suppress_nested

    def _begin(self, client: object) -> ClientState | None:
        """The state of a consumer whose call is to be traced, after ending the process span
        of the record it returned before; its lag is reported from its first call on."""
        state = _traced_state(client, self._adapter)
        if state is None:
            return None
        state.scopes.finish()
        if not state.lag.reported:
            telemetry = self._slot.telemetry
            if telemetry is not None:
                telemetry.report_lag(client, state, self._adapter)
        elif not self._adapter.lag_read_anywhere:
            refresh_lags(client, state.lag, self._adapter)
        return state

    def _closing(self, client: object) -> None:
        """End the open process span of a consumer that closes, and stop reporting its lag."""
        state = _traced_state(client, self._adapter)
        if state is None:
            return
        state.scopes.finish()
        telemetry = self._slot.telemetry
        if telemetry is not None:
            telemetry.stop_reporting_lag(client)

    def _failure(self, exception: BaseException) -> Failure:
        """``exception`` named as the client library names its errors."""
        error_type, description = self._adapter.error_type(exception)
        return Failure(error_type, exception, description)

    def _raised(self, state: ClientState, exception: Exception, started: float) -> None:
        """Record a receive call that raised (the end of an iteration is no failure)."""
        telemetry = self._slot.telemetry
        if (
            telemetry is None
            or not is_instrumentation_enabled()
            or isinstance(exception, (StopIteration, StopAsyncIteration))
        ):
            return
        try:
            failure = self._failure(exception)
            telemetry.record_failed_receive(state.info, failure, started)
        except Exception:
            _logger.debug("kafka-autotrace: recording a failed receive failed", exc_info=True)

    def _enter(self, state: ClientState, entry: Any, started: float) -> None:
        """Start the process span of a record the consumer returned and make it current; for
        an error returned in its place, record the failed receive."""
        telemetry = self._slot.telemetry
        if telemetry is None or not is_instrumentation_enabled():
            return
        adapter = self._adapter
        try:
            if entry is None:
                return
            if adapter.is_record(entry):
                if adapter.counts_positions:
                    _hand(state, adapter.getter, entry)
                scope = telemetry.start_process(entry, adapter.getter, state.info)
                if scope is not None:
                    state.scopes.enter(scope)
                return
            exception = adapter.failure(entry)
            if exception is not None:
                failure = self._failure(exception)
                telemetry.record_failed_receive(state.info, failure, started)
        except Exception:
            _logger.debug("kafka-autotrace: starting a process span failed", exc_info=True)

    def _returned_failure(
        self, lists: Sequence[list[Any]], kinds: list[list[bool]]
    ) -> Failure | None:
        """The first error a batch call returned among its entries, if any."""
        for entries, are_records in zip(lists, kinds):
            if False in are_records:
                for entry, is_record in zip(entries, are_records):
                    exception = None if is_record else self._adapter.failure(entry)
                    if exception is not None:
                        return self._failure(exception)
        return None

    def _traced_batch(
        self, state: ClientState, result: Any, started_ns: int, started: float
    ) -> Any:
        """Emit the poll span of a batch call and return its result, with lists that start
        each record's process span as the application iterates them."""
        telemetry = self._slot.telemetry
        if not result or telemetry is None or not is_instrumentation_enabled():
            return result
        try:
            adapter = self._adapter
            lists = adapter.batch_lists(result)
            # Which entries are records, asked once: confluent's asks the C message each time.
            kinds = [[adapter.is_record(entry) for entry in entries] for entries in lists]
            records = [
                entry
                for entries, are_records in zip(lists, kinds)
                for entry, is_record in zip(entries, are_records)
                if is_record
            ]
            failure = self._returned_failure(lists, kinds)
            if not records:
                if failure is not None:
                    telemetry.record_failed_receive(state.info, failure, started)
                return result
            if adapter.counts_positions:
                for record in records:
                    _hand(state, adapter.getter, record)
            incoming = iter(
                telemetry.record_poll(
                    records, adapter.getter, state.info, started_ns, started, failure
                )
            )
            if not telemetry.settings.batch_process_spans:
                return result
            traced = [
                TracedRecords(
                    entries,
                    [next(incoming) if is_record else None for is_record in are_records],
                    telemetry,
                    adapter,
                    state,
                )
                for entries, are_records in zip(lists, kinds)
            ]
            return adapter.with_lists(result, traced)
        except Exception:
            _logger.debug("kafka-autotrace: tracing a batch failed", exc_info=True)
            return result

    def one(
        self,
        call: Callable[..., Any],
        client: object,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        """A call that returns one record (or None, or an error event)."""
        state = self._begin(client)
        if state is None:
            return call(*args, **kwargs)
        started = time.perf_counter()
        try:
            if self._suppress_nested:
                with Suppressed():
                    entry = call(*args, **kwargs)
            else:
                entry = call(*args, **kwargs)
        except Exception as exception:
            self._raised(state, exception, started)
            raise
        self._enter(state, entry, started)
        return entry

    async def one_async(
        self,
        call: Callable[..., Any],
        client: object,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        state = self._begin(client)
        if state is None:
            return await call(*args, **kwargs)
        started = time.perf_counter()
        try:
            if self._suppress_nested:
                with Suppressed():
                    entry = await call(*args, **kwargs)
            else:
                entry = await call(*args, **kwargs)
        except Exception as exception:
            self._raised(state, exception, started)
            raise
        self._enter(state, entry, started)
        return entry

    def batch(
        self,
        call: Callable[..., Any],
        client: object,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        """A call that returns a batch of records."""
        state = self._begin(client)
        started_ns, started = time.time_ns(), time.perf_counter()
        if state is None:
            return call(*args, **kwargs)
        try:
            result = call(*args, **kwargs)
        except Exception as exception:
            self._raised(state, exception, started)
            raise
        return self._traced_batch(state, result, started_ns, started)

    async def batch_async(
        self,
        call: Callable[..., Any],
        client: object,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        state = self._begin(client)
        started_ns, started = time.time_ns(), time.perf_counter()
        if state is None:
            return await call(*args, **kwargs)
        try:
            result = await call(*args, **kwargs)
        except Exception as exception:
            self._raised(state, exception, started)
            raise
        return self._traced_batch(state, result, started_ns, started)

    def close(
        self,
        call: Callable[..., Any],
        client: object,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        """A call after which the consumer hands out no more records (close, leaving ``with``)."""
        self._closing(client)
        return call(*args, **kwargs)

    async def close_async(
        self,
        call: Callable[..., Any],
        client: object,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        self._closing(client)
        return await call(*args, **kwargs)
