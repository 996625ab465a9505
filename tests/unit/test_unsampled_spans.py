"""Spans the sampler drops, made without the SDK, are the spans the SDK makes: the same message
mix goes through the SDK's ``Tracer.start_span`` and through :class:`SpanStarter`, each with
its own provider built alike (same sampler, same seeded id generator), and every span's
decision, ids, flags and trace state must agree, as must what the span processors saw. Runs on
whichever SDK is installed (the client matrix runs it on the oldest and newest supported)."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from opentelemetry import context as otel_context
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace import sampling as sdk_sampling
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    TraceFlags,
    TraceState,
    set_span_in_context,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from kafka_autotrace.core.unsampled import SpanStarter


class SeededIds(IdGenerator):
    """Random ids from a seeded generator: two providers given the same seed draw the same."""

    def __init__(self, seed: int) -> None:
        self._random = random.Random(seed)

    def generate_span_id(self) -> int:
        return self._random.getrandbits(64) or 1

    def generate_trace_id(self) -> int:
        return self._random.getrandbits(128) or 1

    def is_trace_id_random(self) -> bool:
        return True


class Started(SpanProcessor):
    """Every span a processor is told of at its start."""

    def __init__(self) -> None:
        self.contexts: list[SpanContext] = []

    def on_start(self, span: Any, parent_context: Context | None = None) -> None:
        self.contexts.append(span.get_span_context())

    def on_end(self, span: ReadableSpan) -> None:
        pass


def _samplers() -> Iterator[tuple[str, Callable[[], sdk_sampling.Sampler]]]:
    """The built-in samplers, made as the SDK's configuration makes them from
    OTEL_TRACES_SAMPLER (the entry points' classes, where the installed SDK has them)."""
    for rate in (0.0, 0.3, 1.0):
        yield f"traceidratio {rate}", lambda rate=rate: sdk_sampling.TraceIdRatioBased(rate)
        yield (
            f"parentbased_traceidratio {rate}",
            lambda rate=rate: sdk_sampling.ParentBasedTraceIdRatio(rate),
        )
        yield (
            f"ParentBased(TraceIdRatioBased({rate}))",
            lambda rate=rate: sdk_sampling.ParentBased(sdk_sampling.TraceIdRatioBased(rate)),
        )
    yield "ALWAYS_ON", lambda: sdk_sampling.ALWAYS_ON
    yield "ALWAYS_OFF", lambda: sdk_sampling.ALWAYS_OFF
    yield "DEFAULT_ON", lambda: sdk_sampling.DEFAULT_ON
    yield "DEFAULT_OFF", lambda: sdk_sampling.DEFAULT_OFF
    for name in ("_AlwaysOn", "_AlwaysOff", "_ParentBasedAlwaysOn", "_ParentBasedAlwaysOff"):
        factory = getattr(sdk_sampling, name, None)
        if factory is not None:
            yield name, lambda factory=factory: factory(None)


SAMPLERS = dict(_samplers())
TRACE_STATE = TraceState([("vendor", "opaque"), ("other", "x=1")])


def _parents(tracer_span: Callable[[Context | None], Span]) -> Iterator[Context | None]:
    """The contexts a send or a process span starts under: none (a root), remote parents
    from a ``traceparent``/``tracestate`` header (sampled or not, with or without a trace
    state), and local parents (a span of the application's, sampled or not)."""
    propagator = TraceContextTextMapPropagator()
    for index in range(40):
        flags = "01" if index % 3 == 0 else "00"
        carrier = {"traceparent": f"00-{random.getrandbits(128):032x}-{'cd' * 8}-{flags}"}
        if index % 2:
            carrier["tracestate"] = "vendor=opaque,other=x"
        yield None
        yield propagator.extract(carrier)
        yield set_span_in_context(
            NonRecordingSpan(
                SpanContext(
                    random.getrandbits(128) or 1,
                    random.getrandbits(64) or 1,
                    is_remote=False,
                    trace_flags=TraceFlags(TraceFlags.SAMPLED if index % 4 else 0),
                    trace_state=TRACE_STATE if index % 5 else None,
                )
            )
        )
        # A child of a span made by the path itself: the same tracer's earlier decision.
        yield set_span_in_context(tracer_span(None))


def _run(
    sampler: sdk_sampling.Sampler, start: Callable[[Any], Callable[..., Span]]
) -> tuple[list[tuple[object, ...]], list[SpanContext]]:
    """The message mix through one path: each span's decision, ids, flags and trace state,
    and the span contexts the provider's processor saw start."""
    random.seed(7)
    provider = TracerProvider(sampler=sampler, id_generator=SeededIds(11))
    started = Started()
    provider.add_span_processor(started)
    start_span = start(provider.get_tracer("differential"))
    seen = []
    for parent in _parents(lambda context: start_span("send orders", context)):
        for kind, name in ((SpanKind.PRODUCER, "send orders"), (SpanKind.CONSUMER, "process")):
            links = [Link(parent_span_context)] if parent is not None else []
            span = start_span(name, parent, kind, {"messaging.system": "kafka"}, links)
            context = span.get_span_context()
            seen.append(
                (
                    span.is_recording(),
                    context.trace_id,
                    context.span_id,
                    int(context.trace_flags),
                    context.trace_state.to_header(),
                    context.is_remote,
                )
            )
            span.end()
    provider.shutdown()
    return seen, started.contexts


parent_span_context = SpanContext(0xAB, 0xCD, is_remote=True)


def _through_sdk(tracer: Any) -> Callable[..., Span]:
    return tracer.start_span  # type: ignore[no-any-return]


def _through_starter(tracer: Any) -> Callable[..., Span]:
    return SpanStarter(tracer).start


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_the_same_spans_as_the_sdk(name: str) -> None:
    token = otel_context.attach(Context())
    try:
        expected, expected_started = _run(SAMPLERS[name](), _through_sdk)
        seen, started = _run(SAMPLERS[name](), _through_starter)
    finally:
        otel_context.detach(token)
    assert len(seen) == len(expected) == 320
    for index, (ours, sdk) in enumerate(zip(seen, expected)):
        assert ours == sdk, f"span {index}"
    assert started == expected_started


def _skip_where_the_sdk_counts_spans() -> None:
    """Some SDK releases (1.41) give every tracer span metrics of their own, which count dropped
    spans too: there every span goes through the SDK, and nothing is made without it."""
    probe: Any = TracerProvider(sampler=sdk_sampling.ALWAYS_OFF).get_tracer("probe")
    metrics = getattr(probe, "_tracer_metrics", None)
    if metrics is not None and type(metrics).__name__ != "NoOpTracerMetrics":
        pytest.skip("this SDK counts its own spans on every tracer: all go through it")


@pytest.mark.parametrize(
    "name",
    ["parentbased_traceidratio 0.3", "traceidratio 0.3", "ALWAYS_OFF", "DEFAULT_OFF"],
)
def test_dropped_spans_skip_the_sdk(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The comparison above is not between two SDK runs: with these samplers some spans are
    made without the SDK's ``start_span``."""
    _skip_where_the_sdk_counts_spans()
    provider = TracerProvider(sampler=SAMPLERS[name](), id_generator=SeededIds(3))
    tracer = provider.get_tracer("differential")
    calls = []
    sdk_start = tracer.start_span
    monkeypatch.setattr(tracer, "start_span", lambda *args: calls.append(args) or sdk_start(*args))
    starter = SpanStarter(tracer)
    spans = [starter.start("send orders") for _ in range(50)]
    dropped = [span for span in spans if not span.is_recording()]
    assert dropped
    assert len(calls) == len(spans) - len(dropped)


class Coin(sdk_sampling.Sampler):
    """A sampler of the application's own: only the SDK knows what it decides."""

    def should_sample(self, parent_context: Any, trace_id: int, *args: Any, **kw: Any) -> Any:
        return sdk_sampling.SamplingResult(sdk_sampling.Decision.DROP)

    def get_description(self) -> str:
        return "Coin"


@pytest.mark.parametrize(
    "sampler",
    [
        Coin(),
        sdk_sampling.ParentBased(sdk_sampling.ALWAYS_OFF, remote_parent_not_sampled=Coin()),
        sdk_sampling.ParentBased(Coin()),
        sdk_sampling.ParentBased(sdk_sampling.ALWAYS_OFF, local_parent_sampled=Coin()),
    ],
    ids=["custom", "custom delegate", "custom root", "custom local delegate"],
)
def test_other_samplers_go_through_the_sdk(sampler: sdk_sampling.Sampler) -> None:
    provider = TracerProvider(sampler=sampler)
    tracer = provider.get_tracer("differential")
    calls = []
    sdk_start = tracer.start_span
    tracer.start_span = lambda *args: calls.append(args) or sdk_start(*args)  # type: ignore[method-assign]
    SpanStarter(tracer).start("send orders")
    assert len(calls) == 1


def _counted_calls(tracer: Any, monkeypatch: pytest.MonkeyPatch) -> list[object]:
    calls: list[object] = []
    sdk_start = tracer.start_span
    monkeypatch.setattr(tracer, "start_span", lambda *args: calls.append(args) or sdk_start(*args))
    return calls


def test_the_sdks_span_metrics_go_through_the_sdk(monkeypatch: pytest.MonkeyPatch) -> None:
    """An SDK that counts the spans it starts, dropped ones included, is left to count ours."""
    monkeypatch.setenv("OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED", "true")
    tracer: Any = TracerProvider(sampler=sdk_sampling.ALWAYS_OFF).get_tracer("differential")
    if type(getattr(tracer, "_tracer_metrics", None)).__name__ in ("NoneType", "NoOpTracerMetrics"):
        pytest.skip("this SDK counts no spans of its own")
    calls = _counted_calls(tracer, monkeypatch)
    SpanStarter(tracer).start("send orders")
    assert len(calls) == 1


def test_a_disabled_tracer_goes_through_the_sdk(monkeypatch: pytest.MonkeyPatch) -> None:
    tracer: Any = TracerProvider(sampler=sdk_sampling.ALWAYS_OFF).get_tracer("differential")
    if not hasattr(tracer, "_set_tracer_config"):
        pytest.skip("this SDK has no tracer configuration")
    _skip_where_the_sdk_counts_spans()
    starter = SpanStarter(tracer)
    calls = _counted_calls(tracer, monkeypatch)
    starter.start("send orders")
    assert not calls
    tracer._set_tracer_config(type(tracer._tracer_config)(is_enabled=False))
    span = starter.start("send orders")
    assert len(calls) == 1
    assert not span.get_span_context().is_valid


class Keep(sdk_sampling.Sampler):
    """A sampler of the application's own that records every span, with its attributes."""

    def should_sample(
        self,
        parent_context: Any,
        trace_id: int,
        name: str,
        kind: Any = None,
        attributes: Any = None,
        *args: Any,
    ) -> Any:
        return sdk_sampling.SamplingResult(sdk_sampling.Decision.RECORD_AND_SAMPLE, attributes)

    def get_description(self) -> str:
        return "Keep"


@pytest.mark.parametrize("name", [*sorted(SAMPLERS), "custom"])
def test_a_recording_span_gets_the_extra_attributes_and_a_dropped_one_never_asks(
    name: str,
) -> None:
    sampler = Keep() if name == "custom" else SAMPLERS[name]()
    tracer = TracerProvider(sampler=sampler, id_generator=SeededIds(3)).get_tracer("extra")
    starter = SpanStarter(tracer)
    asked = []

    def extra() -> dict[str, Any]:
        asked.append(True)
        return {"messaging.kafka.offset": 7}

    token = otel_context.attach(Context())
    try:
        random.seed(5)
        for parent in _parents(lambda context: starter.start("send orders", context)):
            asked.clear()
            span: Any = starter.start("send orders", parent, attributes={"a": "b"}, extra=extra)
            assert len(asked) == span.is_recording()
            if span.is_recording():
                assert dict(span.attributes) == {"a": "b", "messaging.kafka.offset": 7}
            span.end()
    finally:
        otel_context.detach(token)
