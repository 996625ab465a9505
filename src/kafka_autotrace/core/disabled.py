"""Which instrumentations ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS`` switches off, read as
``opentelemetry-instrument`` reads it: comma-separated entry point names, ``*`` for all."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from opentelemetry.instrumentation.environment_variables import (
    OTEL_PYTHON_DISABLED_INSTRUMENTATIONS,
)

EVERY = "*"


@dataclass(frozen=True)
class DisabledInstrumentations:
    names: frozenset[str]

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> DisabledInstrumentations:
        env = os.environ if environ is None else environ
        raw = env.get(OTEL_PYTHON_DISABLED_INSTRUMENTATIONS, "")
        return cls(frozenset(name.strip() for name in raw.split(",") if name.strip()))

    def disabling(self, entry_point: str) -> str | None:
        """The entry of the variable that switches ``entry_point`` off, None when none does."""
        if EVERY in self.names:
            return EVERY
        return entry_point if entry_point in self.names else None

    def disables(self, entry_point: str) -> bool:
        return self.disabling(entry_point) is not None
