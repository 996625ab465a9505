"""Consumer lag, reported by an observable gauge: per assigned partition, the broker's high
watermark minus the consumer's position (the next offset it will hand to the application).

The gauge's callback runs in the metric reader's thread, beside the application's own use of
its consumers. So it only reads what each consumer already knows (the adapter says how, per
partition, without blocking on the network for long), never breaks a consumer, reads each
partition on its own so that one failure drops only that partition, and forgets a consumer
once it is closed or collected.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any, Protocol

from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.semconv._incubating.attributes.messaging_attributes import (
    MESSAGING_CONSUMER_GROUP_NAME,
    MESSAGING_DESTINATION_NAME,
    MESSAGING_DESTINATION_PARTITION_ID,
)

from kafka_autotrace.core.tracking import TrackedClients

_logger = logging.getLogger(__name__)

REFRESH_S = 1.0
"""How often a lag read in the application's thread is read again."""

CONSUMER_LAG = "kafka_autotrace.consumer.lag"
"""Not a semantic convention (they define no lag metric): messages not yet handed to the
application, per assigned partition."""


Lag = tuple[str, int, int]
"""``(topic, partition, messages)`` of one assigned partition."""


class LagState:
    """What one consumer keeps for its lag to be reported."""

    __slots__ = ("due", "handed", "lags", "reported")

    def __init__(self) -> None:
        self.reported = False
        """Whether this consumer's lag is reported (from its first call on)."""
        self.handed: dict[tuple[str, int], int] = {}
        """The next offset per (topic, partition) after the records this consumer handed to
        the application, for libraries that cannot tell their position safely."""
        self.lags: list[Lag] = []
        """The lag per partition as last read in the application's thread, for consumers that
        cannot be read from another (:attr:`LagReader.lag_read_anywhere`)."""
        self.due = 0.0
        """When (monotonic) :attr:`lags` is next read."""


class LagReader(Protocol):
    """How one client library's consumers tell their lag (a receive adapter)."""

    @property
    def lag_read_anywhere(self) -> bool:
        """Whether the metric reader's thread may read a consumer's lag while the application
        uses it; if not, the lag is read before the application's calls, at most every
        :data:`REFRESH_S`, and that is reported."""
        ...

    def assigned_partitions(self, consumer: Any) -> Iterable[Any]:
        """The partitions assigned to ``consumer``, in the library's own type; read without
        blocking."""
        ...

    def partition_lag(self, consumer: Any, lag: LagState, partition: Any) -> Lag | None:
        """The lag of one assigned partition, None while unknown: from what the consumer knows
        already, or with a short timeout."""
        ...


class ConsumerLag:
    """The consumers whose lag is reported, weakly held."""

    __slots__ = ("_consumers",)

    def __init__(self) -> None:
        self._consumers: TrackedClients[tuple[str | None, LagState, LagReader]] = TrackedClients()

    def track(self, consumer: Any, group: str | None, lag: LagState, reader: LagReader) -> None:
        """Report ``consumer``'s lag, with its consumer ``group`` as an attribute."""
        self._consumers.track(consumer, (group, lag, reader))

    def forget(self, consumer: Any) -> None:
        self._consumers.forget(consumer)

    def observe(self, options: CallbackOptions) -> Iterable[Observation]:
        consumers = self._consumers.items()
        observations = []
        for consumer, (group, lag, reader) in consumers:
            lags = read_lags(consumer, lag, reader) if reader.lag_read_anywhere else lag.lags
            for topic, partition, messages in lags:
                attributes: dict[str, str] = {
                    MESSAGING_DESTINATION_NAME: topic,
                    MESSAGING_DESTINATION_PARTITION_ID: str(partition),
                }
                if group:
                    attributes[MESSAGING_CONSUMER_GROUP_NAME] = group
                observations.append(Observation(max(0, messages), attributes))
        return observations


def read_lags(consumer: Any, lag: LagState, reader: LagReader) -> list[Lag]:
    """The lag of each assigned partition whose lag can be read now."""
    try:
        partitions = list(reader.assigned_partitions(consumer))
    except Exception:
        _logger.debug("kafka-autotrace: reading an assignment failed", exc_info=True)
        return []
    lags: list[Lag] = []
    for partition in partitions:
        try:
            partition_lag = reader.partition_lag(consumer, lag, partition)
        except Exception:
            _logger.debug("kafka-autotrace: reading a lag failed", exc_info=True)
            continue
        if partition_lag is not None:
            lags.append(partition_lag)
    return lags


def refresh_lags(consumer: Any, lag: LagState, reader: LagReader) -> None:
    """Read the lag in the application's thread, at most every :data:`REFRESH_S`."""
    now = time.monotonic()
    if now >= lag.due:
        lag.due = now + REFRESH_S
        lag.lags = read_lags(consumer, lag, reader)
