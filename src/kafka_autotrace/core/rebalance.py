"""A consumer's group changes as they happen: counted per consumer and added as events to the
span current at that moment, if one is recording. Called by the rebalance callbacks and
listeners the adapters put in place (:mod:`~kafka_autotrace.core.listeners`), before the
application's own; reported by :mod:`~kafka_autotrace.core.groups`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable

from opentelemetry.semconv._incubating.attributes.messaging_attributes import (
    MESSAGING_CONSUMER_GROUP_NAME,
)
from opentelemetry.trace import get_current_span

_logger = logging.getLogger(__name__)

CHANGE = "kafka_autotrace.rebalance.change"
"""The attribute saying which change: :data:`ASSIGNED`, :data:`REVOKED` or :data:`LOST`."""
PARTITIONS = "kafka_autotrace.partitions"
"""The span event attribute listing the partitions changed, as ``topic/partition``."""

ASSIGNED, REVOKED, LOST = "assigned", "revoked", "lost"


class GroupChanges:
    """What one consumer keeps of its group's changes and its polling."""

    __slots__ = ("_lock", "last_call", "partitions", "rebalances")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.last_call: float | None = None
        """When (monotonic) the application last called the consumer."""
        self.rebalances = 0
        self.partitions = {ASSIGNED: 0, REVOKED: 0, LOST: 0}
        """Partitions changed so far, by change."""

    def count(self, change: str, partitions: int) -> None:
        with self._lock:
            self.partitions[change] += partitions
            if change == ASSIGNED:
                self.rebalances += 1


def note_change(
    group: str | None,
    changes: GroupChanges,
    change: str,
    partitions: Iterable[tuple[str, int]],
) -> None:
    """Count a change of the consumer's assignment and add it to the current span as an event.
    Never raises: it runs inside the library's rebalance, before the application's callback."""
    try:
        named = sorted(f"{topic}/{partition}" for topic, partition in partitions)
        changes.count(change, len(named))
        span = get_current_span()
        if span.is_recording():
            attributes: dict[str, str | list[str]] = {PARTITIONS: named}
            if group:
                attributes[MESSAGING_CONSUMER_GROUP_NAME] = group
            span.add_event(f"kafka_autotrace.partitions_{change}", attributes)
    except Exception:
        _logger.debug("kafka-autotrace: noting a rebalance failed", exc_info=True)
