"""A measurement budget for histograms, so that their cost stays bounded at any message rate.

The public metrics API has no way to hand the SDK a pre-aggregated histogram, so each
``record()`` costs about a quarter of a span whatever the rate. Below the budget (measurements
per second, per histogram and attribute set) every measurement is recorded. Above it, a
systematic sample is: every k-th measurement, with k chosen each second from the rate of the
second before, and never more than the budget in one second. Percentiles stay right, since
the sample is spread evenly over the stream; a histogram's count is then that of the sample,
not of the messages; the message counters are always exact.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Mapping
from typing import Callable

from opentelemetry.metrics import Histogram
from opentelemetry.util.types import AttributeValue

from kafka_autotrace.core.memo import remember

_WINDOW_S = 1.0


class _Window:
    """The sampling state of one attribute set, over the current second."""

    __slots__ = ("attributes", "ends", "every", "kept", "seen")

    def __init__(self, attributes: Mapping[str, AttributeValue], ends: float) -> None:
        self.attributes = attributes
        self.ends = ends
        self.every = 1
        self.seen = 0
        self.kept = 0


class BudgetedHistogram:
    """A histogram that records at most ``budget`` measurements a second per attribute set
    (all of them when ``budget`` is 0). Attribute dicts are told apart by identity, as the
    core passes the same cached dicts over and over; they must not change afterwards."""

    __slots__ = ("_budget", "_clock", "_histogram", "_lock", "_windows")

    def __init__(
        self, histogram: Histogram, budget: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._histogram = histogram
        self._budget = budget
        self._clock = clock
        self._lock = threading.Lock()
        self._windows: dict[int, _Window] = {}

    def record(self, amount: float, attributes: Mapping[str, AttributeValue]) -> None:
        if self._budget <= 0:
            self._histogram.record(amount, attributes)
            return
        now = self._clock()
        window = self._windows.get(id(attributes))
        if window is None or window.attributes is not attributes:
            window = self._window(attributes, now)
        elif now >= window.ends:
            # The rate of the second that ended sets the stride for the next one.
            window.every = max(1, math.ceil(window.seen / self._budget))
            window.seen = window.kept = 0
            window.ends = now + _WINDOW_S
        window.seen += 1
        if window.seen % window.every or window.kept >= self._budget:
            return
        window.kept += 1
        self._histogram.record(amount, attributes)

    def _window(self, attributes: Mapping[str, AttributeValue], now: float) -> _Window:
        with self._lock:
            return remember(self._windows, id(attributes), _Window(attributes, now + _WINDOW_S))
