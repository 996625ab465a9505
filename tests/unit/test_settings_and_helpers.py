"""Settings from the environment, bootstrap parsing and call-argument slots."""

from __future__ import annotations

import logging

import pytest

from kafka_autotrace.core.attributes import key_attribute
from kafka_autotrace.core.calls import CallShape
from kafka_autotrace.core.client import parse_bootstrap
from kafka_autotrace.core.settings import IncomingContext, Settings


def test_defaults() -> None:
    settings = Settings.from_env({})
    assert settings == Settings()
    assert settings.capture_key is True
    assert settings.capture_body_size is False
    assert settings.propagate is True
    assert settings.incoming_context is IncomingContext.PARENT
    assert settings.capture_headers == ()


def test_every_variable_is_read() -> None:
    settings = Settings.from_env(
        {
            "KAFKA_AUTOTRACE_CAPTURE_HEADERS": "tenant, request-id,,",
            "KAFKA_AUTOTRACE_CAPTURE_KEY": "false",
            "KAFKA_AUTOTRACE_CAPTURE_BODY_SIZE": "1",
            "KAFKA_AUTOTRACE_EXCLUDE_TOPICS": "__*, audit.*",
            "KAFKA_AUTOTRACE_INCOMING_CONTEXT": "LINK",
            "KAFKA_AUTOTRACE_PROPAGATE": "off",
            "KAFKA_AUTOTRACE_BATCH_PROCESS_SPANS": "no",
        }
    )
    assert settings.capture_headers == ("tenant", "request-id")
    assert settings.capture_key is False
    assert settings.capture_body_size is True
    assert settings.exclude_topics == ("__*", "audit.*")
    assert settings.incoming_context is IncomingContext.LINK
    assert settings.propagate is False
    assert settings.batch_process_spans is False


def test_bad_values_fall_back_to_defaults_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        settings = Settings.from_env(
            {"KAFKA_AUTOTRACE_CAPTURE_KEY": "maybe", "KAFKA_AUTOTRACE_INCOMING_CONTEXT": "trust"}
        )
    assert settings.capture_key is True
    assert settings.incoming_context is IncomingContext.PARENT
    assert "KAFKA_AUTOTRACE_CAPTURE_KEY" in caplog.text
    assert "KAFKA_AUTOTRACE_INCOMING_CONTEXT" in caplog.text


def test_topic_exclusion_globs() -> None:
    settings = Settings(exclude_topics=("__*", "audit.*"))
    assert settings.is_excluded("__consumer_offsets")
    assert settings.is_excluded("audit.login")
    assert not settings.is_excluded("orders")
    assert not settings.is_excluded("orders")  # answered from the memo the second time
    assert not Settings().is_excluded("__consumer_offsets")


@pytest.mark.parametrize(
    ("servers", "expected"),
    [
        ("localhost:9092", ("localhost", 9092)),
        ("b1:9092,b2:9093", ("b1", 9092)),
        (["b1:19092", "b2:9092"], ("b1", 19092)),
        ("PLAINTEXT://broker:9092", ("broker", 9092)),
        ("[::1]:9092", ("::1", 9092)),
        ("broker", ("broker", None)),
        ("", (None, None)),
        (None, (None, None)),
        (42, (None, None)),
        ("[::1", (None, None)),
    ],
)
def test_parse_bootstrap(servers: object, expected: tuple[object, object]) -> None:
    assert parse_bootstrap(servers) == expected


def test_call_shape_reads_and_replaces_positional_and_keyword_arguments() -> None:
    shape = CallShape("topic", "value", "key", "headers")
    args, kwargs = ("t", b"v", b"k", [("a", b"1")]), {}
    assert shape.get(args, kwargs, "headers") == [("a", b"1")]
    new_args, new_kwargs = shape.replace(args, kwargs, "headers", ["new"])
    assert new_args == ("t", b"v", b"k", ["new"]) and new_kwargs == {}
    assert args[3] == [("a", b"1")]

    args, kwargs = ("t",), {"value": b"v"}
    assert shape.get(args, kwargs, "headers") is None
    new_args, new_kwargs = shape.replace(args, kwargs, "headers", ["new"])
    assert new_args == ("t",) and new_kwargs == {"value": b"v", "headers": ["new"]}
    assert kwargs == {"value": b"v"}

    # Replacing a value by itself (an absent one by None) leaves the call as it was made.
    assert shape.replace(args, kwargs, "headers", None) == (args, kwargs)
    assert shape.replace(args, kwargs, "headers", None)[1] is kwargs


def test_call_shape_finds_the_first_alias_given_even_as_none() -> None:
    shape = CallShape("topic", "callback", "on_delivery")
    names = ("callback", "on_delivery")
    assert shape.first_given(("t",), {"on_delivery": len, "callback": None}, names) == (
        "callback",
        None,
    )
    assert shape.first_given(("t", abs), {"on_delivery": len}, names) == ("callback", abs)
    assert shape.first_given(("t",), {"on_delivery": len}, names) == ("on_delivery", len)
    assert shape.first_given(("t",), {}, names) == ("on_delivery", None)


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("order-1", "order-1"),
        (b"order-1", "order-1"),
        (b"\xff", None),  # not UTF-8: no canonical text form, left out
        (42, "42"),
        (True, None),
        (object(), None),
    ],
)
def test_key_attribute(key: object, expected: str | None) -> None:
    assert key_attribute(key) == expected


def test_a_failing_exception_str_never_escapes_from_ending_a_send_span() -> None:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.trace import TracerProvider

    from kafka_autotrace.core.adapter import SendAdapter
    from kafka_autotrace.core.client import ClientInfo
    from kafka_autotrace.core.telemetry import KafkaTelemetry

    class Hostile(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no text for you")

    telemetry = KafkaTelemetry(
        TracerProvider().get_tracer("t"), MeterProvider().get_meter("m"), Settings()
    )
    pending = telemetry.start_send(ClientInfo(), "orders", None, b"v", None, None)
    assert pending is not None
    SendAdapter().failed(pending, Hostile())
    assert not pending.span.is_recording()
