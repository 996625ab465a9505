"""librdkafka's statistics, tapped: every traced confluent-kafka client keeps the latest
statistics JSON librdkafka emitted, for the metric reader to parse when metrics are exported.

librdkafka emits its statistics every ``statistics.interval.ms`` through ``stats_cb``, a
callback served by the application's own ``poll()``/``flush()``/``consume()``. At
construction of a traced Producer or Consumer we pass our callback (a
:class:`StatisticsTap`) in place of the application's, and the tap calls the application's
(or a framework's, as Quix Streams passes one) with every callback and the very same string,
letting its return value and exceptions through as before. The tap only keeps the string:
parsing waits until a metric export asks (:meth:`StatisticsTap.latest`), once per string.

When the application did not set ``statistics.interval.ms`` we set
:data:`DEFAULT_INTERVAL_MS`; when it did, its interval stays (0 turns the statistics off, and
with them every figure bridged from them).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

_logger = logging.getLogger(__name__)

INTERVAL = "statistics.interval.ms"
CALLBACK = "stats_cb"

DEFAULT_INTERVAL_MS = 15_000
"""librdkafka's windowed figures (``int_latency``, ``rtt``, ``batchsize``) average over one
interval, so the interval is both their window and their staleness. 15 s keeps a reading
fresher than the SDK's default export interval (60 s) and than any export interval people
commonly set (15 to 60 s), covers a window comparable with the Java client's
(``metrics.sample.window.ms`` 30 s), and costs four JSON documents a minute per client (CPU in
docs/performance.md)."""


class StatisticsTap:
    """One client's ``stats_cb``: keeps the latest statistics JSON, calls the application's."""

    __slots__ = ("_chained", "_earlier", "_good", "_latest", "_parsed", "_parsed_from")

    def __init__(self, chained: Any = None) -> None:
        self._chained = chained
        """The application's own ``stats_cb``, None without one."""
        self._latest: str | None = None
        self._parsed_from: str | None = None
        self._parsed: dict[str, Any] | None = None
        self._good: dict[str, Any] | None = None
        """The last statistics that parsed."""
        self._earlier: dict[str, Any] | None = None

    def __call__(self, stats_json: str) -> Any:
        self._latest = stats_json
        if self._chained is not None:
            return self._chained(stats_json)
        return None

    def latest(self) -> dict[str, Any] | None:
        """The latest statistics, parsed (once per JSON string); None before the first or
        when it is not a JSON object."""
        latest = self._latest
        if latest is None:
            return None
        if latest is not self._parsed_from:
            parsed: dict[str, Any] | None = None
            try:
                value = json.loads(latest)
                parsed = value if isinstance(value, dict) else None
            except (TypeError, ValueError):
                _logger.debug("kafka-autotrace: unreadable librdkafka statistics", exc_info=True)
            if parsed is not None:
                self._earlier, self._good = self._good, parsed
            self._parsed, self._parsed_from = parsed, latest
        return self._parsed

    def earlier(self) -> dict[str, Any] | None:
        """The good statistics :meth:`latest` parsed before the last good ones (the window of
        figures computed from two readings: as long as the export interval, or longer)."""
        return self._earlier


def tap_statistics(
    args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any], StatisticsTap | None]:
    """The constructor arguments with our tap as ``stats_cb`` (and the default interval when
    none is set), in the place the application put its configuration; the application's own
    containers are left untouched. Unchanged, with no tap, when there is no configuration to
    extend (confluent-kafka raises on it as before) or the ``stats_cb`` given is not callable
    (confluent-kafka rejects it as before)."""
    in_args = bool(args) and isinstance(args[0], Mapping)
    if not in_args and not kwargs:
        return args, kwargs, None
    config: dict[str, Any] = dict(args[0]) if in_args else {}
    config.update(kwargs)
    chained = config.get(CALLBACK)
    if chained is not None and not callable(chained):
        return args, kwargs, None
    tap = StatisticsTap(chained)
    added: dict[str, Any] = {CALLBACK: tap}
    if INTERVAL not in config:
        added[INTERVAL] = DEFAULT_INTERVAL_MS
    if CALLBACK in kwargs or not in_args:
        return args, {**kwargs, **added}, tap
    return ({**args[0], **added}, *args[1:]), kwargs, tap
