"""Send spans of a transactional producer say whether their transaction committed or aborted.

The broker acknowledges a record sent in a transaction long before the transaction ends, and
a ``read_committed`` consumer never sees the record of an aborted one. So the acknowledged
send spans of an open transaction are held, not ended, until ``commit_transaction()`` or
``abort_transaction()`` returns; they then end with :data:`TRANSACTION_OUTCOME` set and their
acknowledgement time as end time, so the span still measures the send, and a trace viewer can
tell a message aborted on purpose from one lost. A span whose send fails ends at once, with
its error, as any other; so does one acknowledged after its transaction ended. Spans still
held when a new transaction begins (the previous one's outcome never reached us: its commit
raised) end then, without an outcome.
"""

from __future__ import annotations

import logging
import threading
import time

from opentelemetry.trace import Span

_logger = logging.getLogger(__name__)

TRANSACTION_OUTCOME = "kafka_autotrace.transaction.outcome"
"""On a send span of a transactional producer: :data:`COMMITTED` or :data:`ABORTED`."""
COMMITTED = "committed"
ABORTED = "aborted"


class Transaction:
    """The open transaction of one producer and the acknowledged send spans it holds."""

    __slots__ = ("_held", "_lock", "open")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: list[tuple[Span, int]] = []
        self.open = True

    def hold(self, span: Span) -> bool:
        """Keep ``span``, acknowledged now, until the transaction ends; False once it has."""
        acknowledged_ns = time.time_ns()
        with self._lock:
            if not self.open:
                return False
            self._held.append((span, acknowledged_ns))
            return True

    def end(self, outcome: str | None) -> None:
        """End the held spans, with ``outcome`` (None: not known)."""
        with self._lock:
            self.open = False
            held, self._held = self._held, []
        for span, acknowledged_ns in held:
            try:
                if outcome is not None:
                    span.set_attribute(TRANSACTION_OUTCOME, outcome)
                span.end(end_time=acknowledged_ns)
            except Exception:
                _logger.debug("kafka-autotrace: ending a held send span failed", exc_info=True)
