"""Terminal waterfalls of received traces: what a trace UI would show, as plain text.

Why this exists: the first question about a Kafka pipeline is "did every message make it, and
where did the time go?". Answering it should not need Jaeger. This module turns
:class:`~kafka_autotrace.tools.receiver.ReceivedSpan` objects into one waterfall per trace: each hop
with its service, duration and partition/offset, the time a message waited in Kafka between
its ``send`` and its ``process`` span, a send whose message was never processed flagged
MISSING (unless its transaction aborted: ABORTED, as no committed reader ever gets it), the
records a consumer never got before a process span, and spans with status ERROR flagged as
such.

Rendering is pure (spans in, text out; no clock, no I/O, no protobuf), so the ``view`` command,
the demo and the tests all show exactly the same thing.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TextIO

from opentelemetry.semconv._incubating.attributes.messaging_attributes import (
    MESSAGING_BATCH_MESSAGE_COUNT,
    MESSAGING_DESTINATION_PARTITION_ID,
    MESSAGING_KAFKA_MESSAGE_KEY,
    MESSAGING_KAFKA_OFFSET,
    MESSAGING_SYSTEM,
    MessagingSystemValues,
)
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE

from kafka_autotrace.core.attributes import PIPELINE_AGE_ATTRIBUTE, PIPELINE_ORIGIN
from kafka_autotrace.core.gaps import SKIPPED_COUNT, SKIPPED_FROM
from kafka_autotrace.core.outcome import ABORTED, TRANSACTION_OUTCOME

if TYPE_CHECKING:
    from kafka_autotrace.tools.receiver import ReceivedSpan

__all__ = [
    "ASCII",
    "LEGEND",
    "UNICODE",
    "Glyphs",
    "TraceView",
    "consumed_span_ids",
    "format_duration",
    "glyphs_for",
    "render_traces",
    "summarize",
]

_KAFKA = MessagingSystemValues.KAFKA.value
_NAME_WIDTH = 44
_SERVICE_WIDTH = 20


@dataclass(frozen=True)
class Glyphs:
    """The characters a waterfall is drawn with; :data:`ASCII` for terminals without UTF-8."""

    span: str = "█"
    queue: str = "░"
    edge: str = "│"
    branch: str = "├─ "
    last: str = "└─ "
    down: str = "│  "
    mark: str = "✗"
    arrow: str = " → "
    dot: str = " · "
    ellipsis: str = "…"
    micro: str = "µs"
    at_most: str = "≤"

    def prefix(self, trail: tuple[bool, ...]) -> str:
        """Tree drawing for a span whose ancestors (and itself, last) were last children or
        not, as recorded in ``trail``."""
        if not trail:
            return ""
        above = "".join("   " if last else self.down for last in trail[:-1])
        return above + (self.last if trail[-1] else self.branch)


UNICODE = Glyphs()
ASCII = Glyphs(
    span="#",
    queue=".",
    edge="|",
    branch="|- ",
    last="`- ",
    down="|  ",
    mark="!",
    arrow=" > ",
    dot=" - ",
    ellipsis="~",
    micro="us",
    at_most="<=",
)


def glyphs_for(stream: TextIO) -> Glyphs:
    """Box-drawing characters when ``stream``'s encoding has them, ASCII otherwise."""
    try:
        "".join(vars(UNICODE).values()).encode(stream.encoding or "ascii")
    except (UnicodeEncodeError, LookupError):
        return ASCII
    return UNICODE


LEGEND = (
    "{span} span   {queue} waiting in Kafka ({at_most}: at most)   p0@3 partition 0, offset 3   "
    "since X: pipeline age, from the first send to topic X   MISSING sent, never processed"
)


@dataclass(frozen=True)
class _Queue:
    """How long a message waited in Kafka before this process span; ``at_most`` when only an
    upper bound is known."""

    nanoseconds: int
    at_most: bool


@dataclass(frozen=True)
class _Row:
    span: ReceivedSpan
    trail: tuple[bool, ...]
    queue: _Queue | None
    missing: bool
    orphan: bool


