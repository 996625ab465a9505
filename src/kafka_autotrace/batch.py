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

from kafka_autotrace.model import ClientInfo, RecordAccessor
from kafka_autotrace.scope import ConsumerScopes
from kafka_autotrace.telemetry import KafkaTelemetry

_logger = logging.getLogger(__name__)


class TracedRecords(list):  # type: ignore[type-arg]
    """A real list, equal to the records a batch call returned, that starts each record's
    process span as the application iterates over it.

    ``incoming`` holds the producer contexts :meth:`KafkaTelemetry.record_poll` already
    extracted, one per record, so headers are not parsed twice. Adapters whose batches mix
    records with other entries (confluent error events) override :meth:`_traced`.
    """

    __slots__ = ("_accessor", "_client", "_incoming", "_reached", "_scopes", "_telemetry")

    def __init__(
        self,
        records: list[Any],
        incoming: Sequence[Context | None],
        telemetry: KafkaTelemetry,
        accessor: RecordAccessor[Any],
        client: ClientInfo,
        scopes: ConsumerScopes,
    ) -> None:
        super().__init__(records)
        self._incoming = incoming
        self._telemetry = telemetry
        self._accessor = accessor
        self._client = client
        self._scopes = scopes
        self._reached = 0
        """How many records, from the start, some iteration has already traced."""

    def _traced(self, record: Any) -> bool:
        """Whether ``record`` is a record to start a process span for."""
        return True

    def __iter__(self) -> Iterator[Any]:
        for index, record in enumerate(list.__iter__(self)):
            self._scopes.finish()
            if index >= self._reached:
                self._reached = index + 1
                self._start(index, record)
            yield record

    def _start(self, index: int, record: Any) -> None:
        try:
            if self._traced(record):
                incoming = self._incoming[index] if index < len(self._incoming) else None
                scope = self._telemetry.start_process(
                    record, self._accessor, self._client, incoming=incoming, counted=True
                )
                if scope is not None:
                    self._scopes.enter(scope)
        except Exception:
            _logger.debug("kafka-autotrace: starting a process span failed", exc_info=True)

    def __reduce_ex__(self, protocol: Any) -> Any:
        """Pickle and copy as the plain list it stands for."""
        return list, (list(list.__iter__(self)),)
