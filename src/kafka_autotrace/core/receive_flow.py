"""The receive flow, written once for every client library: :class:`ReceiveFlow` wraps a
consumer's record-returning calls, ``subscribe``, ``seek`` and ``close`` (wrapt's ``(call,
client, args, kwargs)``), each with an asynchronous twin that runs the same steps around an
``await`` (tests/unit/test_flow_twins.py holds them together). The steps: docs/design.md,
"Code layout".
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any, Callable

from opentelemetry import context as otel_context
from opentelemetry.instrumentation.utils import is_instrumentation_enabled

from kafka_autotrace.core.adapter import ReceiveAdapter
from kafka_autotrace.core.batch import TracedRecords
from kafka_autotrace.core.client import ClientState, state_of
from kafka_autotrace.core.failures import Failure
from kafka_autotrace.core.gaps import hand_out, mark_span
from kafka_autotrace.core.guard import learn_cluster_id, traced_state
from kafka_autotrace.core.rebalance import note_change
from kafka_autotrace.core.scope import Suppressed
from kafka_autotrace.core.telemetry import TelemetrySlot

_logger = logging.getLogger(__name__)

CLOSING_WAIT_S = 2.0
"""How long closing a consumer waits for a request of ours about it to finish."""


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
            learn_cluster_id(client, state, self._adapter)
        if not state.reported:
            telemetry = self._slot.telemetry
            if telemetry is not None:
                telemetry.report_lag(client, state, self._adapter)
        state.activity.last_call = time.monotonic()
        state.activity.in_call = True
        if self._adapter.rebalances_elsewhere:
            state.activity.caller = otel_context.get_current()
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
                hand_out(telemetry, state, adapter, client, entry)
                scope = telemetry.start_process(entry, adapter.getter, state.info)
                if scope is not None:
                    state.scopes.enter(scope)
                if state.gaps.marks:  # for this record, whose span carries them if it has one
                    if scope is not None:
                        mark_span(scope.span, state.gaps, adapter.getter, entry)
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
            state.gaps.marks.clear()  # an earlier batch's, of records never iterated
            for record in records:
                hand_out(telemetry, state, adapter, client, record)
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
            state.gaps.forget(state.activity.handed)

    async def close_async(
        self,
        call: Callable[..., Any],
        client: object,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        self._closing(client)
        return await call(*args, **kwargs)
