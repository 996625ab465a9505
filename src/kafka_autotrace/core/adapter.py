"""What an adapter tells the core about its client library: how to read its records
(:class:`RecordGetter`) and, in subclasses of :class:`SendAdapter` and :class:`ReceiveAdapter`,
what differs between libraries. The flows that use them are in
:mod:`~kafka_autotrace.core.send_flow` and :mod:`~kafka_autotrace.core.receive_flow`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any, Callable, Protocol, TypeVar

from kafka_autotrace.core.calls import Arguments, CallShape
from kafka_autotrace.core.client import ClientState
from kafka_autotrace.core.client_metrics import FigureReader
from kafka_autotrace.core.gaps import Found, Partition
from kafka_autotrace.core.lag import Lag
from kafka_autotrace.core.listeners import Note
from kafka_autotrace.core.sending import MeasuredSend, Send

_logger = logging.getLogger(__name__)

RecordT_contra = TypeVar("RecordT_contra", contravariant=True)

UNTOUCHED = object()
"""What :meth:`SendAdapter.extendable` returns for headers that must stay as the caller
passed them."""


class RecordGetter(Protocol[RecordT_contra]):
    """Reads the fields of one client library's consumed-record type."""

    def topic(self, record: RecordT_contra) -> str: ...

    def partition(self, record: RecordT_contra) -> int | None: ...

    def offset(self, record: RecordT_contra) -> int | None: ...

    def key(self, record: RecordT_contra) -> object: ...

    def value(self, record: RecordT_contra) -> object: ...

    def headers(self, record: RecordT_contra) -> object: ...

    def timestamp_ms(self, record: RecordT_contra) -> int | None:
        """The record's timestamp in epoch milliseconds, None when the broker gave none."""
        ...


class AttributeRecordGetter:
    """Reads records whose fields are attributes with Kafka's names (kafka-python's and
    aiokafka's ``ConsumerRecord``)."""

    def topic(self, record: Any) -> str:
        return record.topic  # type: ignore[no-any-return]

    def partition(self, record: Any) -> int | None:
        return record.partition  # type: ignore[no-any-return]

    def offset(self, record: Any) -> int | None:
        return record.offset  # type: ignore[no-any-return]

    def key(self, record: Any) -> object:
        return record.key

    def value(self, record: Any) -> object:
        return record.value

    def headers(self, record: Any) -> object:
        return record.headers

    def timestamp_ms(self, record: Any) -> int | None:
        timestamp = record.timestamp
        return timestamp if isinstance(timestamp, int) and timestamp >= 0 else None


class _ClientAdapter:
    figures: FigureReader | None = None
    """How the clients described here tell their own statistics (reported from their first
    traced call on), None when they are reported otherwise or not at all."""

    tells_cluster_id = False
    """Whether :meth:`cluster_id` can answer for this library's clients."""

    def describe(self, client: Any) -> ClientState | None:
        """The state of a client seen for the first time; None (the default) leaves it alone,
        for libraries whose clients are described when constructed."""
        return None

    def cluster_id(self, client: Any) -> str | None:
        """The id of the cluster ``client`` talks to, from the broker metadata it already holds
        (never a call that waits for the broker); None while it has none."""
        return None

    def error_type(self, exception: BaseException) -> tuple[str, str]:
        """``error.type`` and the status description for a failed send or receive.

        Runs on the path that re-raises the application's exception, so even an exception
        whose ``__str__`` raises must not replace it.
        """
        try:
            description = str(exception)
        except Exception:
            description = ""
        return type(exception).__qualname__, description


