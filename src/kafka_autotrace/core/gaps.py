"""Records a consumer group never got: counted as ``kafka_autotrace.consumer.skipped`` when the
next record of a partition lies beyond the position the group had reached and the records in
between were deleted by the broker (retention, DeleteRecords), so the consumer's position was
reset past them.

Gaps that lose nothing are told apart by the partition's log start offset: a gap inside the
log (at or above it) holds compacted records, transaction markers or aborted records that a
``read_committed`` consumer skips, all of which the log still accounts for; only the part below
it was deleted. The application's own seeks start over from the record they lead to.

The position each partition reached is the one the consumer's lag reads too
(:attr:`ConsumerActivity.handed <kafka_autotrace.core.rebalance.ConsumerActivity.handed>`), kept
by one step per record (:func:`hand_out`): one dictionary read, one write and one comparison;
only a record that does not follow the one before it goes further. The log start offset
is read only when a gap is seen, from what the client already knows (an adapter's
:meth:`GapReader.log_start`), or else asked for outside the application's calls
(:meth:`GapReader.look_up`). The position a restarted group had reached is its committed
offset, which only the broker knows: asked for the same way, and only when the first record of
a partition may follow deleted ones (docs/design.md, "Records a consumer never got").
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from functools import partial
from typing import Any, Callable, Protocol

from opentelemetry.semconv._incubating.attributes.messaging_attributes import (
    MESSAGING_CONSUMER_GROUP_NAME,
    MESSAGING_DESTINATION_NAME,
)
from opentelemetry.trace import Span
from opentelemetry.util.types import AttributeValue

_logger = logging.getLogger(__name__)

CONSUMER_SKIPPED = "kafka_autotrace.consumer.skipped"
"""Not a semantic convention: records a consumer group never got, per topic, group and
:data:`SKIPPED_REASON`."""
SKIPPED_REASON = "kafka_autotrace.skipped.reason"
"""Why the records were skipped: :data:`DELETED`."""
DELETED = "deleted"
"""The broker deleted the records (retention, DeleteRecords) before the group read them, and
the group's position was reset past them."""
SKIPPED_FROM = "kafka_autotrace.skipped.from_offset"
"""On the process span of the first record after a gap: the first offset skipped."""
SKIPPED_COUNT = "kafka_autotrace.skipped.count"
"""On the same span: how many records were skipped, from :data:`SKIPPED_FROM` on."""

Partition = tuple[str, int]
"""``(topic, partition)``."""


@dataclass(frozen=True)
class Skipped:
    """Records of one partition a group never got: ``count`` of them from offset ``first``."""

    topic: str
    first: int
    count: int


Found = Callable[["int | None", "int | None"], None]
"""Called with a partition's committed offset and log start offset, each None if not known."""


class GapReader(Protocol):
    """How one client library's consumers tell what the gap check needs (a receive adapter)."""

    def log_start(self, consumer: Any, partition: Partition) -> int | None:
        """The partition's log start offset as the consumer last learnt it, None when it does
        not know; read without a request to the broker."""
        ...

    def look_up(self, consumer: Any, partition: Partition, committed: bool, found: Found) -> None:
        """Ask the broker, never in the application's call, for what the gap check needs:
        the group's committed offset (when ``committed``) and the log start offset (unless
        known), and call ``found`` with them; or do nothing where that cannot be done."""
        ...


