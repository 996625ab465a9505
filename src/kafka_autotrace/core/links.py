"""The link from a batch's ``poll`` span to one record's producer, carrying what varies per
record of a batch (partition, offset, key), as the conventions put it on links.

Those attributes are read from the record only when asked for: the SDK asks for a span it
records, and never for one its sampler dropped (99 in 100 at a 1% ratio), for which building
them would cost more per record than the rest of its link.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.trace import Link, SpanContext
from opentelemetry.util.types import Attributes

from kafka_autotrace.core.adapter import RecordGetter
from kafka_autotrace.core.attributes import AttributeBuilder


class RecordLink(Link):
    """A link whose attributes come from its record on first use."""

    def __init__(
        self,
        context: SpanContext,
        record: Any,
        getter: RecordGetter[Any],
        builder: AttributeBuilder,
        with_topic: bool,
    ) -> None:
        super().__init__(context)
        self._source: tuple[Any, RecordGetter[Any], AttributeBuilder, bool] | None = (
            record,
            getter,
            builder,
            with_topic,
        )

    @property
    def attributes(self) -> Attributes:
        source = self._source
        if source is not None:
            self._source = None  # the record is not kept once read
            record, getter, builder, with_topic = source
            self._attributes = builder.link(
                getter.partition(record),
                getter.offset(record),
                getter.key(record),
                getter.topic(record) if with_topic else None,
            )
        return self._attributes