class SendAdapter(_ClientAdapter):
    """How one producer method of a client library is called and answered.

    ``shape`` names the method's parameters; the core reads ``topic``, ``key``, ``value``,
    ``partition`` and ``headers`` through it and replaces ``headers``. Every method has a
    default, so adapters override only what their library does differently.
    """

    shape: CallShape

    def extendable(self, client: Any, headers: object) -> object:
        """The caller's ``headers`` as the container ours are added to (a copy: the caller's
        is never changed), or :data:`UNTOUCHED` where ``client`` would not accept what we add,
        so that adding it never turns a valid call into a failing one."""
        return headers

    def rejected(self, error: Exception) -> bool:
        """Whether ``error`` was raised while the library checked the call's arguments, before
        anything was queued: the call is then made again exactly as the application made it."""
        return False

    def rejected_result(self, result: Any) -> bool:
        """The same for a library that reports a rejected call through its result."""
        return False

    def failed(self, pending: Send, exception: BaseException) -> None:
        """End ``pending`` for ``exception``, named as this library names its errors."""
        try:
            error_type, description = self.error_type(exception)
            pending.fail(error_type, exception, description)
        except Exception:
            _logger.debug("kafka-autotrace: ending a failed send span failed", exc_info=True)

    def delivery_callback(
        self,
        pending: MeasuredSend,
        state: ClientState,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> tuple[str, Callable[..., Any]] | None:
        """For a library that reports the broker's answer to a callback passed with the call:
        the parameter to pass ours under, and ours; None to follow the result instead."""
        return None

    def follow(self, pending: MeasuredSend, result: Any) -> bool:
        """End ``pending`` when the broker answers the call that returned ``result``; False
        when that cannot be followed (the span then ends now)."""
        return False


class ReceiveAdapter(_ClientAdapter):
    """How one client library hands records to the application, tells a consumer's lag (a
    :class:`~kafka_autotrace.core.lag.LagReader`) and its group changes."""

    getter: RecordGetter[Any]

    rebalances_elsewhere = False
    """Whether the library calls rebalance callbacks or listeners on a thread or task of its
    own while the application waits in its call for records, so that the context of that call
    is kept for their span events (:func:`~kafka_autotrace.core.rebalance.note_change`)."""

    def is_record(self, entry: Any) -> bool:
        """Whether something a consumer returned is a record (not None or an error event)."""
        return True

    def failure(self, entry: Any) -> BaseException | None:
        """An error a consumer returned in place of a record (not :meth:`is_record`), as the
        exception that names it; None for entries that tell of no failure."""
        return None

    def batch_lists(self, result: Any) -> Sequence[list[Any]]:
        """The lists of entries a batch call returned, in order; empty when none can be traced."""
        return ()

    def with_lists(self, result: Any, lists: Sequence[list[Any]]) -> Any:
        """``result`` with each of its :meth:`batch_lists` replaced by the matching one."""
        return result

    def assigned_partitions(self, consumer: Any) -> Iterable[Any]:
        return ()

    def partition_lag(self, consumer: Any, partition: Any) -> Lag | None:
        return None

    def after_call(self, consumer: Any, state: ClientState) -> None:
        """Runs in the application's thread when a traced call of ``consumer`` returned: for
        a library whose consumers cannot be read from another thread while the application
        is inside one of their calls. Must not ask the broker, and must cost next to nothing
        on most calls."""

    def noting_subscription(self, arguments: Arguments, note: Note) -> Arguments | None:
        """The arguments of a ``subscribe()`` call with rebalance callbacks or a listener that
        call ``note`` and then the application's; None to leave the call as it is."""
        return None

    def note_constructed_subscription(self, consumer: Any, note: Note) -> None:
        """Give a consumer its constructor subscribed, without a listener, one that calls
        ``note``."""

    def log_start(self, consumer: Any, partition: Partition) -> int | None:
        """See :class:`~kafka_autotrace.core.gaps.GapReader`, which this class implements;
        None by default: the consumer does not know, and no gap is counted."""
        return None

    def look_up(self, consumer: Any, partition: Partition, committed: bool, found: Found) -> None:
        """By default nothing is asked: a gap whose log start offset is unknown is not
        counted."""


class MappingBatches:
    """Mixed in ahead of :class:`ReceiveAdapter` for a batch call that returns
    ``{partition: [records]}`` (kafka-python ``poll()``, aiokafka ``getmany()``); its lists are
    replaced in place."""

    def batch_lists(self, result: Any) -> Sequence[list[Any]]:
        return list(result.values())

    def with_lists(self, result: Any, lists: Sequence[list[Any]]) -> Any:
        for partition, records in zip(list(result), lists):
            result[partition] = records
        return result
