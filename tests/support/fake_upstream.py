"""A stand-in for an upstream contrib instrumentor, to test taking over from one without
installing it: it only records whether it is instrumenting."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from opentelemetry.instrumentation.instrumentor import (  # type: ignore[attr-defined]
    BaseInstrumentor,
)


class FakeUpstreamInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    tracing = False

    def instrumentation_dependencies(self) -> Collection[str]:
        return ()

    def _instrument(self, **kwargs: Any) -> None:
        type(self).tracing = True

    def _uninstrument(self, **kwargs: Any) -> None:
        type(self).tracing = False
