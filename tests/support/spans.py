"""Reading finished spans in assertions, the same way in every client's tests."""

from __future__ import annotations

from opentelemetry.sdk.trace import ReadableSpan


def one(spans: list[ReadableSpan]) -> ReadableSpan:
    """The only span of ``spans``; failing with their names shows what was made instead."""
    assert len(spans) == 1, [span.name for span in spans]
    return spans[0]


def parent_id(span: ReadableSpan) -> int | None:
    """The span id of ``span``'s parent, None for a root: one value to compare either way."""
    return span.parent.span_id if span.parent is not None else None
