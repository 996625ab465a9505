"""Where a message's pipeline began: the first send of the chain of messages it descends from.

A send made while the application handles a consumed record carries that record's origin
forward, in a record header of ours, :data:`ORIGIN_HEADER`, ``<epoch milliseconds> <topic>``
in ASCII. Any other send starts a pipeline and needs no header: its record's timestamp and
topic are the origin, which the consumer reads from the record itself (so the first hop of
every pipeline pays for no header). The consumer records ``kafka_autotrace.pipeline.age``, now
minus the origin, so "time to glass" is measured for every message whether or not it was
sampled. A pipeline begins at its first record's timestamp: the send time, unless the
application set a timestamp of its own or the topic keeps the broker's append time.

Wall-clock time, because record timestamps are rewritten at every hop and monotonic clocks do
not compare across processes; a header of our own, not baggage, so nothing leaks into HTTP
calls. The rule for trusting an origin that comes in: it must read as digits, one space and a
legal topic name (1 to 249 of ``A-Za-z0-9._-``), and lie no later than :data:`CLOCK_SKEW_MS`
after now. Anything else is ignored, and the record counts as the start of its own pipeline
(its timestamp and topic), as does a record from a producer we do not trust (incoming context
``link`` or ``ignore``) or one that carries no origin.
"""

from __future__ import annotations

import re
import time

from opentelemetry.context import Context, create_key, get_value, set_value

ORIGIN_HEADER = "kafka-autotrace-origin"
CLOCK_SKEW_MS = 1000
"""How far into the future an incoming origin may lie: clocks of different hosts disagree."""
_ORIGIN = re.compile(rb"([0-9]{1,16}) ([A-Za-z0-9._-]{1,249})")
_KEY = create_key("kafka_autotrace.pipeline_origin")


class Origin:
    """The start of a pipeline: when (epoch milliseconds) and on which topic."""

    __slots__ = ("_header", "ms", "topic")

    def __init__(self, ms: int, topic: str, header: bytes | None = None) -> None:
        self.ms = ms
        self.topic = topic
        self._header = header

    @property
    def header(self) -> bytes:
        """The header value that carries it on (made when first needed: most records are
        handled without sending anything)."""
        if self._header is None:
            self._header = b"%d %s" % (self.ms, self.topic.encode("ascii", "replace"))
        return self._header

    @classmethod
    def parse(cls, value: object) -> Origin | None:
        """The origin an incoming header value names, None when it is not to be trusted."""
        if type(value) is not bytes:
            return None
        match = _ORIGIN.fullmatch(value)
        if match is None:
            return None
        ms = int(match.group(1))
        if ms > time.time_ns() // 1_000_000 + CLOCK_SKEW_MS:
            return None
        return cls(ms, match.group(2).decode("ascii"), value)


def with_origin(context: Context, origin: Origin) -> Context:
    return set_value(_KEY, origin, context)


def origin_in(context: Context | None = None) -> Origin | None:
    """The origin the consumed record being handled in ``context`` (default: the current one)
    carries on, if any."""
    origin = get_value(_KEY, context)
    return origin if isinstance(origin, Origin) else None
