"""Configuration read from ``KAFKA_AUTOTRACE_*`` environment variables.

Every setting is optional. The defaults give the span model of the design: trace context is
propagated and continued, the message key is recorded, nothing else from the message is.
A malformed value falls back to the default with a warning instead of stopping the
application, because configuration mistakes must never take a service down; :meth:`Settings.read`
returns those problems as data (for the doctor).
"""

from __future__ import annotations

import enum
import fnmatch
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from kafka_autotrace.core.memo import remember

_logger = logging.getLogger(__name__)

ENV_CAPTURE_HEADERS = "KAFKA_AUTOTRACE_CAPTURE_HEADERS"
ENV_CAPTURE_HEADERS_EXCLUDE = "KAFKA_AUTOTRACE_CAPTURE_HEADERS_EXCLUDE"
ENV_CAPTURE_KEY = "KAFKA_AUTOTRACE_CAPTURE_KEY"
ENV_CAPTURE_BODY_SIZE = "KAFKA_AUTOTRACE_CAPTURE_BODY_SIZE"
ENV_CAPTURE_CLIENT = "KAFKA_AUTOTRACE_CAPTURE_CLIENT"
ENV_EXCLUDE_TOPICS = "KAFKA_AUTOTRACE_EXCLUDE_TOPICS"
ENV_INCOMING_CONTEXT = "KAFKA_AUTOTRACE_INCOMING_CONTEXT"
ENV_PROPAGATE = "KAFKA_AUTOTRACE_PROPAGATE"
ENV_BATCH_PROCESS_SPANS = "KAFKA_AUTOTRACE_BATCH_PROCESS_SPANS"
ENV_MAX_INFLIGHT_SPANS = "KAFKA_AUTOTRACE_MAX_INFLIGHT_SPANS"
ENV_HISTOGRAM_BUDGET = "KAFKA_AUTOTRACE_HISTOGRAM_BUDGET"
ENV_CLIENT_METRICS = "KAFKA_AUTOTRACE_CLIENT_METRICS"
ENV_METRIC_PARTITIONS = "KAFKA_AUTOTRACE_METRIC_PARTITIONS"
VARIABLES: Mapping[str, str] = {
    "capture_headers": ENV_CAPTURE_HEADERS,
    "capture_headers_exclude": ENV_CAPTURE_HEADERS_EXCLUDE,
    "capture_key": ENV_CAPTURE_KEY,
    "capture_body_size": ENV_CAPTURE_BODY_SIZE,
    "capture_client": ENV_CAPTURE_CLIENT,
    "exclude_topics": ENV_EXCLUDE_TOPICS,
    "incoming_context": ENV_INCOMING_CONTEXT,
    "propagate": ENV_PROPAGATE,
    "batch_process_spans": ENV_BATCH_PROCESS_SPANS,
    "max_inflight_spans": ENV_MAX_INFLIGHT_SPANS,
    "histogram_budget": ENV_HISTOGRAM_BUDGET,
    "client_metrics": ENV_CLIENT_METRICS,
    "metric_partitions": ENV_METRIC_PARTITIONS,
}
"""The environment variable of each setting, in the order of :class:`Settings`' fields."""

DEFAULT_MAX_INFLIGHT_SPANS = 100_000
"""librdkafka's default ``queue.buffering.max.messages``: one producer at its default limit never
reaches the cap, while a client that can hold far more unacknowledged messages (a large
``buffer_memory``, an outage) cannot make the SDK hold a span for each of them."""
DEFAULT_HISTOGRAM_BUDGET = 500
"""Measurements a second per histogram and attribute set: more than an ordinary service makes,
and few enough that a busy one spends a bounded share of its CPU on them."""
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class IncomingContext(enum.Enum):
    """What a consumer does with the trace context found in a message's headers."""

    PARENT = "parent"
    """The producer's span becomes the parent: one trace across producer and consumer."""
    LINK = "link"
    """The process span starts from the ambient context and only links to the producer, so an
    untrusted producer cannot choose the trace or force sampling."""
    IGNORE = "ignore"
    """Headers are not read at all."""


