"""Keeping a consumer's process span current while the application handles the message.

A consumer hands a message to the application by *returning* it, so the process span cannot
be a ``with`` block: it is made current when the message is returned and ended at the
consumer's next poll/next/consume/close. That next call may come from another thread or
another asyncio task than the one that attached the context, where detaching would corrupt or
log errors; :class:`ProcessScope` detaches only where it attached, and always ends the span.
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
_ATTACHED_MARKER: contextvars.ContextVar[object] = contextvars.ContextVar(
    "kafka_autotrace_attached", default=None
)


def is_suppressed() -> bool:
    """True inside an instrumented call, so that nested instrumented calls (an iterator built
    on poll(), a serializing producer built on produce()) create no second span."""
    return _SUPPRESSED.get()


class _Suppression:
    """The context manager :func:`suppressed` returns: a plain class, because it wraps every
    record a kafka-python iterator returns, where a generator-based one costs three times as
    much."""

    __slots__ = ("_token",)

    def __enter__(self) -> None:
        self._token = _SUPPRESSED.set(True)

    def __exit__(self, *exc_info: object) -> None:
        _SUPPRESSED.reset(self._token)


def suppressed() -> _Suppression:
    """``with suppressed():`` marks the calls inside as nested in an instrumented one."""
    return _Suppression()


class ProcessScope:
    """A process span made current in the calling context, ended exactly once.

    ``on_end`` gets the seconds the scope was open: how long the application held the record.
    """

    __slots__ = ("_ended", "_marker_token", "_on_end", "_span", "_started", "_token")

    def __init__(self, span: Span, context: Context, on_end: Callable[[float], None]) -> None:
        """Attach ``context`` (which holds ``span``) to the calling thread or task."""
        self._span = span
        self._on_end = on_end
        self._ended = False
        self._started = time.perf_counter()
        self._token = otel_context.attach(context)
        # A private variable set in the same context: resetting it succeeds only in the
        # context that attached, which is exactly where the OpenTelemetry token may detach.
        self._marker_token = _ATTACHED_MARKER.set(self)

    def end(self) -> None:
        if self._ended:
            return
        self._ended = True
        try:
            _ATTACHED_MARKER.reset(self._marker_token)
        except ValueError:
            pass  # another thread or task: its context was never ours to restore
        else:
            otel_context.detach(self._token)
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