@dataclass(frozen=True)
class TraceView:
    """One trace, analysed: its spans in waterfall order and what is wrong with it.

    ``consumed`` is the set of span ids that some ``process`` (CONSUMER) span continues, as
    computed by :func:`consumed_span_ids`; pass it from every span available, not just this
    trace's, so that consumers in ``link`` mode (another trace) still count.
    """

    trace_id: str
    rows: tuple[_Row, ...]

    @classmethod
    def build(cls, spans: Sequence[ReceivedSpan], consumed: Collection[str]) -> TraceView:
        if not spans:
            raise ValueError("a trace needs at least one span")
        by_id = {span.span_id: span for span in spans}
        children: dict[str, list[ReceivedSpan]] = defaultdict(list)
        roots = []
        for span in sorted(spans, key=_start_order):
            if span.parent_span_id and span.parent_span_id in by_id:
                children[span.parent_span_id].append(span)
            else:
                roots.append(span)
        rows: list[_Row] = []
        visited: set[str] = set()

        def walk(span: ReceivedSpan, trail: tuple[bool, ...], parent: ReceivedSpan | None) -> None:
            if span.span_id in visited:
                return
            visited.add(span.span_id)
            rows.append(
                _Row(
                    span=span,
                    trail=trail,
                    queue=_queue(span, parent),
                    missing=_is_missing(span, consumed),
                    orphan=parent is None and bool(span.parent_span_id),
                )
            )
            kids = children.get(span.span_id, [])
            for index, child in enumerate(kids):
                walk(child, (*trail, index == len(kids) - 1), span)

        for root in roots:
            walk(root, (), None)
        for span in sorted(spans, key=_start_order):  # only spans in a parent loop are left
            walk(span, (), None)
        return cls(spans[0].trace_id, tuple(rows))

    @property
    def start_ns(self) -> int:
        return min(row.span.start_time_unix_nano for row in self.rows)

    @property
    def end_ns(self) -> int:
        return max(row.span.end_time_unix_nano for row in self.rows)

    @property
    def missing(self) -> int:
        return sum(row.missing for row in self.rows)

    @property
    def errors(self) -> int:
        return sum(row.span.status_code == "ERROR" for row in self.rows)

    @property
    def aborted(self) -> int:
        return sum(_is_aborted(row.span) for row in self.rows)

    @property
    def pipeline_age(self) -> tuple[float, str] | None:
        """The oldest pipeline age a process span of this trace measured, with its origin:
        how long the message's pipeline had run, end to end, when its last hop began."""
        ages = [
            (float(age), str(row.span.attributes.get(PIPELINE_ORIGIN, "?")))
            for row in self.rows
            if isinstance(age := row.span.attributes.get(PIPELINE_AGE_ATTRIBUTE), (int, float))
        ]
        return max(ages) if ages else None

    @property
    def services(self) -> list[str]:
        """Services in the order they first appear in the trace."""
        return list(dict.fromkeys(row.span.service_name or "?" for row in self.rows))

    def render(self, glyphs: Glyphs = UNICODE, bar_width: int = 32, note: str = "") -> str:
        """The header line, then one line per span: tree, service, bar, duration, details."""
        start, total = self.start_ns, max(self.end_ns - self.start_ns, 1)
        header = [f"trace {self.trace_id}"]
        key = next(
            (
                row.span.attributes[MESSAGING_KAFKA_MESSAGE_KEY]
                for row in self.rows
                if MESSAGING_KAFKA_MESSAGE_KEY in row.span.attributes
            ),
            None,
        )
        if key is not None:
            header.append(f"key {key}")
        header.append(glyphs.arrow.join(self.services))
        header.append(format_duration(self.end_ns - self.start_ns, glyphs))
        pipeline = self.pipeline_age
        if pipeline is not None:
            age, origin = pipeline
            header.append(f"{_seconds(age, glyphs)} since {origin} (pipeline age)")
        if self.missing:
            header.append(f"{self.missing} MISSING")
        if self.aborted:
            header.append(f"{self.aborted} ABORTED")
        if self.errors:
            header.append(f"{self.errors} ERROR")
        if note:
            header.append(note)
        names = [
            _clip(glyphs.prefix(row.trail) + row.span.name, _NAME_WIDTH, glyphs)
            for row in self.rows
        ]
        services = [
            _clip(row.span.service_name or "?", _SERVICE_WIDTH, glyphs) for row in self.rows
        ]
        name_width, service_width = max(map(len, names)), max(map(len, services))
        lines = [glyphs.dot.join(header)]
        for row, name, service in zip(self.rows, names, services):
            bar = _bar(row, start, total, bar_width, glyphs)
            duration = format_duration(
                row.span.end_time_unix_nano - row.span.start_time_unix_nano, glyphs
            )
            details = "  ".join(_details(row, glyphs))
            line = (
                f"  {name:<{name_width}}  {service:<{service_width}}  "
                f"{glyphs.edge}{bar}{glyphs.edge} {duration:>9}  {details}"
            )
            lines.append(line.rstrip())
        return "\n".join(lines)


