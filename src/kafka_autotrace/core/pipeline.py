"""Where a message's pipeline began (:class:`Origin`): carried on, hop to hop, in a header of
ours, :data:`ORIGIN_HEADER`, and trusted only when well formed and no later than
:data:`CLOCK_SKEW_MS` after now. Why and how: docs/design.md, "Time to glass".
"""

from __future__ import annotations

import re
import time

from opentelemetry.context import Context, create_key, get_value, set_value
from opentelemetry.trace import INVALID_SPAN, Span, set_span_in_context

ORIGIN_HEADER = "kafka-autotrace-origin"
CLOCK_SKEW_MS = 1000
"""How far into the future an incoming origin may lie: clocks of different hosts disagree."""
_ORIGIN = re.compile(rb"([0-9]{1,16}) ([A-Za-z0-9._-]{1,249})")
_KEY = create_key("kafka_autotrace.pipeline_origin")
_SPAN_KEY = next(iter(set_span_in_context(INVALID_SPAN, Context())))
"""The key the API keeps the current span under (private to it), asked of the API once."""


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


def with_span_and_origin(context: Context, span: Span, origin: Origin) -> Context:
    """``context`` with ``span`` current and ``origin`` carried on: what ``set_span_in_context``
    then :func:`with_origin` make, built as one context rather than two (once per record)."""
    return Context({**context, _SPAN_KEY: span, _KEY: origin})


def origin_in(context: Context | None = None) -> Origin | None:
    """The origin the consumed record being handled in ``context`` (default: the current one)
    carries on, if any."""
    origin = get_value(_KEY, context)
    return origin if isinstance(origin, Origin) else None
