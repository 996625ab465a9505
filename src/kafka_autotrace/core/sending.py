"""A send span waiting for the broker's answer, and the ways that answer arrives."""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, Literal, Union

from opentelemetry.semconv._incubating.attributes.messaging_attributes import (
    MESSAGING_DESTINATION_PARTITION_ID,
    MESSAGING_KAFKA_OFFSET,
)
from opentelemetry.trace import Span

from kafka_autotrace.core.attributes import SEND, Attributes, Destination
from kafka_autotrace.core.failures import record_failure
from kafka_autotrace.core.inflight import InflightCap
from kafka_autotrace.core.outcome import Transaction
from kafka_autotrace.core.pipeline import Origin

_logger = logging.getLogger(__name__)


class MeasuredSend:
    """A send whose broker's answer is counted in the metrics, with its duration, once, from
    whichever thread answers. On its own it is a send whose span records nothing (the sampler
    dropped it, or the in-flight cap left it without one): ``span`` only carries the context
    on, and nothing but the measurement follows the answer, which is most sends in a sampled
    service."""

    __slots__ = (
        "_destination",
        "_started",
        "_unanswered",
        "origin",
        "span",
        "trace_headers",
        "tracked",
    )

    def __init__(
        self,
        span: Span,
        destination: Destination,
        origin: Origin | None,
        trace_headers: dict[str, bytes],
    ) -> None:
        self.span = span
        self._destination = destination
        self._started = time.perf_counter()
        # One element, popped by the first answer: list.pop is atomic under the GIL and
        # costs a tenth of creating and taking a lock, on every message sent.
        self._unanswered = [True]
        self.origin = origin
        """The pipeline origin the message carries on."""
        # Instance slots, not class attributes: the interpreter reads a slot faster, per message.
        self.tracked: Literal[True] = True
        """Whether something follows the broker's answer (see :class:`PassThroughSend`)."""
        self.trace_headers = trace_headers
        """The propagator's headers for ``span``, empty when the message cannot carry them."""

    def _finish(self) -> bool:
        """Whether this is the first answer."""
        try:
            self._unanswered.pop()
        except IndexError:
            return False
        return True

    def join(self, transaction: Transaction) -> None:
        """The producer's transaction the message is sent in: it holds nothing of a send
        without a span to end."""

    def succeed(self, partition: int | None, offset: int | None) -> None:
        if self._finish():
            self._measure(partition, None)

    def fail(self, error_type: str, exception: BaseException | None, description: str) -> None:
        if self._finish():
            self._measure(None, error_type)

    def _measure(self, partition: int | None, error_type: str | None) -> None:
        try:
            self._destination.sent(partition, self._started, error_type)
        except Exception:
            _logger.debug("measuring a send failed", exc_info=True)


class PendingSend(MeasuredSend):
    """A send span waiting for the broker's answer, counted against the in-flight ``cap``
    until then; ends once, from whichever thread answers."""

    __slots__ = ("_cap", "transaction")

    def __init__(
        self,
        span: Span,
        destination: Destination,
        origin: Origin | None,
        trace_headers: dict[str, bytes],
        cap: InflightCap,
    ) -> None:
        super().__init__(span, destination, origin, trace_headers)
        self._cap = cap
        self.transaction: Transaction | None = None
        """The producer's transaction the message is sent in, which ends the span once it ends."""

    def __del__(self) -> None:
        """Stop counting a send the client dropped unanswered. Only the counter is touched:
        a finalizer may run inside any code, and must not call into the SDK or take locks."""
        if self._unanswered:  # no thread can answer it any more
            self._cap.ended()

    def _finish(self) -> bool:
        """Whether this is the first answer; counts the send out of the cap."""
        if not super()._finish():
            return False
        self._cap.ended()
        return True

    def join(self, transaction: Transaction) -> None:
        self.transaction = transaction

    def succeed(self, partition: int | None, offset: int | None) -> None:
        if not self._finish():
            return
        try:
            if self.span.is_recording():
                # One call: the SDK takes the span's lock and checks its state per call.
                acknowledged: Attributes = {}
                if partition is not None and partition >= 0:
                    acknowledged[MESSAGING_DESTINATION_PARTITION_ID] = str(partition)
                if offset is not None and offset >= 0:
                    acknowledged[MESSAGING_KAFKA_OFFSET] = offset
                if acknowledged:
                    self.span.set_attributes(acknowledged)
            if self.transaction is None or not self.transaction.hold(self.span):
                self.span.end()
            self._destination.sent(partition, self._started, None)
        except Exception:
            _logger.debug("ending a send span failed", exc_info=True)

    def fail(self, error_type: str, exception: BaseException | None, description: str) -> None:
        if not self._finish():
            return
        try:
            if self.span.is_recording():
                record_failure(self.span, SEND, error_type, exception, description)
        except Exception:
            _logger.debug("recording a send failure failed", exc_info=True)
        try:
            self.span.end()
            self._destination.sent(None, self._started, error_type)
        except Exception:
            _logger.debug("ending a failed send span failed", exc_info=True)


class PassThroughSend:
    """A send with nothing to record, with no SDK behind the tracer: ``span`` (the current
    one) only carries the trace context on, as ``trace_headers``, and the broker's answer
    changes nothing. With no SDK, this is the whole cost of a message."""

    __slots__ = ("origin", "span", "trace_headers", "tracked")

    def __init__(self, span: Span, trace_headers: dict[str, bytes], origin: Origin | None) -> None:
        self.span = span
        self.trace_headers = trace_headers
        self.origin = origin
        self.tracked: Literal[False] = False

    def succeed(self, partition: int | None, offset: int | None) -> None:
        """Nothing follows the answer."""

    def fail(self, error_type: str, exception: BaseException | None, description: str) -> None:
        """Nothing follows the answer."""


Send = Union[MeasuredSend, PassThroughSend]
"""A send under way: measured at the broker's answer (with a span to end, for a
:class:`PendingSend`), or passed through."""


Acknowledged = Callable[[Any], "tuple[int | None, int | None]"]
"""Reads (partition, offset) from what a library resolves a send's future with."""
Failed = Callable[[Send, BaseException], None]
"""Ends a send span for an exception, naming the error as its library does."""


def end_when_done(
    pending: MeasuredSend, future: Any, acknowledged: Acknowledged, failed: Failed
) -> None:
    """End ``pending`` when ``future``, an asyncio future of the broker's answer, resolves."""
    future.add_done_callback(lambda done: _resolved(pending, done, acknowledged, failed))


def _resolved(
    pending: MeasuredSend, future: Any, acknowledged: Acknowledged, failed: Failed
) -> None:
    try:
        if future.cancelled():
            from asyncio import CancelledError  # loaded already: the future is asyncio's

            failed(pending, CancelledError("the message was purged before delivery"))
            return
        exception = future.exception()
        if exception is not None:
            failed(pending, exception)
        else:
            pending.succeed(*acknowledged(future.result()))
    except Exception:
        _logger.debug("kafka-autotrace: ending a send span failed", exc_info=True)
