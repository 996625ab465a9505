"""What the metric reader knows of a confluent-kafka consumer, and how that is kept: the
consumer's methods wait for a ``poll()``/``consume()`` running in another thread to return, and
one called in a loop keeps them waiting for good, so the metric reader never calls a consumer
the application may be inside of. Its assignment and the watermarks librdkafka cached from its
last fetches (no request to the broker) are read in the application's thread when a call
returns, once per export that used them (:func:`read_view`), or, while the application is not
calling the consumer, in a thread of their own (:func:`read_idle`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from kafka_autotrace.core.lag import Lag
from kafka_autotrace.core.rebalance import ConsumerActivity

_logger = logging.getLogger(__name__)

_IDLE_READ_WAIT_S = 0.05
"""The longest the metric reader waits to read a consumer the application is not calling."""

Partition = tuple[str, int]


class ConsumerView:
    """A consumer's assignment and cached watermarks, as last read."""

    __slots__ = ("assignment", "idle_read", "wanted", "watermarks")

    def __init__(self) -> None:
        self.assignment: list[Partition] = []
        self.watermarks: dict[Partition, tuple[int, int]] = {}
        """The (low, high) watermarks of each assigned partition."""
        self.wanted = True
        """Whether to read again after the next call: an export used this view, or a
        partition's watermarks were not known yet."""
        self.idle_read: threading.Thread | None = None
        """The last thread started by :func:`read_idle`."""


def read_view(consumer: Any, view: ConsumerView, activity: ConsumerActivity) -> None:
    """Read ``consumer``'s assignment and cached watermarks into ``view`` when wanted or when
    its assignment changed; in the application's thread, its call having returned."""
    if not (view.wanted or activity.assignment_changed):
        return
    activity.assignment_changed = False
    view.watermarks = {
        (partition.topic, partition.partition): consumer.get_watermark_offsets(
            partition, cached=True
        )
        for partition in consumer.assignment()
    }
    view.assignment = list(view.watermarks)
    view.wanted = any(high < 0 for _, high in view.watermarks.values())


def read_idle(consumer: Any, view: ConsumerView, activity: ConsumerActivity) -> None:
    """The same for a consumer the application is not calling now, so that one that stopped
    calling still shows what librdkafka learnt since; in a thread of its own, waited for
    briefly: should the application call the consumer meanwhile, that thread waits for the call
    (and any that follow), never the metric reader. One at a time."""
    if activity.in_call or (view.idle_read is not None and view.idle_read.is_alive()):
        return
    reading = threading.Thread(
        target=_read_now, args=(consumer, view, activity), name="kafka-autotrace-lag", daemon=True
    )
    view.idle_read = reading
    reading.start()
    reading.join(_IDLE_READ_WAIT_S)


def _read_now(consumer: Any, view: ConsumerView, activity: ConsumerActivity) -> None:
    try:
        view.wanted = True
        read_view(consumer, view, activity)
    except Exception:  # closed meanwhile
        _logger.debug("kafka-autotrace: reading an idle consumer failed", exc_info=True)


def lag_of(
    view: ConsumerView,
    activity: ConsumerActivity,
    partition: Partition,
    committed: Callable[[Partition], int],
    starts_at_earliest: bool,
) -> Lag | None:
    """The high watermark minus the position the application reached (the offset after the
    last message handed to it, counted by us); for a partition not reached yet, its
    ``committed`` offset (-1 when unknown), else where ``auto.offset.reset`` puts it. Asks for
    the view to be read again after the next call."""
    view.wanted = True
    low, high = view.watermarks.get(partition, (-1, -1))
    if high < 0:
        return None
    offset = activity.handed.get(partition, -1)
    if offset < 0:
        offset = committed(partition)
    if offset < 0:
        offset = low if starts_at_earliest else high
    if offset < 0:
        return None
    topic, partition_id = partition
    return topic, partition_id, high - offset
