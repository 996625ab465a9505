"""Keeping a consumer's process span current while the application handles its record
(:class:`ProcessScope`, one open per consumer in :class:`ConsumerScopes`), and suppressing
nested instrumented calls. Why a scope detaches only where it attached: docs/design.md,
"Keeping the process span current".
"""

from __future__ import annotations

import contextvars
import logging
import time
from typing import Callable

from opentelemetry import context as otel_context
from opentelemetry.context import Context
from opentelemetry.trace import Span

_logger = logging.getLogger(__name__)

_SUPPRESSED: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "kafka_autotrace_suppressed", default=False
)
_ATTACHED_MARKER: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "kafka_autotrace_attached", default=False
)
_TOP: contextvars.ContextVar[tuple[Context, Context] | None] = contextvars.ContextVar(
    "kafka_autotrace_top_scope", default=None
)
"""The context the last scope attached here and the application context below it."""


is_suppressed: Callable[[], bool] = _SUPPRESSED.get
"""True inside an instrumented call, so that nested instrumented calls (an iterator built
on poll(), a serializing producer built on produce()) create no second span. The context
variable's own getter, asked on every call: no Python function around it."""


class Suppressed:
    """``with Suppressed():`` marks the calls inside as nested in an instrumented one. A plain
    class, made directly: it wraps every record a kafka-python iterator returns, where a
    generator-based context manager costs three times as much, and a factory one call more."""

    __slots__ = ("_token",)

    def __enter__(self) -> None:
        self._token = _SUPPRESSED.set(True)

    def __exit__(self, *exc_info: object) -> None:
        _SUPPRESSED.reset(self._token)


class ProcessScope:
    """A process span made current in the calling context, ended exactly once.

    ``on_end`` gets the seconds the scope was open: how long the application held the record.
    """

    __slots__ = (
        "_base",
        "_context",
        "_ended",
        "_marker_token",
        "_on_end",
        "_over",
        "_span",
        "_started",
        "_token",
    )

    def __init__(self, span: Span, context: Context, on_end: Callable[[float], None]) -> None:
        """Attach ``context`` (which holds ``span``) to the calling thread or task."""
        self._span = span
        self._on_end = on_end
        self._ended = False
        self._started = time.perf_counter()
        current = otel_context.get_current()
        top = _TOP.get()
        # On top of another consumer's scope, restore what that one would have restored.
        self._base = top[1] if top is not None and top[0] is current else current
        # Detaching restores ``current``: the base only unless stacked on another scope.
        self._over = self._base is not current
        self._context = context
        self._token = otel_context.attach(context)
        _TOP.set((context, self._base))
        # A private variable set in the same context: resetting it succeeds only in the
        # context that attached, which is exactly where the OpenTelemetry token may detach.
        self._marker_token = _ATTACHED_MARKER.set(True)

    @property
    def span(self) -> Span:
        return self._span

    def end(self) -> None:
        if self._ended:
            return
        self._ended = True
        try:
            _ATTACHED_MARKER.reset(self._marker_token)
        except ValueError:
            pass  # another thread or task: its context was never ours to restore
        else:
            if otel_context.get_current() is self._context:
                otel_context.detach(self._token)
                if self._over:
                    otel_context.attach(self._base)
            # else a scope attached later is current: it restores the base when it ends.
        self._span.end()
        self._on_end(time.perf_counter() - self._started)


class ConsumerScopes:
    """The process span a consumer currently holds open; one per consumer instance."""

    __slots__ = ("_current",)

    def __init__(self) -> None:
        self._current: ProcessScope | None = None

    def enter(self, scope: ProcessScope) -> None:
        self.finish()
        self._current = scope

    def finish(self) -> None:
        """End the open process span, if any. Safe from any thread, and more than once."""
        scope, self._current = self._current, None
        if scope is None:
            return
        try:
            scope.end()
        except Exception:
            _logger.debug("ending a process span failed", exc_info=True)
