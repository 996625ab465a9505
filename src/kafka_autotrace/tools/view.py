"""``kafka-autotrace view``: a local OTLP/HTTP endpoint that prints each trace as a waterfall.

Why: during development, seeing whether messages are linked end to end should take one
command, not a Jaeger deployment. Apps export to this endpoint with their real OTLP exporter
(``OTEL_EXPORTER_OTLP_ENDPOINT``), so what is shown is what a backend would receive.

Spans of one trace come from several processes, each exporting on its own schedule (every
``OTEL_BSP_SCHEDULE_DELAY``, 5 s by default). So a trace is printed only once no new span has
arrived for it for a quiet period; if more spans arrive later, it is printed again, marked as
updated, rather than being silently wrong.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Callable, NamedTuple

from kafka_autotrace.tools.receiver import OtlpReceiver, ReceivedSpan
from kafka_autotrace.tools.waterfall import UNICODE, Glyphs, TraceView, consumed_span_ids

__all__ = ["ReadyTrace", "TraceAssembler", "watch"]


@dataclass
class _Trace:
    spans: list[ReceivedSpan] = field(default_factory=list)
    last_arrival: float = 0.0
    printed: int = 0
    """How many of ``spans`` were in the last printed waterfall; 0 before the first."""


class ReadyTrace(NamedTuple):
    view: TraceView
    updated: bool
    """An earlier waterfall of this trace was already shown; this one has more spans."""


class TraceAssembler:
    """Groups arriving spans by trace and says which traces are ready to print.

    The clock is passed in (``now``), so the logic is testable without sleeping. A trace is
    kept for ``retention`` seconds after its last span so that late spans update it and so
    that consumers in ``link`` mode (which live in another trace) still count for the MISSING
    check; after that it is forgotten, which bounds memory in long sessions.
    """

    def __init__(self, quiet_period: float, retention: float = 60.0) -> None:
        self.quiet_period = quiet_period
        self.retention = max(retention, quiet_period)
        self._traces: dict[str, _Trace] = {}

    def add(self, spans: Iterable[ReceivedSpan], now: float) -> None:
        for span in spans:
            trace = self._traces.setdefault(span.trace_id, _Trace())
            trace.spans.append(span)
            trace.last_arrival = now

    def ready(self, now: float, flush: bool = False) -> list[ReadyTrace]:
        """Traces quiet for the quiet period (every trace with ``flush``) that have spans not
        printed yet, oldest first; each is then counted as printed."""
        due = []
        for trace_id, trace in list(self._traces.items()):
            quiet_for = now - trace.last_arrival
            if len(trace.spans) > trace.printed and (flush or quiet_for >= self.quiet_period):
                due.append(trace)
            elif trace.printed and quiet_for >= self.retention:
                del self._traces[trace_id]
        if not due:
            return []
        consumed = consumed_span_ids(s for trace in self._traces.values() for s in trace.spans)
        ready = []
        for trace in due:
            ready.append(ReadyTrace(TraceView.build(trace.spans, consumed), trace.printed > 0))
            trace.printed = len(trace.spans)
        return sorted(ready, key=lambda item: item.view.start_ns)


def watch(
    receiver: OtlpReceiver,
    write: Callable[[str], None],
    assembler: TraceAssembler,
    duration: float | None = None,
    once: bool = False,
    glyphs: Glyphs = UNICODE,
) -> int:
    """Print waterfalls of the traces ``receiver`` gets until ``duration`` seconds pass, the
    first traces were printed (``once``), or Ctrl-C; then print whatever is still pending.

    Returns how many waterfalls were printed.
    """
    clock = time.monotonic
    deadline = None if duration is None else clock() + duration
    tick = min(max(assembler.quiet_period / 4, 0.05), 0.5)
    printed = 0
    try:
        while not (once and printed):
            now = clock()
            if deadline is not None and now >= deadline:
                break
            wait = tick if deadline is None else min(tick, deadline - now)
            assembler.add(receiver.take_spans(wait), clock())
            printed += _print(assembler.ready(clock()), write, glyphs)
    except KeyboardInterrupt:
        pass
    assembler.add(receiver.take_spans(), clock())
    return printed + _print(assembler.ready(clock(), flush=True), write, glyphs)


def _print(ready: list[ReadyTrace], write: Callable[[str], None], glyphs: Glyphs) -> int:
    for view, updated in ready:
        write(view.render(glyphs, note="updated" if updated else "") + "\n\n")
    return len(ready)
