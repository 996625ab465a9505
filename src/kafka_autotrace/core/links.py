"""The link from a batch's ``poll`` span to one record's producer, carrying what varies per
record of a batch (partition, offset, key), as the conventions put it on links.

Those attributes are read from the record only when asked for: the SDK asks for a span it
records, and never for one its sampler dropped (99 in 100 at a 1% ratio), for which building
them would cost more per record than the rest of its link. The links themselves are made
only when first read (:class:`LazyLinks`), which a span dropped without the SDK never does.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Callable, overload

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


class LazyLinks(Sequence[Link]):
    """The links ``make`` returns, made on first use: a batch's poll span has one per record,
    and a span the sampler drops before the SDK sees it (kafka_autotrace.core.unsampled)
    never reads them."""

    __slots__ = ("_links", "_make")

    def __init__(self, make: Callable[[], list[Link]]) -> None:
        self._make: Callable[[], list[Link]] | None = make
        self._links: list[Link] = []

    def _made(self) -> list[Link]:
        if self._make is not None:
            self._links, self._make = self._make(), None
        return self._links

    @overload
    def __getitem__(self, index: int) -> Link: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[Link]: ...

    def __getitem__(self, index: int | slice) -> Link | Sequence[Link]:
        return self._made()[index]

    def __len__(self) -> int:
        return len(self._made())

    def __iter__(self) -> Iterator[Link]:
        return iter(self._made())
