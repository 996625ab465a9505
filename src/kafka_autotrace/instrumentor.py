"""What every kafka-autotrace instrumentor shares: dependency check, telemetry set-up, undo.

``opentelemetry-instrument`` checks the ``instruments`` extra of a distribution as a whole, so a
package that declared both Kafka clients there would be skipped whenever only one is installed.
Each instrumentor therefore checks its own client's version when it instruments, and says
clearly (once, in the log) when and why it stands aside.
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Collection
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.instrumentation.dependencies import get_dependency_conflicts
from opentelemetry.instrumentation.instrumentor import (  # type: ignore[attr-defined]
    BaseInstrumentor,
)

from kafka_autotrace.settings import Settings
from kafka_autotrace.telemetry import KafkaTelemetry
from kafka_autotrace.version import __version__

_logger = logging.getLogger(__name__)


class KafkaClientInstrumentor(BaseInstrumentor, abc.ABC):  # type: ignore[misc]
    """Base of the per-client instrumentors.

    ``instrument()`` accepts the usual ``tracer_provider`` and ``meter_provider``, plus
    ``settings`` (a :class:`~kafka_autotrace.settings.Settings`; default: from the
    environment), ``produce_hook(span, topic, key, value)`` and ``consume_hook(span, record)``.
    """

    requirement: str
    """The supported range of the client distribution, e.g. ``"kafka-python >= 2.0.2, < 4"``."""

    def instrumentation_dependencies(self) -> Collection[str]:
        return (self.requirement,)

    def _instrument(self, **kwargs: Any) -> None:
        conflict = get_dependency_conflicts([self.requirement])
        if conflict is not None:
            if conflict.found is None:
                _logger.debug("kafka-autotrace: %s is not installed", self.requirement)
            else:
                _logger.warning(
                    "kafka-autotrace: %s is not supported (need %s); its messages are not traced",
                    conflict.found,
                    conflict.required,
                )
            return
        tracer = trace.get_tracer(
            "kafka_autotrace", __version__, tracer_provider=kwargs.get("tracer_provider")
        )
        meter = metrics.get_meter(
            "kafka_autotrace", __version__, meter_provider=kwargs.get("meter_provider")
        )
        settings = kwargs.get("settings") or Settings.from_env()
        telemetry = KafkaTelemetry(
            tracer,
            meter,
            settings,
            produce_hook=kwargs.get("produce_hook"),
            consume_hook=kwargs.get("consume_hook"),
        )
        self._patch(telemetry)

    def _uninstrument(self, **kwargs: Any) -> None:
        self._unpatch()

    @abc.abstractmethod
    def _patch(self, telemetry: KafkaTelemetry) -> None:
        """Wrap the client's methods; called once per ``instrument()``."""

    @abc.abstractmethod
    def _unpatch(self) -> None:
        """Restore exactly what :meth:`_patch` replaced; harmless when nothing was patched."""
