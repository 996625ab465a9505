"""A consumer's group changes as they happen: counted per consumer and added as events to the
span current at that moment, if one is recording, else (for a library that calls its listeners
on a thread or task of its own) to the span current in the application's call in progress.
Called by the rebalance callbacks and listeners the adapters put in place
(:mod:`~kafka_autotrace.core.listeners`), before the application's own; reported by
:mod:`~kafka_autotrace.core.groups`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable

from opentelemetry.context import Context
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


class ConsumerActivity:
    """What one consumer keeps of the application's calls and of its group's changes."""

    __slots__ = (
        "_lock",
        "assignment_changed",
        "caller",
        "handed",
        "in_call",
        "last_call",
        "partitions",
        "rebalances",
    )

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.last_call: float | None = None
        """When (monotonic) the application last called the consumer."""
        self.in_call = False
        """Whether that call has not returned yet (nor raised)."""
        self.caller: Context | None = None
        """The context that call was made in, kept where the library calls its rebalance
        listeners elsewhere (``ReceiveAdapter.rebalances_elsewhere``)."""
        self.handed: dict[tuple[str, int], int] = {}
        """The position the application reached per (topic, partition): the offset after the
        last record handed to it (:func:`~kafka_autotrace.core.gaps.hand_out`). The lag of a
        library whose own cannot be read when metrics are exported reads it, and the
        skipped-records count compares each record with it."""
        self.assignment_changed = False
        """Whether the assignment changed since an adapter last read it."""
        self.rebalances = 0
        self.partitions = {ASSIGNED: 0, REVOKED: 0, LOST: 0}
        """Partitions changed so far, by change."""

    def count(self, change: str, partitions: list[tuple[str, int]]) -> None:
        """Count a change; a partition revoked or lost is no longer reached by anyone here."""
        with self._lock:
            self.partitions[change] += len(partitions)
            if change == ASSIGNED:
                self.rebalances += 1
            else:
                for partition in partitions:
                    self.handed.pop(partition, None)
            self.assignment_changed = True


def note_change(
    group: str | None,
    changes: ConsumerActivity,
    change: str,
    partitions: Iterable[tuple[str, int]],
) -> None:
    """Count a change of the consumer's assignment and add it as an event to the current span,
    else to that of the application's call in progress. Never raises: it runs inside the
    library's rebalance, before the application's callback."""
    try:
        changed = list(partitions)
        changes.count(change, changed)
        named = sorted(f"{topic}/{partition}" for topic, partition in changed)
        span = get_current_span()
        caller = changes.caller
        if not span.is_recording() and changes.in_call and caller is not None:
            span = get_current_span(caller)
        if span.is_recording():
            attributes: dict[str, str | list[str]] = {PARTITIONS: named}
            if group:
                attributes[MESSAGING_CONSUMER_GROUP_NAME] = group
            span.add_event(f"kafka_autotrace.partitions_{change}", attributes)
    except Exception:
        _logger.debug("kafka-autotrace: noting a rebalance failed", exc_info=True)
