"""The messaging lifecycle, written once for every client library: :class:`SendFlow` and
:class:`ReceiveFlow` wrap a client's calls (wrapt's ``(call, client, args, kwargs)``), each
wrapper with an asynchronous twin that runs the same steps around an ``await``, and a unit test
holding the two together. The steps: docs/design.md, "Code layout".
"""

from __future__ import annotations

import dataclasses
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
from kafka_autotrace.core.gaps import mark_span, watch
from kafka_autotrace.core.rebalance import note_change
from kafka_autotrace.core.scope import Suppressed, is_suppressed
from kafka_autotrace.core.sending import Send
from kafka_autotrace.core.telemetry import TelemetrySlot

_logger = logging.getLogger(__name__)

CLOSING_WAIT_S = 2.0
"""How long closing a consumer waits for a request of ours about it to finish."""
CLUSTER_ID_RETRY_S = 1.0
"""How often a client that has not learnt its cluster id yet is asked again."""


def traced_state(
    client: object, adapter: SendAdapter | ReceiveAdapter, slot: TelemetrySlot
) -> ClientState | None:
    """The state of a client whose call is to be traced, made on its first call (when its own
    statistics start being reported); None for a call nested in a traced one, and for a client
    to leave alone or traced by another. The one guard of every flow."""
    if is_suppressed():
        return None
    state = state_of(client)
    if state is None:
        try:
            state = adapter.describe(client)
            if state is None:
                return None
            keep_state(client, state)
            telemetry = slot.telemetry
            if adapter.figures is not None and telemetry is not None:
                telemetry.report_client(client, adapter.figures)
        except Exception:
            _logger.debug("kafka-autotrace: reading a client failed", exc_info=True)
            return None
    if state.delegated:
        return None
    return state


def _learn_cluster_id(
    client: object, state: ClientState, adapter: SendAdapter | ReceiveAdapter
) -> None:
    """Name the cluster in the client's info once the client knows it, asking at most every
    :data:`CLUSTER_ID_RETRY_S` until then (confluent-kafka answers an unknown id by raising)."""
    now = time.monotonic()
    if not adapter.tells_cluster_id:
        state.cluster_due = None
    elif now >= (state.cluster_due or 0.0):
        state.cluster_due = now + CLUSTER_ID_RETRY_S
        try:
            cluster_id = adapter.cluster_id(client)
        except Exception:
            _logger.debug("kafka-autotrace: reading a cluster id failed", exc_info=True)
            return
        if isinstance(cluster_id, str) and cluster_id:
            state.info = dataclasses.replace(state.info, cluster_id=cluster_id)
            state.cluster_due = None


class _SendCall:
    """One send under way: its span and the arguments to call the library with."""

    __slots__ = ("arguments", "by_callback", "pending")

    def __init__(self, pending: Send, arguments: Arguments, by_callback: bool) -> None:
        self.pending = pending
        self.arguments = arguments
        self.by_callback = by_callback


def _hand(state: ClientState, getter: RecordGetter[Any], record: Any) -> None:
    """Note the position the application reached with ``record`` (the offset after it)."""
    offset = getter.offset(record)
    if offset is not None:
        state.activity.handed[getter.topic(record), getter.partition(record) or 0] = offset + 1


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
                _learn_cluster_id(client, state, adapter)
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
        state = traced_state(client, self._adapter, self._slot)
        if state is None:
            return None
        state.scopes.finish()
        if state.cluster_due is not None:
            _learn_cluster_id(client, state, self._adapter)
        if not state.reported:
            telemetry = self._slot.telemetry
            if telemetry is not None:
                telemetry.report_lag(client, state, self._adapter)
        state.activity.last_call = time.monotonic()
        state.activity.in_call = True
        return state

    def _returned(self, client: object, state: ClientState) -> None:
        """After a call of a traced consumer returned: what the adapter reads only then."""
        state.activity.in_call = False
        try:
            self._adapter.after_call(client, state)
        except Exception:
            _logger.debug(
                "kafka-autotrace: reading a consumer after its call failed", exc_info=True
            )

    def _noting(self, client: object) -> Callable[[str, Any], None] | None:
        """What notes the group changes of ``client``, whose metrics are reported from then
        on; None for a consumer not traced."""
        state = traced_state(client, self._adapter, self._slot)
        telemetry = self._slot.telemetry
        if state is None or telemetry is None:
            return None
        if not state.reported:
            telemetry.report_lag(client, state, self._adapter)

        def note(change: str, partitions: Any) -> None:
            pairs = [(partition.topic, partition.partition) for partition in partitions]
            note_change(state.info.consumer_group, state.activity, change, pairs)

        return note

    def subscribe(
        self,
        call: Callable[..., Any],
        client: object,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        """``subscribe()``, with the application's rebalance callbacks or listener wrapped to
        note each change first (ours alone when it passed none)."""
        arguments = None
        try:
            note = self._noting(client)
            if note is not None:
                arguments = self._adapter.noting_subscription((args, kwargs), note)
        except Exception:
            _logger.debug("kafka-autotrace: wrapping rebalance callbacks failed", exc_info=True)
        if arguments is None:
            return call(*args, **kwargs)
        return call(*arguments[0], **arguments[1])

    def construct(
        self,
        call: Callable[..., Any],
        client: object,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        """A consumer's ``__init__``: one subscribed by its constructor gets a noting listener
        in place of the none it has."""
        result = call(*args, **kwargs)
        try:
            note = self._noting(client)
            if note is not None:
                self._adapter.note_constructed_subscription(client, note)
        except Exception:
            _logger.debug("kafka-autotrace: adding a rebalance listener failed", exc_info=True)
        return result

    def _closing(self, client: object) -> None:
        """End the open process span of a consumer that closes, and stop reporting its lag."""
        state = traced_state(client, self._adapter, self._slot)
        if state is None:
            return
        state.scopes.finish()
        state.gaps.closing(CLOSING_WAIT_S)
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

    def _enter(self, client: object, state: ClientState, entry: Any, started: float) -> None:
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
                watch(telemetry, state, adapter, client, entry)
                scope = telemetry.start_process(entry, adapter.getter, state.info)
                if scope is not None:
                    mark_span(scope.span, state.gaps, adapter.getter, entry)
                    state.scopes.enter(scope)
                if state.gaps.marks:  # this record's, left where it has no span
                    state.gaps.marks.clear()
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
        self, client: object, state: ClientState, result: Any, started_ns: int, started: float
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
            state.gaps.marks.clear()  # an earlier batch's, of records never iterated
            for record in records:
                watch(telemetry, state, adapter, client, record)
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
        finally:
            self._returned(client, state)
        self._enter(client, state, entry, started)
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
        finally:
            self._returned(client, state)
        self._enter(client, state, entry, started)
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
        finally:
            self._returned(client, state)
        return self._traced_batch(client, state, result, started_ns, started)

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
        finally:
            self._returned(client, state)
        return self._traced_batch(client, state, result, started_ns, started)

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

    def seek(
        self,
        call: Callable[..., Any],
        client: object,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        """A call that moves the consumer's position: the records it skips are not lost."""
        self._moved(client)
        return call(*args, **kwargs)

    async def seek_async(
        self,
        call: Callable[..., Any],
        client: object,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        self._moved(client)
        return await call(*args, **kwargs)

    def _moved(self, client: object) -> None:
        state = state_of(client)
        if state is not None:
            state.gaps.forget()

    async def close_async(
        self,
        call: Callable[..., Any],
        client: object,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        self._closing(client)
        return await call(*args, **kwargs)
