"""Spans the sampler drops, made without the SDK's span machinery (:class:`SpanStarter`).

A busy service samples 1% or less, so most of our spans are ones the sampler drops, and for
those the SDK's ``Tracer.start_span`` costs more than the span it returns: a sampling result,
the sampler's own look-ups of the parent, flags and a span context, only to hand back a
``NonRecordingSpan``. When the provider's sampler is one of the SDK's built-in ones, as
``opentelemetry-instrument`` configures them from ``OTEL_TRACES_SAMPLER``, the decision for a
span whose parent is not sampled, or whose trace id the ratio rejects, is known before that
machinery runs; such a span is built here exactly as the SDK builds it (a fresh span id, and a
fresh trace id for a root, from the provider's id generator; the parent's trace state; the
same flags). The SDK calls no span processor for it either. Everything else goes through the
SDK: any other sampler, a recording decision, a disabled tracer, the SDK's own span metrics.

What only a recording span needs (a message's key, offset, …) is asked for only when the span
records, and, when these samplers decide it does, given at start: one pass through the SDK's
attribute checks, where a ``set_attributes`` after start costs about twice as much per
attribute. These samplers do not read attributes, so what they decide does not change; any
other sampler sees the same start attributes as ever, and gets the rest after start.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry.context import Context
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    TraceFlags,
    Tracer,
    get_current_span,
)
from opentelemetry.util.types import Attributes, AttributeValue

Extra = Callable[..., dict[str, AttributeValue]]
"""Makes the attributes a recording span gets beside its start attributes, only for one."""

_TRACE_ID_LIMIT = (1 << 64) - 1
"""The bits of a trace id the SDK's ratio sampler compares with its bound."""
_ALWAYS = 1 << 64
"""A bound every trace id is under: a sampler that always samples."""


class _PresetTraceIds:
    """The provider's id generator, but the next trace id on this thread may be one already
    drawn: the one a root span's ratio decision was made on, handed to the SDK to build the
    recording span with. Installed on our own tracer only."""

    def __init__(self, generator: Any) -> None:
        self.generator = generator
        self._preset = threading.local()

    def generate_span_id(self) -> int:
        return int(self.generator.generate_span_id())

    def generate_trace_id(self) -> int:
        preset: int | None = self._preset.__dict__.pop("trace_id", None)
        if preset is not None:
            return preset
        return int(self.generator.generate_trace_id())

    def is_trace_id_random(self) -> bool:
        return bool(self.generator.is_trace_id_random())

    def preset(self, trace_id: int | None) -> None:
        """The trace id the next one generated on this thread is (None: none preset)."""
        self._preset.trace_id = trace_id


class _Plan:
    """What the SDK would decide without building a span: how a parent's flags and a trace id
    decide, and how a dropped span's ids and flags are made."""

    __slots__ = (
        "bound",
        "new_span_id",
        "new_trace_id",
        "parent_based",
        "preset",
        "random_bit",
        "root_flags",
        "sampler",
    )

    def __init__(
        self,
        sampler: object,
        parent_based: bool,
        bound: int,
        generator: Any,
        ids: _PresetTraceIds | None,
        random: bool,
    ) -> None:
        self.sampler = sampler
        self.parent_based = parent_based
        self.bound = bound
        # The provider's own generator, called directly: the preset is for the SDK alone.
        self.new_span_id = generator.generate_span_id
        self.new_trace_id = generator.generate_trace_id
        self.preset = ids.preset if ids is not None else _no_preset
        # Where the SDK carries the random-trace-id flag (newer SDKs), a dropped child keeps
        # its parent's and a dropped root has it when the generator says its ids are random.
        self.random_bit = _random_flag() if random else 0
        flags = TraceFlags.DEFAULT
        if random and generator.is_trace_id_random():
            flags |= self.random_bit
        self.root_flags = TraceFlags(flags)


