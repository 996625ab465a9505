"""With the OpenTelemetry API alone there is no span context to send: a send must then reach
the client exactly as the application made it, with no ``headers`` argument added."""

from __future__ import annotations

from typing import Any

from opentelemetry.metrics import NoOpMeter
from opentelemetry.trace import NoOpTracer

from kafka_autotrace.confluent_kafka import ACTIVE, ClientState, _traced_call, _TracedProducer
from kafka_autotrace.kafka_python import _send_wrapper
from kafka_autotrace.model import ClientInfo
from kafka_autotrace.settings import Settings
from kafka_autotrace.telemetry import KafkaTelemetry


def _api_only() -> KafkaTelemetry:
    return KafkaTelemetry(NoOpTracer(), NoOpMeter("test"), Settings())


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


def test_kafka_python_send_keeps_the_application_arguments() -> None:
    made: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
    future = _Future()

    def send(*args: Any, **kwargs: Any) -> _Future:
        made.append((args, kwargs))
        return future

    args, kwargs = ("orders", b"value"), {"key": b"key"}
    result = _send_wrapper(_api_only())(send, _Producer(), args, kwargs)

    assert result is future
    assert made == [(args, kwargs)]  # no ``headers=None`` added
    assert len(future.callbacks) == 2  # the send is still followed to its answer


def test_confluent_produce_gets_no_headers_argument() -> None:
    telemetry = _api_only()
    pending = telemetry.start_send(ClientInfo(), "orders", None, b"value", None, None)
    assert pending is not None
    state = ClientState(ClientInfo(), follows_delivery=False)
    previous, ACTIVE.telemetry = ACTIVE.telemetry, telemetry
    try:
        args, kwargs = ("orders", b"value"), {"key": b"key"}
        call_args, call_kwargs, follows = _traced_call(
            pending,
            state,
            _TracedProducer._produce_shape,
            _TracedProducer._callbacks,
            args,
            kwargs,
        )
    finally:
        ACTIVE.telemetry = previous
    assert (call_args, call_kwargs, follows) == (args, kwargs, False)
    assert "headers" not in call_kwargs
