"""Whether an OpenTelemetry SDK stands behind our tracer and meter (:class:`SdkPresence`);
without one the core only carries the trace context on (docs/design.md, "Without an SDK").
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

    __slots__ = (
        "_api_meter",
        "_live",
        "_meter_follows_global",
        "_next_check",
        "_tracer_follows_global",
    )

    def __init__(self, tracer: Tracer, meter: Meter) -> None:
        api_tracer = isinstance(tracer, (ProxyTracer, NoOpTracer))
        api_meter = is_api_meter(meter)
        self._live = not (api_tracer and api_meter)
        self._api_meter = api_meter
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

    def meter_records(self) -> bool:
        """Whether our meter's measurements are recorded now (an SDK meter, or a proxy with a
        global SDK meter provider to delegate to)."""
        if not self._api_meter:
            return True
        return self._meter_follows_global and not is_api_meter(metrics.get_meter_provider())

    def _provider_set(self) -> bool:
        """Whether a global SDK provider has been set for one of our proxies to delegate to."""
        if self._tracer_follows_global and not isinstance(
            trace.get_tracer_provider(), _API_TRACER_PROVIDERS
        ):
            return True
        return self._meter_follows_global and not is_api_meter(metrics.get_meter_provider())
