"""Where the statistics tap goes in a confluent-kafka client's constructor arguments, and what
it does with each statistics string (no broker: the arguments are only built)."""

from __future__ import annotations

import json
from typing import Any

from kafka_autotrace.clients.confluent.statistics import (
    CALLBACK,
    DEFAULT_INTERVAL_MS,
    INTERVAL,
    StatisticsTap,
    tap_statistics,
)


def test_the_tap_goes_where_the_configuration_is_and_the_callers_dict_is_left_alone() -> None:
    config = {"bootstrap.servers": "b:9092"}
    args, kwargs, tap = tap_statistics((config,), {})
    assert config == {"bootstrap.servers": "b:9092"}
    assert kwargs == {} and args[0] == {**config, CALLBACK: tap, INTERVAL: DEFAULT_INTERVAL_MS}

    args, kwargs, tap = tap_statistics((), {"bootstrap.servers": "b:9092"})
    assert args == () and kwargs == {
        "bootstrap.servers": "b:9092",
        CALLBACK: tap,
        INTERVAL: DEFAULT_INTERVAL_MS,
    }


def test_the_applications_interval_and_callback_stay_its_own() -> None:
    own: list[str] = []
    args, kwargs, tap = tap_statistics(({INTERVAL: 5000},), {CALLBACK: own.append})
    assert args == ({INTERVAL: 5000},) and kwargs == {CALLBACK: tap}
    assert tap is not None and tap('{"a": 1}') is None and own == ['{"a": 1}']


def test_nothing_to_extend_or_a_callback_that_cannot_be_called_is_left_as_given() -> None:
    assert tap_statistics((), {}) == ((), {}, None)
    assert tap_statistics(("not a dict",), {}) == (("not a dict",), {}, None)
    assert tap_statistics(({CALLBACK: "no"},), {}) == (({CALLBACK: "no"},), {}, None)


def test_statistics_are_parsed_once_per_string_and_kept_from_the_last_good_one() -> None:
    tap = StatisticsTap()
    assert tap.latest() is None
    first = json.dumps({"n": 1})
    tap(first)
    parsed = tap.latest()
    assert parsed == {"n": 1} and tap.latest() is parsed
    tap("{broken")
    assert tap.latest() is None and tap.earlier() is None
    second = json.dumps({"n": 2})
    tap(second)
    assert tap.latest() == {"n": 2} and tap.earlier() == {"n": 1}


def test_the_applications_exception_and_return_value_come_through() -> None:
    def failing(stats_json: str) -> Any:
        raise RuntimeError(stats_json)

    tap = StatisticsTap(failing)
    try:
        tap("{}")
    except RuntimeError as error:
        assert error.args == ("{}",)
    else:
        raise AssertionError("the application's exception was swallowed")
    assert StatisticsTap(lambda stats_json: 7)("{}") == 7
