"""Trace context in Kafka record headers, through the globally configured propagator.

Kafka headers are an ordered list of ``(str, bytes)`` pairs in which keys may repeat and values
may be ``None`` or arbitrary bytes, and clients accept either a list or a dict when producing.
Generic text-map carriers assume none of that, which is how other instrumentations end up
raising inside ``poll()`` on a non-UTF-8 ``traceparent``. The functions here never raise on
what they find in headers and never mutate the caller's container.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Optional

from opentelemetry import baggage, propagate
from opentelemetry import context as otel_context
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.context import Context
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.propagators.textmap import Getter, TextMapPropagator
from opentelemetry.trace import (
    DEFAULT_TRACE_STATE,
    INVALID_SPAN_CONTEXT,
    NonRecordingSpan,
    Span,
    SpanContext,
    TraceFlags,
    set_span_in_context,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from kafka_autotrace.core.pipeline import ORIGIN_HEADER, Origin, with_origin

HEADERS_MIN_API = (0, 11)
"""The oldest Kafka API whose records carry headers (Kafka 0.11, KIP-82, Produce API v3)."""
HeaderValue = Optional[object]
"""A header value as found on a record: normally bytes, but str and None occur."""


class _IndexedHeadersGetter(Getter[Mapping[str, HeaderValue]]):
    """Reads header values that :func:`index_headers` already reduced to one value per key."""

    def get(self, carrier: Mapping[str, HeaderValue], key: str) -> list[str] | None:
        value = carrier.get(key)
        if value is None:
            return None
        text = decode_header_value(value)
        return None if text is None else [text]

    def keys(self, carrier: Mapping[str, HeaderValue]) -> list[str]:
        return list(carrier)


_GETTER = _IndexedHeadersGetter()


def decode_header_value(value: object) -> str | None:
    """The header value as text, or None when it is not valid UTF-8 (or not bytes/str)."""
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return None
    return None


def header_items(headers: object) -> Iterator[tuple[str, HeaderValue]]:
    """The well-formed ``(str key, value)`` pairs of a header list or dict, in order.

    Anything else (a non-iterable, items that are not pairs, non-str keys) is skipped: headers
    come from outside the process and may be anything.
    """
    if headers is None:
        return
    items = headers.items() if isinstance(headers, Mapping) else headers
    try:
        for item in items:  # type: ignore[attr-defined]
            if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str):
                yield item
    except TypeError:
        return


def index_headers(headers: object) -> dict[str, HeaderValue]:
    """One value per header key, the last occurrence winning.

    A producer that appended a fresh ``traceparent`` after a stale one meant the fresh one, so
    the last value is the one to trust.
    """
    return dict(header_items(headers))


class _W3CPropagation:
    """Whether the global propagator is one of the SDK's W3C defaults, which the hot paths
    below handle without the generic text-map machinery.

    The default (``OTEL_PROPAGATORS`` unset or ``tracecontext,baggage``) is a composite of
    exactly a TraceContext and a W3C Baggage propagator; ``tracecontext`` alone is the other
    common choice. Anything else, subclasses included, takes the generic path. The answer is
    kept for the propagator object it was computed for, so replacing the global propagator is
    noticed at the next message.
    """

    __slots__ = ("baggage", "propagator", "tracecontext")

    def __init__(self, propagator: TextMapPropagator) -> None:
        self.propagator = propagator
        self.tracecontext: TraceContextTextMapPropagator | None = None
        self.baggage = False
        parts: object = [propagator]
        if type(propagator) is CompositePropagator:
            parts = getattr(propagator, "_propagators", None)
        if not isinstance(parts, (list, tuple)) or not 1 <= len(parts) <= 2:
            return
        kinds = [type(part) for part in parts]
        if kinds[0] is not TraceContextTextMapPropagator or kinds[1:] not in (
            [],
            [W3CBaggagePropagator],
        ):
            return
        self.tracecontext = parts[0]
        self.baggage = len(parts) == 2


_w3c = _W3CPropagation(propagate.get_global_textmap())


def _w3c_propagation() -> _W3CPropagation:
    global _w3c
    propagator = propagate.get_global_textmap()
    if _w3c.propagator is not propagator:
        _w3c = _W3CPropagation(propagator)
    return _w3c


_READ_FIELDS = frozenset(("traceparent", "tracestate", "baggage", ORIGIN_HEADER))
_CANONICAL_TRACEPARENT = re.compile(rb"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
"""A version-00 ``traceparent`` exactly as every W3C implementation writes it. The TraceContext
propagator accepts each of these (unless an id is all zeros) and reads them as below; anything
else (whitespace, other versions, tracestate) is left to the propagator itself."""
_ZERO_TRACE_ID = b"0" * 32
_ZERO_SPAN_ID = b"0" * 16


def extract_context(headers: object) -> Context:
    """The context the global propagator finds in ``headers``, with the pipeline origin they
    carry (:mod:`~kafka_autotrace.core.pipeline`); empty when there is neither.

    This runs for every record consumed. With the W3C default, only the headers read here are
    indexed, a record without ``traceparent`` or ``baggage`` costs a scan of its headers, and a
    canonical ``traceparent`` alone is read here, at half the cost of the generic path with
    the same result. Everything else goes to the configured propagator.
    """
    w3c = _w3c_propagation()
    if w3c.tracecontext is None:
        indexed = index_headers(headers)
        context = propagate.extract(indexed, context=Context(), getter=_GETTER)
        return _with_origin(context, indexed.get(ORIGIN_HEADER))
    carrier = _read_fields(headers)
    origin = carrier.pop(ORIGIN_HEADER, None)
    return _with_origin(_w3c_context(w3c.tracecontext, w3c.baggage, carrier), origin)


def _read_fields(headers: object) -> dict[str, HeaderValue]:
    """The headers :func:`extract_context` reads, the last of each name winning: those of
    :func:`header_items`, read from a list (what kafka-python and confluent-kafka hand out) by
    one plain loop, at a third of the generator's cost, as it runs for every record."""
    if type(headers) is not list:
        return {key: value for key, value in header_items(headers) if key in _READ_FIELDS}
    carrier: dict[str, HeaderValue] = {}
    for item in headers:
        if isinstance(item, tuple) and len(item) == 2:
            key = item[0]
            if isinstance(key, str) and key in _READ_FIELDS:
                carrier[key] = item[1]
    return carrier


