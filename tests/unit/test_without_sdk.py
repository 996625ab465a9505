"""With the OpenTelemetry API alone there is no span context to send: a send must then reach
the client exactly as the application made it, with no ``headers`` argument added, and nothing
follows its answer, since nothing would record it. Whether an SDK is behind our tracer and
meter is asked per message until one is (the API's proxies delegate once a global provider is
set), which only a fresh interpreter can show, with no global provider set yet."""

from __future__ import annotations

import subprocess
import sys
from typing import Any, Callable

import pytest
from opentelemetry import baggage, propagate, trace
from opentelemetry import context as otel_context
from opentelemetry.context import Context
from opentelemetry.metrics import NoOpMeter
from opentelemetry.propagators.textmap import TextMapPropagator
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import (
    INVALID_SPAN,
    NonRecordingSpan,
    NoOpTracer,
    SpanContext,
    TraceFlags,
)

from kafka_autotrace.clients import kafka_python
from kafka_autotrace.clients.confluent.classic import _Produce
from kafka_autotrace.clients.confluent.common import ConfluentState
from kafka_autotrace.core.client import ClientInfo
from kafka_autotrace.core.sdk import SdkPresence
from kafka_autotrace.core.sending import PassThroughSend
from kafka_autotrace.core.settings import Settings
from kafka_autotrace.core.telemetry import KafkaTelemetry


def _api_only() -> KafkaTelemetry:
    return KafkaTelemetry(NoOpTracer(), NoOpMeter("test"), Settings())


def _kafka_python_send(
    telemetry: KafkaTelemetry, send: Callable[..., Any], args: tuple[Any, ...], kwargs: Any
) -> Any:
    """kafka-python's wrapped ``send`` of a new producer, traced into ``telemetry``."""
    previous, kafka_python.TELEMETRY.telemetry = kafka_python.TELEMETRY.telemetry, telemetry
    try:
        return kafka_python._SEND.call(send, _Producer(), args, kwargs)
    finally:
        kafka_python.TELEMETRY.telemetry = previous


class _Future:
    """What kafka-python's send() returns, as far as the wrapper uses it."""

    def __init__(self) -> None:
        self.callbacks: list[Any] = []

    def add_callback(self, callback: Any, *args: Any) -> None:
        self.callbacks.append(callback)

    def add_errback(self, errback: Any, *args: Any) -> None:
        self.callbacks.append(errback)


class _Producer:
    def __init__(self) -> None:
        self.config: dict[str, Any] = {"bootstrap_servers": "localhost:9092"}


class _Send:
    """kafka-python's ``KafkaProducer.send`` as the wrapper calls it: records each call's
    arguments and returns one future."""

    def __init__(self) -> None:
        self.calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
        self.future = _Future()

    def __call__(self, *args: Any, **kwargs: Any) -> _Future:
        self.calls.append((args, kwargs))
        return self.future


def test_kafka_python_send_keeps_the_application_arguments() -> None:
    send = _Send()
    args, kwargs = ("orders", b"value"), {"key": b"key"}
    result = _kafka_python_send(_api_only(), send, args, kwargs)

    assert result is send.future
    assert send.calls == [(args, kwargs)]  # no ``headers=None`` added
    assert send.future.callbacks == []  # nothing would record the answer


def test_confluent_produce_gets_no_headers_argument() -> None:
    telemetry = _api_only()
    assert telemetry.start_send(ClientInfo(), "orders", None, b"value", None, None) is None
    # Nor when a send is prepared with nothing to inject.
    produce = _Produce()
    state = ConfluentState(ClientInfo(), follows_delivery=False)
    pending = PassThroughSend(INVALID_SPAN, {}, None)
    args, kwargs = ("orders", b"value"), {"key": b"key"}
    traced = telemetry.headers_for(pending, produce.shape.get(args, kwargs, "headers"))
    call_args, call_kwargs = produce.shape.replace(args, kwargs, "headers", traced)
    follows = produce.delivery_callback(pending, state, call_args, call_kwargs) is not None
    assert (call_args, call_kwargs, follows) == (args, kwargs, False)
    assert "headers" not in call_kwargs