def consumed_span_ids(spans: Iterable[ReceivedSpan]) -> set[str]:
    """Ids of the spans a CONSUMER span continues, as its parent or through a link."""
    consumed: set[str] = set()
    for span in spans:
        if span.kind == "CONSUMER":
            if span.parent_span_id:
                consumed.add(span.parent_span_id)
            consumed.update(link.span_id for link in span.links)
    return consumed


def render_traces(
    spans: Sequence[ReceivedSpan], glyphs: Glyphs = UNICODE, bar_width: int = 32
) -> str:
    """Every trace in ``spans`` as a waterfall, oldest first, separated by blank lines."""
    return "\n\n".join(view.render(glyphs, bar_width) for view in _views(spans))


def summarize(spans: Sequence[ReceivedSpan], glyphs: Glyphs = UNICODE) -> str:
    """One line of totals (traces, spans, services, MISSING, ERROR) and the legend."""
    views = _views(spans)
    services = {span.service_name for span in spans}
    missing = sum(view.missing for view in views)
    errors = sum(view.errors for view in views)
    totals = (
        f"{len(views)} traces, {len(spans)} spans from {len(services)} services; "
        f"{missing} message{'s' if missing != 1 else ''} MISSING; "
        f"{errors} span{'s' if errors != 1 else ''} with ERROR"
    )
    return (
        totals + "\n" + LEGEND.format(span=glyphs.span, queue=glyphs.queue, at_most=glyphs.at_most)
    )


def format_duration(nanoseconds: int, glyphs: Glyphs = UNICODE) -> str:
    """Like a trace UI: µs below a millisecond, ms below a second, then seconds."""
    if nanoseconds < 1_000_000:
        return f"{nanoseconds / 1000:.0f} {glyphs.micro}"
    if nanoseconds < 1_000_000_000:
        return f"{nanoseconds / 1_000_000:.1f} ms"
    return f"{nanoseconds / 1_000_000_000:.2f} s"


def _views(spans: Sequence[ReceivedSpan]) -> list[TraceView]:
    by_trace: dict[str, list[ReceivedSpan]] = defaultdict(list)
    for span in spans:
        by_trace[span.trace_id].append(span)
    consumed = consumed_span_ids(spans)
    views = [TraceView.build(trace, consumed) for trace in by_trace.values()]
    return sorted(views, key=lambda view: (view.start_ns, view.trace_id))


def _start_order(span: ReceivedSpan) -> tuple[int, str]:
    return span.start_time_unix_nano, span.name


def _is_kafka(span: ReceivedSpan) -> bool:
    return span.attributes.get(MESSAGING_SYSTEM) == _KAFKA


