"""Whether an OpenTelemetry SDK stands behind our tracer and meter.

With the API alone (no SDK installed, or none set up yet) every span is a no-op and every
measurement is dropped, so building attributes, timing sends and following the broker's
answers would cost the application for nothing. All the API's no-op tracer does is hand back
the current span, so that a service without an SDK still carries the trace context on from
the records it consumes to those it produces. :meth:`SdkPresence.idle` tells the core when
that is all there is to do.

Our tracer and meter come from ``trace.get_tracer`` and ``metrics.get_meter``. Without a
provider, those are proxies that start delegating as soon as a global provider is set, which
may happen after instrumentation (an application that sets up its SDK in code, after
``opentelemetry-instrument`` instrumented it). So while the answer is "idle" the question is
asked again, at most every :data:`RECHECK_S` seconds: asking costs more than the rest of an
idle message (the API looks the provider variables up in ``os.environ`` on every call), and a
provider set up late then goes unused for a tenth of a second at most, in which records still
carry the trace context on. Once an SDK is behind either, the answer is kept, since a global
provider can only be set once.
"""

from __future__ import annotations

import time

from opentelemetry import metrics, trace
from opentelemetry.metrics import Meter, MeterProvider, NoOpMeter
from opentelemetry.trace import (
    NoOpTracer,
    NoOpTracerProvider,
    ProxyTracer,
    ProxyTracerProvider,
    Tracer,
)

RECHECK_S = 0.1
"""How long an "idle" answer is kept before the global providers are looked at again."""
_API_METRICS = "opentelemetry.metrics"
_API_TRACER_PROVIDERS = (ProxyTracerProvider, NoOpTracerProvider)


def is_api_meter(meter: Meter | MeterProvider) -> bool:
    """Whether ``meter`` (or a meter provider) is one of the API's own: a no-op, or a proxy
    that has no SDK to delegate to until a global meter provider is set. The proxy classes are
    private, so they are told by the module they come from."""
    return type(meter).__module__.startswith(_API_METRICS)


class SdkPresence:
    """Whether the spans and measurements of one tracer and meter can be recorded at all."""

    __slots__ = ("_live", "_meter_follows_global", "_next_check", "_tracer_follows_global")

    def __init__(self, tracer: Tracer, meter: Meter) -> None:
        api_tracer = isinstance(tracer, (ProxyTracer, NoOpTracer))
        api_meter = is_api_meter(meter)
        self._live = not (api_tracer and api_meter)
        # An explicit no-op stays one; a proxy follows the global provider.
        self._tracer_follows_global = isinstance(tracer, ProxyTracer)
        self._meter_follows_global = api_meter and not isinstance(meter, NoOpMeter)
        self._next_check = 0.0

    def idle(self) -> bool:
        """True while nothing would record a span or a measurement of ours."""
        if self._live:
            return False
        now = time.monotonic()
        if now < self._next_check:
            return True
        self._next_check = now + RECHECK_S
        if self._provider_set():
            self._live = True
            return False
        return True

    def _provider_set(self) -> bool:
        """Whether a global SDK provider has been set for one of our proxies to delegate to."""
        if self._tracer_follows_global and not isinstance(
            trace.get_tracer_provider(), _API_TRACER_PROVIDERS
        ):
            return True
        return self._meter_follows_global and not is_api_meter(metrics.get_meter_provider())