class GapWatch:
    """The records found skipped before those one consumer handed out.

    ``marks`` holds, per ``(topic, partition, offset)``, what the process span of the first
    record after a gap is to carry, until that span starts (a batch's records start theirs as
    the application iterates them).
    """

    __slots__ = ("_closed", "_lock", "count", "marks", "moved")

    def __init__(self) -> None:
        self.moved: set[Partition] = set()
        """Partitions whose next record follows a seek of the application's, not a gap."""
        self.marks: dict[tuple[str, int, int], Skipped] = {}
        self.count: Callable[[Skipped], None] | None = None
        """Counts skipped records; set by the flow that hands the first record out."""
        self._lock = threading.Lock()
        """Held while a look-up for this consumer is under way."""
        self._closed = False

    def seen(
        self,
        consumer: Any,
        reader: GapReader,
        partition: Partition,
        offset: int,
        expected: int | None,
    ) -> None:
        """Count with :attr:`count` the records skipped before a record handed to the
        application that does not follow the one before it (``expected``: the offset after
        that one; None for the partition's first record)."""
        if partition in self.moved:
            self.moved.discard(partition)
        elif expected is None:
            self._first(consumer, reader, partition, offset)
        elif offset > expected:
            log_start = reader.log_start(consumer, partition)
            if log_start is not None:
                self._skipped(partition, expected, min(offset, log_start), offset)
                return

            def found(committed: int | None, log_start: int | None) -> None:
                if log_start is not None:
                    self._skipped(partition, expected, min(offset, log_start), None)

            reader.look_up(consumer, partition, False, found)

    def _skipped(
        self, partition: Partition, reached: int, deleted_to: int, offset: int | None
    ) -> None:
        """Count the records from ``reached`` to ``deleted_to``, and mark the span of the
        record at ``offset`` if it has not started yet (None: it has)."""
        if deleted_to <= reached or self.count is None:
            return
        skipped = Skipped(partition[0], reached, deleted_to - reached)
        if offset is not None:
            self.marks[partition[0], partition[1], offset] = skipped
        self.count(skipped)

    def _first(self, consumer: Any, reader: GapReader, partition: Partition, offset: int) -> None:
        """Compare the first record of a partition with the group's committed offset, where
        records before it may have been deleted. The count starts at zero here, so that a rate
        over it sees the first records skipped."""
        if self.count is not None:
            self.count(Skipped(partition[0], offset, 0))
        known_start = reader.log_start(consumer, partition)
        if offset <= 0 or (known_start is not None and offset > known_start):
            return  # nothing before it was deleted, as far as the consumer knows

        def found(committed: int | None, log_start: int | None) -> None:
            if known_start is not None:
                log_start = known_start
            if committed is not None and committed >= 0 and log_start is not None:
                self._skipped(partition, committed, min(offset, log_start), None)

        reader.look_up(consumer, partition, True, found)

    def forget(self, positions: dict[Partition, int]) -> None:
        """The application moved the consumer's position: the next record of each partition
        reached so far (``positions``) starts it over. The positions stay, for the lag."""
        self.moved.update(positions)

    def look_up(self, look: Callable[[], None]) -> None:
        """Run ``look`` (a request about this consumer) unless the consumer is closing."""
        with self._lock:
            if self._closed:
                return
            look()

    def closing(self, timeout: float) -> None:
        """Wait for a look-up under way (at most ``timeout`` seconds), and allow no more: a
        client closed during a request of ours may crash."""
        if self._closed:
            return
        acquired = self._lock.acquire(timeout=timeout)
        self._closed = True
        if acquired:
            self._lock.release()


def mark_span(span: Span, gaps: GapWatch, getter: Any, record: Any) -> None:
    """Put on ``span`` the records skipped before the record it processes (read with
    ``getter``, a record getter), if any; asked only while ``gaps`` holds marks, which it
    seldom does."""
    key = (getter.topic(record), getter.partition(record) or 0, getter.offset(record))
    skipped = gaps.marks.pop(key, None)
    if skipped is not None and span.is_recording():
        span.set_attributes({SKIPPED_FROM: skipped.first, SKIPPED_COUNT: skipped.count})


def hand_out(telemetry: Any, state: Any, reader: Any, consumer: Any, record: Any) -> None:
    """Note a record ``consumer`` hands out (``state`` its ClientState, ``reader`` its
    receive adapter, whose getter reads ``record``): the position its partition reached, and
    the records skipped before it, counted with ``telemetry``."""
    getter = reader.getter
    offset = getter.offset(record)
    if offset is None:
        return
    partition = (getter.topic(record), getter.partition(record) or 0)
    positions = state.activity.handed
    expected = positions.get(partition)
    positions[partition] = offset + 1
    gaps: GapWatch = state.gaps
    if expected != offset or (gaps.moved and partition in gaps.moved):
        if gaps.count is None:
            gaps.count = partial(telemetry.count_skipped, state.info)
        gaps.seen(consumer, reader, partition, offset, expected)


def skipped_attributes(skipped: Skipped, group: str | None) -> dict[str, AttributeValue]:
    """The attributes of the skipped-records counter."""
    attributes: dict[str, AttributeValue] = {
        MESSAGING_DESTINATION_NAME: skipped.topic,
        SKIPPED_REASON: DELETED,
    }
    if group:
        attributes[MESSAGING_CONSUMER_GROUP_NAME] = group
    return attributes


def run_in_background(name: str, task: Callable[[], None]) -> None:
    """Run ``task`` in a daemon thread of its own, logging its failure."""

    def run() -> None:
        try:
            task()
        except Exception:
            _logger.debug("kafka-autotrace: %s failed", name, exc_info=True)

    threading.Thread(target=run, name=f"kafka-autotrace {name}", daemon=True).start()
