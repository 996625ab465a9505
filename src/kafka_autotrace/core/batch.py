"""Per-record process spans for batch APIs (kafka-python ``poll()``, confluent ``consume()``).

A batch call hands the application a list, and the application handles one record per loop
iteration. :class:`TracedRecords` is that list, unchanged for every other use, whose iterator
starts each record's process span as the loop reaches it, so that what the application does
for a record (producing the next message, calling a service) joins that record's trace.

A record gets one process span however often the list is iterated: the first loop to reach it
starts it. A second span would read, in a trace, as the message being delivered twice.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Any

from opentelemetry.context import Context

from kafka_autotrace.core.adapter import ReceiveAdapter
from kafka_autotrace.core.client import ClientState
from kafka_autotrace.core.gaps import mark_span
from kafka_autotrace.core.telemetry import KafkaTelemetry

_logger = logging.getLogger(__name__)


class TracedRecords(list):  # type: ignore[type-arg]
    """A real list, equal to the records a batch call returned, that starts each record's
    process span as the application iterates over it.

    ``incoming`` holds the producer contexts :meth:`KafkaTelemetry.record_poll` already
    extracted, one per entry (None for entries that are not records, such as confluent error
    events), so headers are not parsed twice.
    """

    __slots__ = ("_adapter", "_incoming", "_reached", "_state", "_telemetry")

    def __init__(
        self,
        entries: list[Any],
        incoming: Sequence[Context | None],
        telemetry: KafkaTelemetry,
        adapter: ReceiveAdapter,
        state: ClientState,
    ) -> None:
        super().__init__(entries)
        self._incoming = incoming
        self._telemetry = telemetry
        self._adapter = adapter
        self._state = state
        self._reached = 0
        """How many records, from the start, some iteration has already traced."""

    def __iter__(self) -> Iterator[Any]:
        for index, record in enumerate(list.__iter__(self)):
            self._state.scopes.finish()
            if index >= self._reached:
                self._reached = index + 1
                self._start(index, record)
            yield record

    def _start(self, index: int, record: Any) -> None:
        try:
            if self._adapter.is_record(record):
                incoming = self._incoming[index] if index < len(self._incoming) else None
                scope = self._telemetry.start_process(
                    record, self._adapter.getter, self._state.info, incoming=incoming, counted=True
                )
                if scope is not None:
                    if self._state.gaps.marks:
                        mark_span(scope.span, self._state.gaps, self._adapter.getter, record)
                    self._state.scopes.enter(scope)
        except Exception:
            _logger.debug("kafka-autotrace: starting a process span failed", exc_info=True)

    def __reduce_ex__(self, protocol: Any) -> Any:
        """Pickle and copy as the plain list it stands for."""
        return list, (list(list.__iter__(self)),)
