"""The cap on send spans waiting for the broker's answer.

A send span lives from ``send()``/``produce()`` to the broker's answer, so an outage, a broker
that stops answering or a producer that is never polled could pile up spans. At most
``Settings.max_inflight_spans`` wait at once (shared by all producers of one instrumentor);
a span the sampler dropped stops counting as soon as it starts, as it holds nothing to end
or export.
Past that a send gets no span of its own, only the current context to propagate and its
count in the metrics; one warning says so, and spans resume once acknowledgements bring the
count under half the cap.
"""

from __future__ import annotations

import itertools
import logging

_logger = logging.getLogger(__name__)


class InflightCap:
    """Admits send spans while fewer than ``cap`` wait for an answer."""

    __slots__ = ("_cap", "_ended", "_ended_sends", "_over", "_started_sends")

    def __init__(self, cap: int) -> None:
        self._cap = cap
        # Waiting = started - ended. Two counters, because next() on itertools.count is atomic
        # under the GIL where ``+= 1`` is not, and a lock could not be taken from a finalizer
        # (see PendingSend.__del__). ``_ended`` may briefly lag (two threads storing out of
        # order), which only makes the cap err on the safe side.
        self._started_sends = itertools.count(1)
        self._ended_sends = itertools.count(1)
        self._ended = 0
        self._over = False

    def admit(self) -> bool:
        """Count a new send span in, unless the cap is reached; warn once per episode."""
        cap = self._cap
        waiting = next(self._started_sends) - self._ended
        if waiting <= cap:
            if self._over and waiting <= cap // 2:
                self._over = False
                _logger.info("kafka-autotrace: send spans resumed (%d in flight)", waiting)
            return True
        self.ended()
        if not self._over:
            self._over = True
            _logger.warning(
                "kafka-autotrace: %d send spans are waiting for the broker's acknowledgement, "
                "the limit (KAFKA_AUTOTRACE_MAX_INFLIGHT_SPANS); further sends get no span "
                "until acknowledgements come in, but still carry the current trace context",
                cap,
            )
        return False

    def ended(self) -> None:
        """Count one admitted send span out. Safe from any thread and from a finalizer."""
        self._ended = next(self._ended_sends)