def _with_origin(context: Context, header: object) -> Context:
    if header is None:
        return context
    origin = Origin.parse(header)
    return context if origin is None else with_origin(context, origin)


def _w3c_context(
    tracecontext: TraceContextTextMapPropagator, with_baggage: bool, carrier: dict[str, HeaderValue]
) -> Context:
    if "baggage" in carrier and with_baggage:
        return propagate.extract(carrier, context=Context(), getter=_GETTER)
    traceparent = carrier.get("traceparent")
    if traceparent is None:
        return Context()
    if type(traceparent) is bytes and "tracestate" not in carrier:
        match = _CANONICAL_TRACEPARENT.fullmatch(traceparent)
        if match is not None:
            trace_id, span_id, flags = match.groups()
            if trace_id != _ZERO_TRACE_ID and span_id != _ZERO_SPAN_ID:
                span_context = SpanContext(
                    int(trace_id, 16), int(span_id, 16), True, TraceFlags(int(flags, 16))
                )
                return set_span_in_context(NonRecordingSpan(span_context), Context())
    return tracecontext.extract(carrier, context=Context(), getter=_GETTER)


def nothing_to_propagate() -> bool:
    """Whether the global propagator writes nothing for the current context: true when that
    context is empty (no span, no baggage) and the propagator is the W3C default. Any other
    propagator might write headers of its own even then."""
    return not otel_context.get_current() and _w3c_propagation().tracecontext is not None


def trace_headers(context: Context) -> dict[str, bytes]:
    """The headers the global propagator writes for ``context`` (traceparent, baggage, …)."""
    written: dict[str, str] = {}
    propagate.inject(written, context=context)
    return {key: value.encode("utf-8") for key, value in written.items()}


def span_headers(span: Span, context: Context | None = None) -> dict[str, bytes]:
    """``trace_headers`` of ``context`` (default: the current one) with ``span`` in it, byte
    for byte.

    This runs for every message sent. With the W3C default propagator and no baggage in the
    current context (the common case), ``traceparent`` (and ``tracestate``, when the span
    has one) is formatted straight from the span context, as the TraceContext propagator
    formats it, which costs a fraction of the generic path. Baggage and any other propagator
    go through the generic path.
    """
    w3c = _w3c_propagation()
    if w3c.tracecontext is None or (w3c.baggage and _has_baggage(context)):
        return trace_headers(set_span_in_context(span, context))
    span_context = span.get_span_context()
    if span_context == INVALID_SPAN_CONTEXT:
        return {}
    headers = {
        "traceparent": b"00-%032x-%016x-%02x"
        % (span_context.trace_id, span_context.span_id, span_context.trace_flags)
    }
    trace_state = span_context.trace_state
    if trace_state is not DEFAULT_TRACE_STATE and trace_state:
        headers["tracestate"] = span_context.trace_state.to_header().encode("utf-8")
    return headers


_BAGGAGE_KEY: str | None = getattr(baggage, "_BAGGAGE_KEY", None)
"""Where the API keeps the baggage in a context: read directly, as ``baggage.get_all()``
wraps it in a new mapping on every call."""


def _has_baggage(context: Context | None) -> bool:
    """Whether ``context`` (default: the current one) holds any baggage."""
    if _BAGGAGE_KEY is None:
        return bool(baggage.get_all(context))
    if context is None:
        context = otel_context.get_current()
    return bool(context.get(_BAGGAGE_KEY))


def merge_headers(headers: object, injected: Mapping[str, bytes]) -> object:
    """A new header container holding ``headers`` plus ``injected``.

    Keys written by the propagator replace stale ones; every other header keeps its place.
    A list gives a list of pairs, a dict a dict, None a list. Any other container is returned
    unchanged so that the client library rejects it exactly as it would without us.

    Only a well-formed ``(str, bytes)`` stale header is replaced: one the client might reject
    (a str or None value to kafka-python, an int to any client) stays, so that the call fails,
    or succeeds, exactly as it would without us. In a list ours then follows it, and readers
    take the last value; a dict cannot hold both, so it is returned unchanged.
    """
    if not injected:
        return headers
    if headers is None:
        return list(injected.items())
    if isinstance(headers, list):
        kept = [
            item
            for item in headers
            if not (
                isinstance(item, tuple)
                and len(item) == 2
                and isinstance(item[0], str)
                and item[0] in injected
                and isinstance(item[1], bytes)
            )
        ]
        kept.extend(injected.items())
        return kept
    if isinstance(headers, dict):
        if any(not isinstance(headers.get(key, b""), bytes) for key in injected):
            return headers
        merged = {key: value for key, value in headers.items() if key not in injected}
        merged.update(injected)
        return merged
    return headers
