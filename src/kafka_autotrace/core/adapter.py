"""What an adapter tells the core about its client library.

The core never imports a Kafka client. Each adapter describes its clients
(:class:`ClientInfo`, kept in a :class:`ClientState` per client object), says how to read its
records (:class:`RecordGetter`), and subclasses :class:`SendAdapter` and :class:`ReceiveAdapter`
with what differs between libraries: the shape of a send call, how its acknowledgement
arrives, how its errors are named, what a batch looks like. The flows themselves live in
:mod:`kafka_autotrace.core.instrumenter`, written once for every client.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from kafka_autotrace.core.calls import Arguments, CallShape
from kafka_autotrace.core.scope import ConsumerScopes

if TYPE_CHECKING:
    from kafka_autotrace.core.sending import PendingSend

_logger = logging.getLogger(__name__)

RecordT_contra = TypeVar("RecordT_contra", contravariant=True)

STATE_ATTR = "_kafka_autotrace"
"""The instance attribute in which a traced client keeps its :class:`ClientState`."""
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


@dataclass(frozen=True)
class ClientInfo:
    """Per-client attributes, computed once when a producer or consumer is first seen."""

    client_id: str | None = None
    server_address: str | None = None
    server_port: int | None = None
    consumer_group: str | None = None

    @classmethod
    def from_config(cls, client_id: object, bootstrap: object, group: object) -> ClientInfo:
        """The info of a client configured with these values, whatever their types: a
        configuration value that is not a non-empty string is left out, never an error."""
        address, port = parse_bootstrap(bootstrap)
        return cls(
            client_id=client_id if isinstance(client_id, str) and client_id else None,
            server_address=address,
            server_port=port,
            consumer_group=group if isinstance(group, str) and group else None,
        )


class ClientState:
    """What the core keeps per traced producer or consumer object."""

    __slots__ = ("delegated", "handed", "info", "lag_reported", "lags", "lags_due", "scopes")

    def __init__(self, info: ClientInfo) -> None:
        self.info = info
        self.scopes = ConsumerScopes()
        """The process span this consumer holds open."""
        self.delegated = False
        """True for a client that another traced client wraps and traces on behalf of."""
        self.lag_reported = False
        """Whether this consumer's lag is reported (from its first call on)."""
        self.handed: dict[tuple[str, int], int] = {}
        """The next offset per (topic, partition) after the records this consumer handed to
        the application, for adapters whose library cannot tell its position safely
        (:attr:`ReceiveAdapter.counts_positions`)."""
        self.lags: list[tuple[str, int, int]] = []
        """The lag per partition as last read in the application's thread, for adapters whose
        consumers cannot be read from another (:attr:`ReceiveAdapter.lag_read_anywhere`)."""
        self.lags_due = 0.0
        """When (monotonic) :attr:`lags` is next read."""


def state_of(client: object) -> ClientState | None:
    """The state a traced client keeps, None when it has none (yet)."""
    state: ClientState | None = getattr(client, "__dict__", {}).get(STATE_ATTR)
    return state


def keep_state(client: object, state: ClientState) -> None:
    client.__dict__[STATE_ATTR] = state


class _ClientAdapter:
    def describe(self, client: Any) -> ClientState | None:
        """The state of a client seen for the first time; None (the default) leaves it alone,
        for libraries whose clients are described when constructed."""
        return None


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

    def error_type(self, exception: BaseException) -> tuple[str, str]:
        """``error.type`` and the status description for a failed send.

        Runs on the path that re-raises the application's exception, so even an exception
        whose ``__str__`` raises must not replace it.
        """
        try:
            description = str(exception)
        except Exception:
            description = ""
        return type(exception).__qualname__, description

    def failed(self, pending: PendingSend, exception: BaseException) -> None:
        """End ``pending`` for ``exception``, named as this library names its errors."""
        try:
            error_type, description = self.error_type(exception)
            pending.fail(error_type, exception, description)
        except Exception:
            _logger.debug("kafka-autotrace: ending a failed send span failed", exc_info=True)

    def delivery_arguments(
        self, pending: PendingSend, state: ClientState, arguments: Arguments
    ) -> Arguments | None:
        """For a library that reports the broker's answer to a callback passed with the call:
        the arguments with ours in place, or None to follow the result instead."""
        return None

    def follow(self, pending: PendingSend, result: Any) -> bool:
        """End ``pending`` when the broker answers the call that returned ``result``; False
        when that cannot be followed (the span then ends now)."""
        return False


class ReceiveAdapter(_ClientAdapter):
    """How one client library hands records to the application."""

    getter: RecordGetter[Any]
    counts_positions = False
    """Whether the core keeps :attr:`ClientState.handed` for :meth:`partition_lag`."""
    lag_read_anywhere = True
    """Whether the metric reader's thread may read a consumer's lag while the application
    uses it; if not, the core reads it before the application's calls, at most once a
    second, and reports that."""

    def is_record(self, entry: Any) -> bool:
        """Whether something a consumer returned is a record (not None or an error event)."""
        return True

    def batch_lists(self, result: Any) -> Sequence[list[Any]]:
        """The lists of entries a batch call returned, in order; empty when none can be traced."""
        return ()

    def with_lists(self, result: Any, lists: Sequence[list[Any]]) -> Any:
        """``result`` with each of its :meth:`batch_lists` replaced by the matching one."""
        return result

    def assigned_partitions(self, consumer: Any) -> Iterable[Any]:
        """The partitions assigned to ``consumer``, in the library's own type; read without
        blocking (see :attr:`lag_read_anywhere`)."""
        return ()

    def partition_lag(
        self, consumer: Any, state: ClientState, partition: Any
    ) -> tuple[str, int, int] | None:
        """``(topic, partition, lag)`` of one assigned partition, None while unknown: from what
        the consumer knows already, or with a short timeout."""
        return None


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


def parse_bootstrap(servers: object) -> tuple[str | None, int | None]:
    """The first bootstrap server as (host, port).

    Accepts what clients accept: ``"h1:9092,h2:9092"``, a list of such strings, bracketed IPv6
    (``"[::1]:9092"``) and an optional ``PLAINTEXT://`` style scheme. Unparseable input gives
    ``(None, None)`` rather than an error: an attribute is not worth breaking a client over.
    """
    first: str | None = None
    if isinstance(servers, str):
        first = servers.split(",")[0]
    elif isinstance(servers, Iterable):
        for item in servers:
            if isinstance(item, str):
                first = item.split(",")[0]
                break
    if not first:
        return None, None
    first = first.strip()
    if "://" in first:
        first = first.split("://", 1)[1]
    host, port_text = first, ""
    if first.startswith("["):
        end = first.find("]")
        if end == -1:
            return None, None
        host, rest = first[1:end], first[end + 1 :]
        port_text = rest[1:] if rest.startswith(":") else ""
    elif first.count(":") == 1:
        host, port_text = first.split(":")
    port = int(port_text) if port_text.isdigit() else None
    return (host or None), port
