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
import threading
import time
import weakref
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.semconv._incubating.attributes.messaging_attributes import (
    MESSAGING_CONSUMER_GROUP_NAME,
    MESSAGING_DESTINATION_NAME,
    MESSAGING_DESTINATION_PARTITION_ID,
)

if TYPE_CHECKING:
    from kafka_autotrace.core.adapter import ClientState, ReceiveAdapter

_logger = logging.getLogger(__name__)

REFRESH_S = 1.0
"""How often a lag read in the application's thread is read again."""

CONSUMER_LAG = "kafka_autotrace.consumer.lag"
"""Not a semantic convention (they define no lag metric): messages not yet handed to the
application, per assigned partition."""


class ConsumerLag:
    """The consumers whose lag is reported, weakly held."""

    __slots__ = ("_consumers", "_lock")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._consumers: weakref.WeakKeyDictionary[Any, tuple[ClientState, ReceiveAdapter]] = (
            weakref.WeakKeyDictionary()
        )

    def track(self, consumer: Any, state: ClientState, adapter: ReceiveAdapter) -> None:
        try:
            with self._lock:
                self._consumers[consumer] = (state, adapter)
        except TypeError:  # not weakly referenceable: its lag is not reported
            _logger.debug("kafka-autotrace: cannot report the lag of %r", consumer)

    def forget(self, consumer: Any) -> None:
        with self._lock:
            self._consumers.pop(consumer, None)

    def observe(self, options: CallbackOptions) -> Iterable[Observation]:
        with self._lock:
            consumers = list(self._consumers.items())
        observations = []
        for consumer, (state, adapter) in consumers:
            lags = read_lags(consumer, state, adapter) if adapter.lag_read_anywhere else state.lags
            group = state.info.consumer_group
            for topic, partition, messages in lags:
                attributes: dict[str, str] = {
                    MESSAGING_DESTINATION_NAME: topic,
                    MESSAGING_DESTINATION_PARTITION_ID: str(partition),
                }
                if group:
                    attributes[MESSAGING_CONSUMER_GROUP_NAME] = group
                observations.append(Observation(max(0, messages), attributes))
        return observations


def read_lags(
    consumer: Any, state: ClientState, adapter: ReceiveAdapter
) -> list[tuple[str, int, int]]:
    """``(topic, partition, lag)`` of each assigned partition whose lag can be read now."""
    try:
        partitions = list(adapter.assigned_partitions(consumer))
    except Exception:
        _logger.debug("kafka-autotrace: reading an assignment failed", exc_info=True)
        return []
    lags = []
    for partition in partitions:
        try:
            lag = adapter.partition_lag(consumer, state, partition)
        except Exception:
            _logger.debug("kafka-autotrace: reading a lag failed", exc_info=True)
            continue
        if lag is not None:
            lags.append(lag)
    return lags


def refresh_lags(consumer: Any, state: ClientState, adapter: ReceiveAdapter) -> None:
    """Read the lag in the application's thread, at most every :data:`REFRESH_S`."""
    now = time.monotonic()
    if now >= state.lags_due:
        state.lags_due = now + REFRESH_S
        state.lags = read_lags(consumer, state, adapter)
