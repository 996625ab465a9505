"""The receiver the tests read: :class:`~kafka_autotrace.tools.receiver.OtlpReceiver` and
waiting for a condition on what it received, since exporters batch and send asynchronously."""

from __future__ import annotations

import time
from typing import Callable, TypeVar

from kafka_autotrace.tools.receiver import OtlpReceiver, ReceivedMetricPoint, ReceivedSpan

_T = TypeVar("_T")


class WaitingReceiver(OtlpReceiver):
    """Tests wait for a *condition* rather than sleep for a guessed time; on timeout the error
    lists what did arrive, which is usually enough to see why the condition never held."""

    def __enter__(self) -> WaitingReceiver:
        self.start()
        return self

    def wait_for_spans(
        self, predicate: Callable[[list[ReceivedSpan]], bool], timeout: float = 10.0
    ) -> list[ReceivedSpan]:
        """Block until ``predicate(spans)`` holds, then return that snapshot."""
        return self._wait(self.spans, predicate, timeout, "spans", _describe_span)

    def wait_for_metric_points(
        self, predicate: Callable[[list[ReceivedMetricPoint]], bool], timeout: float = 10.0
    ) -> list[ReceivedMetricPoint]:
        """Like :meth:`wait_for_spans`, for metric points (which arrive once per interval)."""
        return self._wait(self.metric_points, predicate, timeout, "metric points", _describe_point)

    def _wait(
        self,
        snapshot: Callable[[], list[_T]],
        predicate: Callable[[list[_T]], bool],
        timeout: float,
        what: str,
        describe: Callable[[_T], str],
    ) -> list[_T]:
        deadline = time.monotonic() + timeout
        while True:
            version = self.version
            items = snapshot()
            # The predicate runs outside the lock: it is caller code and may be slow.
            if predicate(items):
                return items
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(self._timeout_summary(items, timeout, what, describe))
            self.wait_for_change(version, remaining)

    def _timeout_summary(
        self, items: list[_T], timeout: float, what: str, describe: Callable[[_T], str]
    ) -> str:
        limit = 40
        lines = [f"timed out after {timeout:g} s waiting for {what}; received {len(items)}:"]
        lines += [f"  {describe(item)}" for item in items[:limit]]
        if len(items) > limit:
            lines.append(f"  ... and {len(items) - limit} more")
        rejections = self.rejections()
        if rejections:
            lines.append(f"rejected {len(rejections)} request(s), last: {rejections[-1]}")
        return "\n".join(lines)


def _describe_span(span: ReceivedSpan) -> str:
    parent = span.parent_span_id or "root"
    return (
        f"[{span.service_name}] {span.kind} {span.name!r} status={span.status_code} "
        f"trace={span.trace_id} span={span.span_id} parent={parent}"
    )


def _describe_point(point: ReceivedMetricPoint) -> str:
    shown = f"value={point.value}" if point.value is not None else f"count={point.count}"
    return f"[{point.service_name}] {point.kind} {point.name} {shown} {point.attributes}"