class SpanStarter:
    """Starts our spans: through the tracer, or, when the provider's sampler is a built-in one
    that drops the span, as the ``NonRecordingSpan`` the SDK would return."""

    __slots__ = ("_plan", "_tracer")

    def __init__(self, tracer: Tracer) -> None:
        self._tracer = tracer
        self._plan = _plan_for(tracer)

    def start(
        self,
        name: str,
        context: Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Attributes = None,
        links: Sequence[Link] | None = (),
        start_time: int | None = None,
        extra: Extra | None = None,
        extra_args: tuple[Any, ...] = (),
    ) -> Span:
        """Start a span; ``extra(*extra_args)`` makes what it gets beside ``attributes`` if it
        records (a callable and its arguments rather than a closure: most spans are dropped,
        and those should not pay for making one)."""
        plan = self._plan
        tracer: Any = self._tracer
        if (
            plan is None
            or tracer.sampler is not plan.sampler
            or not getattr(tracer, "_tracer_config", _ENABLED).is_enabled
        ):
            span: Span = tracer.start_span(name, context, kind, attributes, links, start_time)
            if extra is not None and span.is_recording():
                more = extra(*extra_args)
                if more:
                    span.set_attributes(more)
            return span
        parent = get_current_span(context).get_span_context()
        if parent.is_valid:
            trace_id = parent.trace_id
            if (
                parent.trace_flags.sampled
                if plan.parent_based
                else trace_id & _TRACE_ID_LIMIT < plan.bound
            ):
                return self._recording(
                    name, context, kind, attributes, links, start_time, extra, extra_args
                )
            flags = _DROPPED_RANDOM if parent.trace_flags & plan.random_bit else _DROPPED
            trace_state = parent.trace_state
        else:
            if plan.bound == _ALWAYS:
                return self._recording(
                    name, context, kind, attributes, links, start_time, extra, extra_args
                )
            trace_id = plan.new_trace_id()
            if trace_id & _TRACE_ID_LIMIT < plan.bound:
                plan.preset(trace_id)
                try:
                    return self._recording(
                        name, context, kind, attributes, links, start_time, extra, extra_args
                    )
                finally:
                    plan.preset(None)  # unused if the SDK returned early
            flags = plan.root_flags
            trace_state = None
        return NonRecordingSpan(
            SpanContext(
                trace_id,
                plan.new_span_id(),
                is_remote=False,
                trace_flags=flags,
                trace_state=trace_state,
            )
        )

    def _recording(
        self,
        name: str,
        context: Context | None,
        kind: SpanKind,
        attributes: Attributes,
        links: Sequence[Link] | None,
        start_time: int | None,
        extra: Extra | None,
        extra_args: tuple[Any, ...],
    ) -> Span:
        """A span the sampler records (unless the SDK's tracer is off): all its attributes at
        start."""
        if extra is not None:
            more = extra(*extra_args)
            if more:
                attributes = {**attributes, **more} if attributes else more
        return self._tracer.start_span(name, context, kind, attributes, links, start_time)


def _no_preset(trace_id: int | None) -> None:
    """A plan whose roots are all sampled or all dropped never hands a trace id over."""


_DROPPED = TraceFlags(TraceFlags.DEFAULT)


def _random_flag() -> int:
    return int(getattr(TraceFlags, "RANDOM_TRACE_ID", 0))


_DROPPED_RANDOM = TraceFlags(TraceFlags.DEFAULT | _random_flag())


class _Enabled:
    """The tracer configuration of an SDK that has none: always enabled."""

    is_enabled = True


_ENABLED = _Enabled()


def _plan_for(tracer: Tracer) -> _Plan | None:
    """The plan for an SDK tracer whose sampler's drops are known, else None."""
    try:
        from opentelemetry.sdk import trace as sdk_trace
        from opentelemetry.sdk.trace import id_generator, sampling
    except ImportError:
        return None
    if type(tracer) is not sdk_trace.Tracer or not _sdk_metrics_off(tracer):
        return None
    sampler = tracer.sampler
    parent_based = type(sampler) in _types(
        sampling,
        "ParentBased",
        "ParentBasedTraceIdRatio",
        "_ParentBasedAlwaysOn",
        "_ParentBasedAlwaysOff",
    )
    if parent_based:
        if not _default_delegates(sampler, sampling):
            return None
        root = sampler._root  # type: ignore[attr-defined]
    else:
        root = sampler
    bound = _bound(root, sampling)
    if bound is None:
        return None
    generator = tracer.id_generator
    ids = None
    if 0 < bound < _ALWAYS:  # a root's ratio decision, made here on a trace id the SDK reuses
        ids = _PresetTraceIds(generator)
        tracer.id_generator = ids  # type: ignore[assignment]
    random = hasattr(id_generator.IdGenerator, "is_trace_id_random")
    return _Plan(sampler, parent_based, bound, generator, ids, random)


def _types(module: object, *names: str) -> tuple[type, ...]:
    return tuple(kind for name in names if isinstance(kind := getattr(module, name, None), type))


def _default_delegates(sampler: Any, sampling: Any) -> bool:
    """Whether a parent-based sampler follows its parent's flag: sampled parents sampled,
    the others dropped, remote or local."""
    return (
        sampler._remote_parent_sampled is sampling.ALWAYS_ON
        and sampler._local_parent_sampled is sampling.ALWAYS_ON
        and sampler._remote_parent_not_sampled is sampling.ALWAYS_OFF
        and sampler._local_parent_not_sampled is sampling.ALWAYS_OFF
    )


def _bound(sampler: Any, sampling: Any) -> int | None:
    """The bound under which a trace id's low 64 bits are sampled, for the built-in samplers
    that decide on the trace id alone; None for any other."""
    if type(sampler) is sampling.TraceIdRatioBased:
        return int(sampler.bound)
    if type(sampler) in _types(sampling, "StaticSampler", "_AlwaysOn", "_AlwaysOff"):
        return _ALWAYS if sampler._decision is sampling.Decision.RECORD_AND_SAMPLE else 0
    return None


def _sdk_metrics_off(tracer: Any) -> bool:
    """Whether the SDK counts no spans of its own (newer SDKs can: it counts dropped ones)."""
    metrics = getattr(tracer, "_tracer_metrics", None)
    return metrics is None or type(metrics).__name__ == "NoOpTracerMetrics"
