"""Consumer lag, reported by an observable gauge: per assigned partition, the high watermark
the consumer knows minus the position the application has reached (the next offset it would
be handed).

Everything is read when the metrics are exported, in the metric reader's thread, from what
each consumer already knows (the adapter says how: the client's fetch state, its cached
watermarks, librdkafka's statistics): never a request to the broker, and never inside the
application's calls. So a consumer that idles is never staler than one export, and a
partition it no longer owns disappears with its assignment. Each partition is read on its own,
so that one failure drops only that partition, and a consumer is forgotten once it is closed
or collected.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Protocol

from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.semconv._incubating.attributes.messaging_attributes import (
    MESSAGING_CONSUMER_GROUP_NAME,
    MESSAGING_DESTINATION_NAME,
    MESSAGING_DESTINATION_PARTITION_ID,
)

from kafka_autotrace.core.tracking import TrackedClients

if TYPE_CHECKING:
    from kafka_autotrace.core.client import ClientState

_logger = logging.getLogger(__name__)

CONSUMER_LAG = "kafka_autotrace.consumer.lag"
"""Not a semantic convention (they define no lag metric): messages not yet handed to the
application, per assigned partition."""


Lag = tuple[str, int, int]
"""``(topic, partition, messages)`` of one assigned partition."""


class LagReader(Protocol):
    """How one client library's consumers tell their lag (a receive adapter). Both methods run
    in the metric reader's thread while the application may be inside a call of the same
    consumer: they read local state only."""

    def assigned_partitions(self, consumer: Any) -> Iterable[Any]:
        """The partitions assigned to ``consumer``, in the library's own type."""
        ...

    def partition_lag(self, consumer: Any, partition: Any) -> Lag | None:
        """The lag of one assigned partition, None while unknown."""
        ...


Tracked = tuple[Any, "ClientState", LagReader]
"""A consumer whose lag is reported, its state and its adapter."""


class ConsumerLag:
    """The consumers whose lag (and group membership, :mod:`~kafka_autotrace.core.groups`) is
    reported, weakly held."""

    __slots__ = ("_consumers",)

    def __init__(self) -> None:
        self._consumers: TrackedClients[tuple[ClientState, LagReader]] = TrackedClients()

    def track(self, consumer: Any, state: ClientState, reader: LagReader) -> None:
        """Report ``consumer``'s lag from now on."""
        self._consumers.track(consumer, (state, reader))

    def forget(self, consumer: Any) -> None:
        self._consumers.forget(consumer)

    def tracked(self) -> list[Tracked]:
        return [(consumer, state, reader) for consumer, (state, reader) in self._consumers.items()]

    def observe(self, options: CallbackOptions) -> Iterable[Observation]:
        observations = []
        for consumer, state, reader in self.tracked():
            group = state.info.consumer_group
            for topic, partition, messages in read_lags(consumer, reader):
                attributes: dict[str, str] = {
                    MESSAGING_DESTINATION_NAME: topic,
                    MESSAGING_DESTINATION_PARTITION_ID: str(partition),
                }
                if group:
                    attributes[MESSAGING_CONSUMER_GROUP_NAME] = group
                observations.append(Observation(max(0, messages), attributes))
        return observations


def read_assignment(consumer: Any, reader: LagReader) -> list[Any] | None:
    """The partitions assigned to ``consumer`` now, None when they cannot be read."""
    try:
        return list(reader.assigned_partitions(consumer))
    except Exception:
        _logger.debug("kafka-autotrace: reading an assignment failed", exc_info=True)
        return None


def read_lags(consumer: Any, reader: LagReader) -> list[Lag]:
    """The lag of each assigned partition whose lag is known now."""
    lags: list[Lag] = []
    for partition in read_assignment(consumer, reader) or ():
        try:
            partition_lag = reader.partition_lag(consumer, partition)
        except Exception:
            _logger.debug("kafka-autotrace: reading a lag failed", exc_info=True)
            continue
        if partition_lag is not None:
            lags.append(partition_lag)
    return lags
