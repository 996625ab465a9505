"""What an adapter tells the core about a client and its records.

The core never imports a Kafka client. Each adapter describes its client once
(:class:`ClientInfo`) and says how to read its record objects (:class:`RecordAccessor`), the way
the OpenTelemetry Java agent builds one Instrumenter from a per-library attributes getter.
A new client costs an accessor and a few wrappers, not a copy of the telemetry.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

RecordT = TypeVar("RecordT")
RecordT_contra = TypeVar("RecordT_contra", contravariant=True)


class RecordAccessor(Protocol[RecordT_contra]):
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


@dataclass(frozen=True)
class ClientInfo:
    """Per-client attributes, computed once when a producer or consumer is first used."""

    client_id: str | None = None
    server_address: str | None = None
    server_port: int | None = None
    consumer_group: str | None = None


@dataclass(frozen=True)
class ConsumedBatch(Generic[RecordT]):
    """Records that one poll/consume call returned, with the accessor to read them."""

    records: list[RecordT]
    accessor: RecordAccessor[RecordT]


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