@dataclass(frozen=True)
class Settings:
    """The effective configuration; build it with :meth:`from_env` or directly in code."""

    capture_headers: tuple[str, ...] = ()
    """Globs of the header names recorded as ``messaging.header.<name>`` span attributes."""
    capture_headers_exclude: tuple[str, ...] = ()
    """Globs of header names never recorded, even when :attr:`capture_headers` matches them."""
    capture_key: bool = True
    capture_body_size: bool = False
    capture_client: bool = False
    """``messaging.client.id`` and ``server.port`` on every span: the same on all spans of a
    client, and the resource (``service.name``, ``service.instance.id``) already says which
    process sent them."""
    exclude_topics: tuple[str, ...] = ()
    incoming_context: IncomingContext = IncomingContext.PARENT
    propagate: bool = True
    batch_process_spans: bool = True
    max_inflight_spans: int = DEFAULT_MAX_INFLIGHT_SPANS
    """At most this many send spans wait for the broker's acknowledgement at once; sends past it
    get no span of their own (see :meth:`KafkaTelemetry.start_send
    <kafka_autotrace.core.telemetry.KafkaTelemetry.start_send>`)."""
    histogram_budget: int = DEFAULT_HISTOGRAM_BUDGET
    """At most this many measurements a second per histogram and attribute set, sampled evenly
    above it; 0 records all (see :mod:`kafka_autotrace.core.budget`)."""
    client_metrics: bool = True
    """Whether the clients' own statistics are bridged (see
    :mod:`kafka_autotrace.core.client_metrics`); off, confluent-kafka clients are constructed
    with the application's configuration unchanged."""
    metric_partitions: bool = False
    """``messaging.destination.partition.id`` on the messaging metrics: one series per partition
    instead of per topic, which the conventions recommend and most dashboards do not need."""
    _excluded_cache: dict[str, bool] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    _captured_cache: dict[str, bool] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """The settings ``environ`` (default: the process environment) gives; each value
        that had to be ignored is logged as a warning."""
        settings, problems = cls.read(environ)
        for problem in problems.values():
            _logger.warning("%s", problem)
        return settings

    @classmethod
    def read(cls, environ: Mapping[str, str] | None = None) -> tuple[Settings, dict[str, str]]:
        """The settings ``environ`` gives, and per variable whose value was ignored (the
        default used instead) the reason why."""
        env = _Environment(os.environ if environ is None else environ)
        settings = cls(
            capture_headers=env.names(ENV_CAPTURE_HEADERS),
            capture_headers_exclude=env.names(ENV_CAPTURE_HEADERS_EXCLUDE),
            capture_key=env.flag(ENV_CAPTURE_KEY, True),
            capture_body_size=env.flag(ENV_CAPTURE_BODY_SIZE, False),
            capture_client=env.flag(ENV_CAPTURE_CLIENT, False),
            exclude_topics=env.names(ENV_EXCLUDE_TOPICS),
            incoming_context=env.incoming_context(ENV_INCOMING_CONTEXT),
            propagate=env.flag(ENV_PROPAGATE, True),
            batch_process_spans=env.flag(ENV_BATCH_PROCESS_SPANS, True),
            max_inflight_spans=env.count(ENV_MAX_INFLIGHT_SPANS, DEFAULT_MAX_INFLIGHT_SPANS),
            histogram_budget=env.count(ENV_HISTOGRAM_BUDGET, DEFAULT_HISTOGRAM_BUDGET),
            client_metrics=env.flag(ENV_CLIENT_METRICS, True),
            metric_partitions=env.flag(ENV_METRIC_PARTITIONS, False),
        )
        return settings, env.problems

    def is_excluded(self, topic: str) -> bool:
        """Whether ``topic`` matches one of the excluded globs; memoised per topic because it
        is asked once per message."""
        if not self.exclude_topics:
            return False
        excluded = self._excluded_cache.get(topic)
        if excluded is None:
            excluded = any(fnmatch.fnmatchcase(topic, glob) for glob in self.exclude_topics)
            remember(self._excluded_cache, topic, excluded)
        return excluded

    def captures_header(self, name: str) -> bool:
        """Whether the header ``name`` is recorded: it matches a glob of
        :attr:`capture_headers` and none of :attr:`capture_headers_exclude` (names are
        case-sensitive, as Kafka's are); memoised per name."""
        captured = self._captured_cache.get(name)
        if captured is None:
            captured = any(fnmatch.fnmatchcase(name, glob) for glob in self.capture_headers) and (
                not any(fnmatch.fnmatchcase(name, glob) for glob in self.capture_headers_exclude)
            )
            remember(self._captured_cache, name, captured)
        return captured


class _Environment:
    """Reads settings from an environment mapping, noting each value it had to ignore."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env
        self.problems: dict[str, str] = {}

    def names(self, name: str) -> tuple[str, ...]:
        raw = self._env.get(name, "")
        return tuple(part.strip() for part in raw.split(",") if part.strip())

    def flag(self, name: str, default: bool) -> bool:
        raw = self._env.get(name, "").strip().lower()
        if not raw:
            return default
        if raw in _TRUE:
            return True
        if raw in _FALSE:
            return False
        self.problems[name] = f"{name}={raw!r} is not a boolean; using {default}"
        return default

    def count(self, name: str, default: int) -> int:
        raw = self._env.get(name, "").strip()
        if not raw:
            return default
        try:
            value = int(raw)
        except ValueError:
            value = -1
        if value >= 0:
            return value
        self.problems[name] = f"{name}={raw!r} is not a whole number >= 0; using {default}"
        return default

    def incoming_context(self, name: str) -> IncomingContext:
        raw = self._env.get(name, "")
        value = raw.strip().lower()
        if not value:
            return IncomingContext.PARENT
        try:
            return IncomingContext(value)
        except ValueError:
            self.problems[name] = f"{name}={raw!r} is not one of parent, link, ignore; using parent"
            return IncomingContext.PARENT
