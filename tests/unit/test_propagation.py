"""Header propagation: tolerant reading, non-mutating writing, stale keys replaced."""

from __future__ import annotations

import pytest
from opentelemetry import baggage, trace
from opentelemetry.context import Context
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from kafka_autotrace.core.propagation import (
    decode_header_value,
    extract_context,
    header_items,
    index_headers,
    merge_headers,
    trace_headers,
)

TRACE_ID = 0x0AF7651916CD43DD8448EB211C80319C
SPAN_ID = 0xB7AD6B7169203331
TRACEPARENT = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def _context() -> Context:
    span_context = SpanContext(TRACE_ID, SPAN_ID, is_remote=False, trace_flags=TraceFlags(1))
    return trace.set_span_in_context(NonRecordingSpan(span_context))


def _extracted_ids(headers: object) -> tuple[int, int]:
    span_context = trace.get_current_span(extract_context(headers)).get_span_context()
    return span_context.trace_id, span_context.span_id


def test_trace_headers_writes_w3c_traceparent() -> None:
    assert trace_headers(_context())["traceparent"] == TRACEPARENT


def test_trace_headers_include_baggage() -> None:
    context = baggage.set_baggage("tenant", "acme", _context())
    assert trace_headers(context)["baggage"] == b"tenant=acme"


@pytest.mark.parametrize(
    "headers",
    [
        [("traceparent", TRACEPARENT)],
        [("traceparent", TRACEPARENT.decode())],
        {"traceparent": TRACEPARENT},
        (("traceparent", TRACEPARENT),),
    ],
)
def test_extract_reads_bytes_str_dict_and_tuple(headers: object) -> None:
    assert _extracted_ids(headers) == (TRACE_ID, SPAN_ID)


@pytest.mark.parametrize(
    "headers",
    [
        None,
        [],
        [("traceparent", b"\xff\xfe\x00")],
        [("traceparent", None)],
        [("traceparent", b"not-a-traceparent")],
        [("traceparent", b"00-" + b"f" * 100_000)],
        [(b"traceparent", TRACEPARENT)],
        [("traceparent",)],
        ["garbage", 42, None],
        42,
        "traceparent",
    ],
)
def test_extract_tolerates_hostile_headers(headers: object) -> None:
    assert _extracted_ids(headers) == (0, 0)


def test_extract_prefers_the_last_duplicate() -> None:
    stale = b"00-11111111111111111111111111111111-2222222222222222-01"
    assert _extracted_ids([("traceparent", stale), ("traceparent", TRACEPARENT)]) == (
        TRACE_ID,
        SPAN_ID,
    )


def test_header_items_skips_malformed_items() -> None:
    headers = [("a", b"1"), ("b",), (1, b"x"), "c", ("d", None)]
    assert list(header_items(headers)) == [("a", b"1"), ("d", None)]
    assert index_headers([("k", b"1"), ("k", b"2")]) == {"k": b"2"}


def test_decode_header_value() -> None:
    assert decode_header_value(b"abc") == "abc"
    assert decode_header_value(memoryview(b"abc")) == "abc"
    assert decode_header_value("abc") == "abc"
    assert decode_header_value(b"\xff") is None
    assert decode_header_value(None) is None
    assert decode_header_value(12) is None


def test_merge_into_list_keeps_order_and_replaces_stale_keys_without_mutating() -> None:
    original = [("a", b"1"), ("traceparent", b"stale"), ("b", b"2"), ("traceparent", b"x")]
    snapshot = list(original)
    merged = merge_headers(original, {"traceparent": TRACEPARENT})
    assert merged == [("a", b"1"), ("b", b"2"), ("traceparent", TRACEPARENT)]
    assert original == snapshot
    assert merged is not original


def test_merge_into_dict_and_none() -> None:
    original = {"a": b"1", "traceparent": b"stale"}
    merged = merge_headers(original, {"traceparent": TRACEPARENT})
    assert merged == {"a": b"1", "traceparent": TRACEPARENT}
    assert original == {"a": b"1", "traceparent": b"stale"}
    assert merge_headers(None, {"traceparent": TRACEPARENT}) == [("traceparent", TRACEPARENT)]


@pytest.mark.parametrize("headers", [(("a", b"1"),), "text", 42])
def test_merge_leaves_other_containers_for_the_client_to_reject(headers: object) -> None:
    assert merge_headers(headers, {"traceparent": TRACEPARENT}) is headers


def test_merge_keeps_malformed_items_for_the_client_to_reject() -> None:
    original = [("a", b"1"), ["traceparent", b"list-not-tuple"], (["unhashable"], b"v")]
    merged = merge_headers(original, {"traceparent": TRACEPARENT})
    assert merged == [*original, ("traceparent", TRACEPARENT)]


def test_merge_with_nothing_injected_returns_the_original() -> None:
    original = [("a", b"1")]
    assert merge_headers(original, {}) is original
