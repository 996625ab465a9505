"""The hot-path header injection and extraction give exactly what the generic propagator gives.

``span_headers`` formats ``traceparent`` itself when the global propagator is the W3C default,
and ``extract_context`` indexes only the trace headers; both must be indistinguishable from
running the configured propagator on the whole header set, for every propagator set-up.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry import baggage, context, propagate, trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.context import Context
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.trace import (
    INVALID_SPAN,
    NonRecordingSpan,
    Span,
    SpanContext,
    TraceFlags,
    TraceState,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from kafka_autotrace.core import propagation
from kafka_autotrace.core.propagation import (
    extract_context,
    index_headers,
    span_headers,
    trace_headers,
)

TRACE_ID = 0x0AF7651916CD43DD8448EB211C80319C
SPAN_ID = 0xB7AD6B7169203331
TRACEPARENT = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


class _CompositeSubclass(CompositePropagator):
    """A subclass, which may behave differently, so it must take the generic path."""


PROPAGATORS = {
    "default": lambda: CompositePropagator(
        [TraceContextTextMapPropagator(), W3CBaggagePropagator()]
    ),
    "tracecontext-only": lambda: CompositePropagator([TraceContextTextMapPropagator()]),
    "bare-tracecontext": TraceContextTextMapPropagator,
    "baggage-first": lambda: CompositePropagator(
        [W3CBaggagePropagator(), TraceContextTextMapPropagator()]
    ),
    "composite-subclass": lambda: _CompositeSubclass(
        [TraceContextTextMapPropagator(), W3CBaggagePropagator()]
    ),
    "baggage-only": lambda: CompositePropagator([W3CBaggagePropagator()]),
    "none": lambda: CompositePropagator([]),
}
FAST = {"default", "tracecontext-only", "bare-tracecontext"}


@pytest.fixture(params=sorted(PROPAGATORS))
def propagator(request: pytest.FixtureRequest) -> Iterator[str]:
    previous = propagate.get_global_textmap()
    propagate.set_global_textmap(PROPAGATORS[request.param]())
    try:
        yield request.param
    finally:
        propagate.set_global_textmap(previous)


def _span(flags: int = 1, state: TraceState | None = None, remote: bool = False) -> Span:
    return NonRecordingSpan(
        SpanContext(TRACE_ID, SPAN_ID, remote, TraceFlags(flags), trace_state=state)
    )


SPANS = {
    "sampled": _span(),
    "unsampled": _span(flags=0),
    "tracestate": _span(state=TraceState([("vendor", "v1"), ("other", "a=b")])),
    "remote": _span(remote=True),
    "invalid": INVALID_SPAN,
    "invalid-ids-other-flags": NonRecordingSpan(SpanContext(0, 0, False, TraceFlags(1))),
}


def _generic(span: Span) -> dict[str, bytes]:
    return trace_headers(trace.set_span_in_context(span))


def test_the_fast_path_is_taken_for_the_w3c_defaults(propagator: str) -> None:
    assert (propagation._w3c_propagation().tracecontext is not None) == (propagator in FAST)


@pytest.mark.parametrize("span", sorted(SPANS))
@pytest.mark.parametrize("with_baggage", [False, True])
def test_span_headers_are_byte_identical_to_the_generic_path(
    propagator: str, span: str, with_baggage: bool
) -> None:
    ambient = Context()
    if with_baggage:
        ambient = baggage.set_baggage("tenant", "acme corp", ambient)
        ambient = baggage.set_baggage("n", 1, ambient)
    token = context.attach(ambient)
    try:
        expected = _generic(SPANS[span])
        assert span_headers(SPANS[span]) == expected
    finally:
        context.detach(token)
    # The same for a context given rather than current.
    assert span_headers(SPANS[span], ambient) == expected


def test_span_headers_notice_a_new_global_propagator() -> None:
    previous = propagate.get_global_textmap()
    try:
        propagate.set_global_textmap(TraceContextTextMapPropagator())
        assert span_headers(_span()) == {"traceparent": TRACEPARENT}
        propagate.set_global_textmap(CompositePropagator([]))
        assert span_headers(_span()) == {}
    finally:
        propagate.set_global_textmap(previous)


@given(
    trace_id=st.integers(min_value=1, max_value=2**128 - 1),
    span_id=st.integers(min_value=1, max_value=2**64 - 1),
    flags=st.integers(min_value=0, max_value=255),
)
def test_traceparent_is_formatted_as_the_propagator_does(
    trace_id: int, span_id: int, flags: int
) -> None:
    span = NonRecordingSpan(SpanContext(trace_id, span_id, False, TraceFlags(flags)))
    assert propagation._w3c_propagation().tracecontext is not None
    assert span_headers(span) == _generic(span)


def _seen(extracted: Context) -> tuple[object, ...]:
    """What a consumer can observe of an extracted context."""
    return (
        sorted(extracted),
        trace.get_current_span(extracted).get_span_context(),
        dict(baggage.get_all(extracted)),
    )


HEADERS = {
    "none": None,
    "empty": [],
    "unrelated": [("content-type", b"json")],
    "traceparent": [("traceparent", TRACEPARENT)],
    "traceparent-str": [("traceparent", TRACEPARENT.decode())],
    "dict": {"traceparent": TRACEPARENT, "tracestate": b"vendor=v1"},
    "tracestate": [("traceparent", TRACEPARENT), ("tracestate", b"vendor=v1,other=x")],
    "bad-tracestate": [("traceparent", TRACEPARENT), ("tracestate", b"!!!")],
    "baggage": [("traceparent", TRACEPARENT), ("baggage", b"tenant=acme,n=1")],
    "baggage-alone": [("baggage", b"tenant=acme")],
    "duplicates": [
        ("traceparent", b"00-11111111111111111111111111111111-2222222222222222-01"),
        ("traceparent", TRACEPARENT),
    ],
    "unsampled": [("traceparent", TRACEPARENT[:-2] + b"00")],
    "future-version": [("traceparent", b"01" + TRACEPARENT[2:] + b"-extra")],
    "version-ff": [("traceparent", b"ff" + TRACEPARENT[2:])],
    "zero-ids": [("traceparent", b"00-" + b"0" * 32 + b"-" + b"0" * 16 + b"-01")],
    "not-utf8": [("traceparent", b"\xff\xfe")],
    "none-value": [("traceparent", None)],
    "malformed-items": [("traceparent",), ["traceparent", TRACEPARENT], (1, b"x"), ([1], b"x")],
    "not-headers": 42,
    "trailing-newline": [("traceparent", TRACEPARENT + b"\n")],
    "surrounding-blanks": [("traceparent", b" \t" + TRACEPARENT + b"\t ")],
    "upper-case": [("traceparent", TRACEPARENT.upper())],
    "short-span-id": [("traceparent", TRACEPARENT[:-5] + TRACEPARENT[-3:])],
    "bytearray": [("traceparent", bytearray(TRACEPARENT))],
    "flags-ff": [("traceparent", TRACEPARENT[:-2] + b"ff")],
    "zero-trace-id": [("traceparent", b"00-" + b"0" * 32 + TRACEPARENT[35:])],
    "zero-span-id": [("traceparent", TRACEPARENT[:36] + b"0" * 16 + b"-01")],
}


def _generic_extract(headers: object) -> Context:
    return propagate.extract(index_headers(headers), context=Context(), getter=propagation._GETTER)


@pytest.mark.parametrize("headers", sorted(HEADERS))
def test_extract_context_matches_the_generic_path(propagator: str, headers: str) -> None:
    assert _seen(extract_context(HEADERS[headers])) == _seen(_generic_extract(HEADERS[headers]))


@given(
    st.one_of(
        st.binary(max_size=70),
        st.builds(
            lambda version, ids, flags, tail: (
                b"-".join([version, ids[:32], ids[32:], flags]) + tail
            ),
            st.sampled_from([b"00", b"01", b"ff", b"0g"]),
            st.text("0123456789abcdefA", min_size=48, max_size=48).map(str.encode),
            st.text("0123456789abcdef", min_size=2, max_size=2).map(str.encode),
            st.sampled_from([b"", b"-", b"-x", b" ", b"\n"]),
        ),
    )
)
def test_extract_context_matches_the_generic_path_for_any_traceparent(value: bytes) -> None:
    headers = [("traceparent", value)]
    assert propagation._w3c_propagation().tracecontext is not None
    assert _seen(extract_context(headers)) == _seen(_generic_extract(headers))