class _StampPropagator(TextMapPropagator):
    """A propagator that writes a header even for an empty context."""

    def extract(self, carrier: Any, context: Context | None = None, getter: Any = None) -> Context:
        return context if context is not None else Context()

    def inject(self, carrier: Any, context: Context | None = None, setter: Any = None) -> None:
        carrier["x-stamp"] = "1"

    @property
    def fields(self) -> set[str]:
        return {"x-stamp"}


_VALID_SPAN = NonRecordingSpan(
    SpanContext(0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331, False, TraceFlags(1))
)
# What the current context holds, and the headers a send made in it must reach the client with.
_CONTEXTS: dict[str, tuple[Callable[[], Context], dict[str, bytes] | None]] = {
    "empty": (Context, None),
    "span": (
        lambda: trace.set_span_in_context(_VALID_SPAN),
        {"traceparent": b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
    ),
    "baggage-only": (lambda: baggage.set_baggage("tenant", "acme"), {"baggage": b"tenant=acme"}),
}


@pytest.mark.parametrize("held", sorted(_CONTEXTS))
def test_a_send_is_left_untouched_exactly_when_there_is_nothing_to_carry(held: str) -> None:
    """The shortcut for sends with nothing to do must not skip a send that has something."""
    make_context, expected = _CONTEXTS[held]
    telemetry = _api_only()
    send = _Send()
    token = otel_context.attach(make_context())
    try:
        untouched = telemetry.passes_send_untouched()
        _kafka_python_send(telemetry, send, ("orders", b"value"), {})
    finally:
        otel_context.detach(token)
    assert untouched is (expected is None)
    [(_, kwargs)] = send.calls
    assert (dict(kwargs["headers"]) if "headers" in kwargs else None) == expected


def test_a_propagator_other_than_w3c_sees_every_send() -> None:
    """It may write headers even for an empty context, so no send is skipped for it."""
    telemetry = _api_only()
    send = _Send()
    previous = propagate.get_global_textmap()
    propagate.set_global_textmap(_StampPropagator())
    try:
        assert not telemetry.passes_send_untouched()
        _kafka_python_send(telemetry, send, ("orders", b"value"), {})
    finally:
        propagate.set_global_textmap(previous)
    [(_, kwargs)] = send.calls
    assert kwargs["headers"] == [("x-stamp", b"1")]


def test_sends_are_left_to_a_hook_an_sdk_or_with_propagation_off() -> None:
    hooked = KafkaTelemetry(
        NoOpTracer(), NoOpMeter("test"), Settings(), produce_hook=lambda *args: None
    )
    assert not hooked.passes_send_untouched()
    with_sdk = KafkaTelemetry(TracerProvider().get_tracer("test"), NoOpMeter("test"), Settings())
    assert not with_sdk.passes_send_untouched()
    not_propagating = KafkaTelemetry(NoOpTracer(), NoOpMeter("test"), Settings(propagate=False))
    token = otel_context.attach(trace.set_span_in_context(_VALID_SPAN))
    try:
        assert not_propagating.passes_send_untouched()
    finally:
        otel_context.detach(token)


def test_explicit_no_op_providers_are_idle_and_an_sdk_on_either_side_is_not() -> None:
    assert SdkPresence(NoOpTracer(), NoOpMeter("test")).idle()
    sdk_tracer = TracerProvider().get_tracer("test")
    sdk_meter = MeterProvider().get_meter("test")
    assert not SdkPresence(sdk_tracer, NoOpMeter("test")).idle()
    assert not SdkPresence(NoOpTracer(), sdk_meter).idle()


_LATE_SDK = """
from opentelemetry import metrics, trace
import time
from kafka_autotrace.core.sdk import RECHECK_S, SdkPresence

presence = SdkPresence(trace.get_tracer("test"), metrics.get_meter("test"))
assert presence.idle(), "API proxies with no global provider"
{set_up}
deadline = time.monotonic() + 5 * RECHECK_S
while presence.idle():
    assert time.monotonic() < deadline, "the proxies delegate to an SDK now"
"""


@pytest.mark.parametrize(
    "set_up",
    [
        "from opentelemetry.sdk.trace import TracerProvider\n"
        "trace.set_tracer_provider(TracerProvider())",
        "from opentelemetry.sdk.metrics import MeterProvider\n"
        "metrics.set_meter_provider(MeterProvider())",
    ],
    ids=["tracer-provider", "meter-provider"],
)
def test_an_sdk_set_up_after_instrumentation_is_noticed(set_up: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", _LATE_SDK.format(set_up=set_up)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
