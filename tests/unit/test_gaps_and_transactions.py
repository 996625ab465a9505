"""The decisions behind the skipped-records count and the transaction outcome of send spans,
on made-up offsets and spans: which gaps lose records and how many, and when held spans end.
The same behaviour on a real broker: tests/test_skipped_records.py, tests/test_transactions.py.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from kafka_autotrace.core.gaps import Found, GapWatch, Partition, Skipped, hand_out
from kafka_autotrace.core.outcome import ABORTED, TRANSACTION_OUTCOME, Transaction
from kafka_autotrace.core.rebalance import REVOKED, ConsumerActivity

ORDERS: Partition = ("orders", 0)


class Offsets:
    """Reads a record made up as its offset in :data:`ORDERS`."""

    def topic(self, record: int) -> str:
        return ORDERS[0]

    def partition(self, record: int) -> int:
        return ORDERS[1]

    def offset(self, record: int) -> int:
        return record


class Consumer:
    """A consumer's log start offset and, after a restart, its group's committed offset."""

    getter = Offsets()

    def __init__(
        self, log_start: int | None, committed: int | None = None, asked_start: int | None = None
    ) -> None:
        self._log_start = log_start
        self.committed = committed
        self.asked_start = asked_start
        """The log start offset the broker answers, for a consumer that does not know it."""
        self.looked_up = 0

    def log_start(self, consumer: Any, partition: Partition) -> int | None:
        return self._log_start

    def look_up(self, consumer: Any, partition: Partition, committed: bool, found: Found) -> None:
        self.looked_up += 1
        found(self.committed if committed else None, self.asked_start)


class Watched:
    """A consumer's state as the receive flow keeps it, and the skipped records it counted."""

    def __init__(self, consumer: Consumer) -> None:
        self.consumer = consumer
        self.counted: list[Skipped] = []
        self.state = SimpleNamespace(activity=ConsumerActivity(), gaps=GapWatch(), info=None)
        self.state.gaps.count = self.counted.append

    def hand_out(self, offsets: list[int]) -> list[Skipped]:
        for offset in offsets:
            hand_out(None, self.state, self.consumer, None, offset)
        return [skipped for skipped in self.counted if skipped.count]


def watched(consumer: Consumer, offsets: list[int]) -> tuple[GapWatch, list[Skipped]]:
    watching = Watched(consumer)
    counted = watching.hand_out(offsets)
    return watching.state.gaps, counted


def test_only_the_part_of_a_gap_below_the_log_start_is_counted() -> None:
    watch, counted = watched(Consumer(log_start=6), [0, 1, 2, 8])
    assert counted == [Skipped("orders", 3, 3)]
    assert watch.marks == {("orders", 0, 8): Skipped("orders", 3, 3)}


def test_a_gap_inside_the_log_loses_nothing() -> None:
    """Compaction, transaction markers, aborted records: all at or above the log start."""
    assert watched(Consumer(log_start=0), [0, 1, 6, 9])[1] == []


def test_a_gap_with_no_known_log_start_is_not_counted() -> None:
    assert watched(Consumer(log_start=None), [0, 5])[1] == []


def test_a_log_start_asked_for_counts_without_marking_a_span() -> None:
    consumer = Consumer(log_start=None, asked_start=4)
    watch, counted = watched(consumer, [0, 1, 5])
    assert (counted, watch.marks) == ([Skipped("orders", 2, 2)], {})


def test_a_restarted_group_of_a_consumer_without_a_log_start_asks_for_both() -> None:
    consumer = Consumer(log_start=None, committed=1, asked_start=3)
    assert watched(consumer, [3])[1] == [Skipped("orders", 1, 2)]


def test_a_seek_starts_the_partition_over_and_keeps_its_position() -> None:
    watching = Watched(Consumer(log_start=20))
    watching.hand_out([0, 1])
    positions = watching.state.activity.handed
    watching.state.gaps.forget(positions)
    assert positions == {ORDERS: 2}, "the lag still counts from there"
    assert watching.hand_out([8]) == []
    assert positions == {ORDERS: 9}
    assert watching.hand_out([9, 12]) == [Skipped("orders", 10, 2)], "only the next record"


def test_a_revoked_partition_is_compared_with_the_committed_offset_again() -> None:
    consumer = Consumer(log_start=6, committed=4)
    watching = Watched(consumer)
    assert watching.hand_out([8, 9]) == [], "past the log start: nothing before was deleted"
    watching.state.activity.count(REVOKED, [ORDERS])
    assert watching.state.activity.handed == {}
    assert watching.hand_out([6]) == [Skipped("orders", 4, 2)]
    assert consumer.looked_up == 1


def test_a_restarted_group_counts_from_its_committed_offset() -> None:
    consumer = Consumer(log_start=5, committed=2)
    watch, counted = watched(consumer, [5, 6])
    assert (counted, consumer.looked_up) == ([Skipped("orders", 2, 3)], 1)
    assert watch.marks == {}, "the first record's span has started when the answer comes"


def test_no_look_up_where_nothing_before_the_first_record_was_deleted() -> None:
    consumer = Consumer(log_start=0, committed=0)
    assert watched(consumer, [4])[1] == []
    assert consumer.looked_up == 0


def test_a_new_group_starting_at_the_log_start_loses_nothing() -> None:
    """librdkafka answers -1001 for a group with no committed offset."""
    assert watched(Consumer(log_start=4, committed=-1001), [4])[1] == []


def test_the_count_starts_at_zero_with_the_first_record() -> None:
    watching = Watched(Consumer(log_start=0))
    watching.hand_out([3])
    assert watching.counted == [Skipped("orders", 3, 0)]


def test_no_look_up_once_the_consumer_closes() -> None:
    watch = GapWatch()
    watch.closing(timeout=1.0)
    looked: list[bool] = []
    watch.look_up(lambda: looked.append(True))
    watch.closing(timeout=1.0)  # a second close does not wait
    assert looked == []


def test_held_send_spans_end_with_the_outcome_at_their_acknowledgement_time() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    span = provider.get_tracer("test").start_span("send orders")
    transaction = Transaction()
    assert transaction.hold(span)
    assert exporter.get_finished_spans() == (), "held until the transaction ends"
    transaction.end(ABORTED)
    [ended] = exporter.get_finished_spans()
    assert ended.attributes is not None and ended.attributes[TRANSACTION_OUTCOME] == ABORTED
    late = provider.get_tracer("test").start_span("send orders")
    assert not transaction.hold(late), "acknowledged after the transaction ended: ends now"
