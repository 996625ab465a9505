"""The rule for trusting an incoming pipeline origin: ``<epoch ms> <topic>`` in ASCII, a legal
topic name, and no later than the clock-skew allowance after now. Anything else is ignored."""

from __future__ import annotations

import time

import pytest

from kafka_autotrace.core.pipeline import CLOCK_SKEW_MS, ORIGIN_HEADER, Origin, origin_in
from kafka_autotrace.core.propagation import extract_context

NOW_MS = time.time_ns() // 1_000_000  # at collection: cases stay valid for far longer than a run


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(b"%d orders" % (NOW_MS - 60_000), id="a minute ago"),
        pytest.param(b"0 orders", id="the epoch"),
        pytest.param(b"%d orders.v2_eu-1" % NOW_MS, id="every topic character"),
        pytest.param(b"%d %s" % (NOW_MS, b"t" * 249), id="the longest topic name"),
    ],
)
def test_a_well_formed_origin_is_trusted(value: bytes) -> None:
    origin = Origin.parse(value)
    assert origin is not None
    assert origin.header == value
    assert (b"%d %s" % (origin.ms, origin.topic.encode())) == value


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(f"{NOW_MS} orders", id="str, not bytes"),
        pytest.param(None, id="None"),
        pytest.param(b"", id="empty"),
        pytest.param(b"%d" % NOW_MS, id="no topic"),
        pytest.param(b"%d " % NOW_MS, id="empty topic"),
        pytest.param(b"soon orders", id="not a number"),
        pytest.param(b"-5 orders", id="negative"),
        pytest.param(b"12345678901234567 orders", id="seventeen digits"),
        pytest.param(b"%d  orders" % NOW_MS, id="two spaces"),
        pytest.param(b"%d orders eu" % NOW_MS, id="a space in the topic"),
        pytest.param(b"%d ord\xffers" % NOW_MS, id="not ASCII"),
        pytest.param(b"%d %s" % (NOW_MS, b"t" * 250), id="a topic name too long"),
        pytest.param(b"%d orders" % (NOW_MS + 3_600_000), id="an hour ahead"),
    ],
)
def test_anything_else_is_ignored(value: object) -> None:
    assert Origin.parse(value) is None


def test_an_origin_ahead_of_this_clock_by_less_than_the_skew_is_trusted() -> None:
    ahead = time.time_ns() // 1_000_000 + CLOCK_SKEW_MS // 2
    assert Origin.parse(b"%d orders" % ahead) is not None


def test_an_origin_is_carried_on_as_its_time_and_topic() -> None:
    assert Origin(NOW_MS, "orders").header == b"%d orders" % NOW_MS


def test_the_origin_header_is_read_with_the_trace_headers_and_only_when_trusted() -> None:
    value = b"%d orders" % NOW_MS
    found = origin_in(extract_context([("app", b"1"), (ORIGIN_HEADER, value)]))
    assert found is not None and (found.ms, found.topic) == (NOW_MS, "orders")
    assert origin_in(extract_context([(ORIGIN_HEADER, b"later orders")])) is None
    assert origin_in(extract_context([("app", b"1")])) is None
