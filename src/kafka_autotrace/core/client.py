"""What the core knows of one producer or consumer: its attributes (:class:`ClientInfo`) and
what it keeps per client object (:class:`ClientState`, found with :func:`state_of`)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from kafka_autotrace.core.gaps import GapWatch
from kafka_autotrace.core.outcome import Transaction
from kafka_autotrace.core.rebalance import ConsumerActivity
from kafka_autotrace.core.scope import ConsumerScopes

STATE_ATTR = "_kafka_autotrace"
"""The instance attribute in which a traced client keeps its :class:`ClientState`."""


@dataclass(frozen=True)
class ClientInfo:
    """Per-client attributes, computed once when a producer or consumer is first seen."""

    client_id: str | None = None
    server_address: str | None = None
    server_port: int | None = None
    consumer_group: str | None = None
    cluster_id: str | None = None
    """``messaging.kafka.cluster.id``, once the client has learnt it from the broker's
    metadata (see :class:`ClientState`)."""

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

    __slots__ = (
        "activity",
        "cluster_due",
        "delegated",
        "gaps",
        "info",
        "reported",
        "scopes",
        "transaction",
    )

    def __init__(self, info: ClientInfo) -> None:
        self.info = info
        self.scopes = ConsumerScopes()
        """The process span this consumer holds open."""
        self.delegated = False
        """True for a client that another traced client wraps and traces on behalf of."""
        self.reported = False
        """Whether this consumer's lag and group metrics are reported (from its construction,
        subscription or first call on, whichever kafka-autotrace sees first)."""
        self.activity = ConsumerActivity()
        """This consumer's calls and group changes."""
        self.gaps = GapWatch()
        """Where this consumer's partitions had reached, to find records it never got."""
        self.transaction: Transaction | None = None
        """The open transaction of a transactional producer."""
        self.cluster_due: float | None = 0.0
        """When (monotonic) the client is next asked for its cluster id; None once known, or
        when its library cannot tell. Once known, ``info`` is replaced by one naming it."""


def state_of(client: object) -> ClientState | None:
    """The state a traced client keeps, None when it has none (yet). Asked on every call:
    no default container is built for the rare client without a ``__dict__``."""
    try:
        state: ClientState | None = client.__dict__.get(STATE_ATTR)
    except AttributeError:
        return None
    return state


def keep_state(client: object, state: ClientState) -> None:
    client.__dict__[STATE_ATTR] = state


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
