"""What every kafka-autotrace instrumentor shares: dependency check, telemetry set-up, undo,
and taking over from the upstream contrib instrumentor of the same client (docs/design.md,
"Taking over from the upstream instrumentations"). Each client is described once, in
:mod:`kafka_autotrace.clients.registry`, read here through :class:`ClientFacts`.
"""

from __future__ import annotations

import abc
import importlib
import importlib.util
import logging
from collections.abc import Collection, Mapping
from typing import Any, Callable, ClassVar, Protocol

from opentelemetry import metrics, trace
from opentelemetry.instrumentation.dependencies import get_dependency_conflicts
from opentelemetry.instrumentation.instrumentor import (  # type: ignore[attr-defined]
    BaseInstrumentor,
)
from opentelemetry.instrumentation.utils import unwrap
from wrapt import wrap_function_wrapper

from kafka_autotrace.core.disabled import DisabledInstrumentations
from kafka_autotrace.core.settings import Settings
from kafka_autotrace.core.telemetry import KafkaTelemetry, TelemetrySlot
from kafka_autotrace.version import __version__

_logger = logging.getLogger(__name__)

try:
    from opentelemetry.semconv.schemas import Schemas

    SCHEMA_URL: str = Schemas.V1_44_0.value
except (ImportError, AttributeError):  # the package before 0.66b0 names no later schema
    SCHEMA_URL = "https://opentelemetry.io/schemas/1.44.0"
"""The semantic conventions our telemetry follows, on our tracer and meter."""


class UpstreamFacts(Protocol):
    """What the take-over needs to know of the contrib instrumentor of the same client."""

    @property
    def module(self) -> str: ...

    @property
    def class_name(self) -> str: ...

    @property
    def entry_point(self) -> str: ...

    @property
    def distribution(self) -> str: ...


class ClientFacts(Protocol):
    """What an instrumentor needs to know of its client library."""

    @property
    def distribution(self) -> str: ...

    @property
    def requirement(self) -> str: ...

    @property
    def entry_point(self) -> str: ...

    @property
    def upstream(self) -> UpstreamFacts: ...


def _stand_aside(**kwargs: Any) -> None:
    """The upstream instrumentor's ``_instrument`` and ``_uninstrument`` while we trace."""


class KafkaClientInstrumentor(BaseInstrumentor, abc.ABC):  # type: ignore[misc]
    """Base of the per-client instrumentors.

    ``instrument()`` accepts the usual ``tracer_provider`` and ``meter_provider``, plus
    ``settings`` (a :class:`~kafka_autotrace.core.settings.Settings`; default: from the
    environment), ``produce_hook(span, topic, key, value)`` and ``consume_hook(span, record)``.
    """

    client: ClientFacts
    telemetry_slot: TelemetrySlot
    """Where the adapter's wrappers find the telemetry while this instrumentor is on."""
    _upstream_instance: Any = None
    """The upstream instrumentor we stood aside while we trace, to restore on uninstrument."""

    def instrumentation_dependencies(self) -> Collection[str]:
        return (self.client.requirement,)

    def _instrument(self, **kwargs: Any) -> None:
        conflict = get_dependency_conflicts([self.client.requirement])
        if conflict is not None:
            if conflict.found is None:
                _logger.debug("kafka-autotrace: %s is not installed", self.client.requirement)
            else:
                _logger.warning(
                    "kafka-autotrace: %s is not supported (need %s); its messages are not traced",
                    conflict.found,
                    conflict.required,
                )
            return
        tracer = trace.get_tracer(
            "kafka_autotrace",
            __version__,
            tracer_provider=kwargs.get("tracer_provider"),
            schema_url=SCHEMA_URL,
        )
        meter = metrics.get_meter(
            "kafka_autotrace",
            __version__,
            meter_provider=kwargs.get("meter_provider"),
            schema_url=SCHEMA_URL,
        )
        settings = kwargs.get("settings") or Settings.from_env()
        telemetry = KafkaTelemetry(
            tracer,
            meter,
            settings,
            produce_hook=kwargs.get("produce_hook"),
            consume_hook=kwargs.get("consume_hook"),
        )
        try:
            self._take_over_from_upstream()
        except Exception:
            _logger.warning(
                "kafka-autotrace: could not take over from %s; messages may be traced twice",
                self.client.upstream.distribution,
                exc_info=True,
            )
        self.telemetry_slot.telemetry = telemetry
        self._patch()

    def _uninstrument(self, **kwargs: Any) -> None:
        self._unpatch()
        self.telemetry_slot.telemetry = None
        upstream, self._upstream_instance = self._upstream_instance, None
        if upstream is not None:
            for name in ("_instrument", "_uninstrument"):
                upstream.__dict__.pop(name, None)
            upstream._is_instrumented_by_opentelemetry = False

    def _take_over_from_upstream(self) -> None:
        """Stand the upstream instrumentor aside, unless it is not installed or is disabled."""
        upstream = self.client.upstream
        if DisabledInstrumentations.from_env().disables(upstream.entry_point) or (
            importlib.util.find_spec(upstream.module) is None
        ):
            return
        # BaseInstrumentor is a per-class singleton: this is the instance opentelemetry-instrument
        # has instrumented, or will.
        instance = getattr(importlib.import_module(upstream.module), upstream.class_name)()
        was_tracing = instance.is_instrumented_by_opentelemetry
        if was_tracing:
            instance.uninstrument()
        instance._instrument = instance._uninstrument = _stand_aside
        self._upstream_instance = instance
        client = self.client.distribution
        _logger.warning(
            "kafka-autotrace: %s is installed too and %s; kafka-autotrace alone traces %s, so "
            "that no message is traced twice. To use %s instead, set "
            "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=%s; to keep this choice without this "
            "message, set it to %s",
            upstream.distribution,
            "was tracing: it has been switched off" if was_tracing else "will not trace",
            client,
            upstream.distribution,
            self.client.entry_point,
            upstream.entry_point,
        )

    @abc.abstractmethod
    def _patch(self) -> None:
        """Wrap the client's methods; called once per ``instrument()``."""

    @abc.abstractmethod
    def _unpatch(self) -> None:
        """Restore exactly what :meth:`_patch` replaced; harmless when nothing was patched."""


Wrappers = Mapping[str, Mapping[str, Callable[..., Any]]]
"""Per class name of a module, per method name, the wrapper (``(call, client, args, kwargs)``)."""


class MethodWrappingInstrumentor(KafkaClientInstrumentor):
    """An instrumentor for a client whose classes can be patched in place: ``wrappers`` names,
    per class of ``module``, the methods to wrap (with wrapt, so clients created before
    instrumentation are traced too) and ``uninstrument()`` unwraps exactly those."""

    module: ClassVar[str]
    wrappers: ClassVar[Wrappers]

    def _patch(self) -> None:
        module = importlib.import_module(self.module)
        for class_name, methods in self.wrappers.items():
            cls = getattr(module, class_name)
            for method, wrapper in methods.items():
                if hasattr(cls, method):  # methods of later releases are left out of earlier
                    wrap_function_wrapper(cls, method, wrapper)

    def _unpatch(self) -> None:
        try:
            module = importlib.import_module(self.module)
        except ImportError:
            return
        for class_name, methods in self.wrappers.items():
            for method in methods:
                unwrap(getattr(module, class_name), method)