def _queue(span: ReceivedSpan, parent: ReceivedSpan | None) -> _Queue | None:
    """Time in Kafka: from the broker's ack of the send (its span's end) to processing start.

    The send span ends when the producer *learns* of the ack, which confluent-kafka reports
    only from the application's next ``poll()``/``flush()``; a consumer may well start before
    that. Then the ack time is unknown, and the honest answer is an upper bound: the time since
    the send started.
    """
    if parent is None or span.kind != "CONSUMER" or parent.kind != "PRODUCER":
        return None
    if span.start_time_unix_nano >= parent.end_time_unix_nano:
        return _Queue(span.start_time_unix_nano - parent.end_time_unix_nano, at_most=False)
    return _Queue(max(0, span.start_time_unix_nano - parent.start_time_unix_nano), at_most=True)


def _is_missing(span: ReceivedSpan, consumed: Collection[str]) -> bool:
    """A Kafka send that reached the broker (no ERROR), was not aborted with its transaction,
    and that no process span continues."""
    return (
        span.kind == "PRODUCER"
        and _is_kafka(span)
        and span.status_code != "ERROR"
        and not _is_aborted(span)
        and span.span_id not in consumed
    )


def _is_aborted(span: ReceivedSpan) -> bool:
    """A send whose transaction aborted."""
    return span.attributes.get(TRANSACTION_OUTCOME) == ABORTED


def _bar(row: _Row, start: int, total: int, width: int, glyphs: Glyphs) -> str:
    span = row.span

    def column(nanoseconds: int) -> int:
        return min(width, max(0, (nanoseconds - start) * width // total))

    first = column(span.start_time_unix_nano)
    last = max(first + 1, min(width, math.ceil((span.end_time_unix_nano - start) * width / total)))
    first = min(first, width - 1)
    cells = [" "] * width
    if row.queue:
        for index in range(column(span.start_time_unix_nano - row.queue.nanoseconds), first):
            cells[index] = glyphs.queue
    for index in range(first, last):
        cells[index] = glyphs.span
    return "".join(cells)


def _details(row: _Row, glyphs: Glyphs) -> list[str]:
    attributes = row.span.attributes
    details = []
    partition = attributes.get(MESSAGING_DESTINATION_PARTITION_ID)
    offset = attributes.get(MESSAGING_KAFKA_OFFSET)
    if partition is not None:
        details.append(f"p{partition}@{offset}" if offset is not None else f"p{partition}")
    count = attributes.get(MESSAGING_BATCH_MESSAGE_COUNT)
    if count is not None:
        details.append(f"batch of {count}")
    if row.queue is not None:
        bound = f"{glyphs.at_most} " if row.queue.at_most else ""
        waited = format_duration(row.queue.nanoseconds, glyphs)
        details.append(f"waited {bound}{waited} in Kafka")
    pipeline_age = attributes.get(PIPELINE_AGE_ATTRIBUTE)
    if isinstance(pipeline_age, (int, float)):
        origin = attributes.get(PIPELINE_ORIGIN, "?")
        details.append(f"{_seconds(pipeline_age, glyphs)} since {origin}")
    if row.orphan:
        details.append("(parent span not received)")
    skipped = attributes.get(SKIPPED_COUNT)
    if isinstance(skipped, int):
        first = attributes.get(SKIPPED_FROM)
        details.append(f"{glyphs.mark} {skipped} skipped before it (deleted, from offset {first})")
    if row.missing:
        details.append(f"{glyphs.mark} MISSING: sent, never processed")
    if _is_aborted(row.span):
        details.append(f"{glyphs.mark} ABORTED: its transaction aborted")
    if row.span.status_code == "ERROR":
        reason = attributes.get(ERROR_TYPE) or row.span.status_message
        details.append(f"{glyphs.mark} ERROR" + (f" {reason}" if reason else ""))
    return details


def _seconds(seconds: float, glyphs: Glyphs) -> str:
    return format_duration(round(seconds * 1_000_000_000), glyphs)


def _clip(text: str, width: int, glyphs: Glyphs) -> str:
    return text if len(text) <= width else text[: width - len(glyphs.ellipsis)] + glyphs.ellipsis
