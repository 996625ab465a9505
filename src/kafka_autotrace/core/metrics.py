"""The messaging metrics: semantic-convention names and units, recommended buckets as advice.

The two message counters are observable: counted here, reported when the SDK collects. A
synchronous ``Counter.add`` costs as much as a histogram measurement in the SDK (it cleans and
hashes the attributes on every call), which per message was the largest single cost after the
span itself; the exported data (a monotonic sum per attribute set) is the same.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from opentelemetry.metrics import CallbackOptions, Meter, Observation
from opentelemetry.semconv._incubating.metrics.messaging_metrics import (
    MESSAGING_CLIENT_CONSUMED_MESSAGES,
    MESSAGING_CLIENT_OPERATION_DURATION,
    MESSAGING_CLIENT_SENT_MESSAGES,
    MESSAGING_PROCESS_DURATION,
)
from opentelemetry.util.types import AttributeValue

from kafka_autotrace.core.budget import BudgetedHistogram
from kafka_autotrace.core.client_metrics import ClientMetrics
from kafka_autotrace.core.gaps import CONSUMER_SKIPPED
from kafka_autotrace.core.groups import GroupInstruments
from kafka_autotrace.core.lag import CONSUMER_LAG, ConsumerLag
from kafka_autotrace.core.memo import remember
from kafka_autotrace.core.sdk import is_api_meter

# The bucket boundaries the messaging semantic conventions recommend for duration histograms.
DURATION_BUCKETS_S = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
)  # fmt: skip

# Time in queue spans milliseconds (a live pipeline) to hours (a consumer catching up).
AGE_BUCKETS_S = (
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
    900.0, 3600.0, 14400.0, 86400.0,
)  # fmt: skip

RECORD_AGE = "kafka_autotrace.record.age"
"""Not a semantic convention: how long a record waited between its timestamp and the start of
its processing. It is the time-in-queue figure that end-to-end latency hides."""
PIPELINE_AGE = "kafka_autotrace.pipeline.age"
"""Not a semantic convention: how long since the message's pipeline began (the first send of
the chain of messages it descends from) when its processing starts: "time to glass"."""


class MessageCount:
    """A monotonic count per attribute set, reported by an observable counter.

    Callers pass the same few attribute dicts over and over (the core caches them per topic),
    so each dict is mapped to its count once, by identity; equal dicts share one count.
    """

    __slots__ = ("_by_content", "_by_identity", "_lock")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # [attributes, count] per attribute set, and per dict identity (the dict itself is
        # kept with it, so its id cannot be reused while the entry exists).
        self._by_content: dict[frozenset[tuple[str, AttributeValue]], list[Any]] = {}
        self._by_identity: dict[int, tuple[Mapping[str, AttributeValue], list[Any]]] = {}

    def add(self, amount: int, attributes: Mapping[str, AttributeValue]) -> None:
        """Count ``amount`` messages; ``attributes`` must not change afterwards."""
        known = self._by_identity.get(id(attributes))
        with self._lock:
            if known is None or known[0] is not attributes:
                known = self._remember(attributes)
            known[1][1] += amount

    def _remember(
        self, attributes: Mapping[str, AttributeValue]
    ) -> tuple[Mapping[str, AttributeValue], list[Any]]:
        """Called with the lock held."""
        key = frozenset(attributes.items())
        cell = self._by_content.get(key)
        if cell is None:
            cell = self._by_content[key] = [attributes, 0]
        # Dicts made per call (error types) fill the memo: the counts stay.
        return remember(self._by_identity, id(attributes), (attributes, cell))

    def observe(self, options: CallbackOptions) -> Iterable[Observation]:
        with self._lock:
            entries = [(attributes, count) for attributes, count in self._by_content.values()]
        return [Observation(count, attributes) for attributes, count in entries]


class _ApiMeters:
    """The sharing key of every meter of the API itself (proxies and no-op meters)."""


_API_METERS = _ApiMeters()
_SHARED: weakref.WeakKeyDictionary[object, MessagingInstruments] = weakref.WeakKeyDictionary()
_SHARED_LOCK = threading.Lock()


def _sharing_key(meter: Meter) -> object:
    """Instrumentors whose meters resolve to the same SDK meter must share instruments.

    Asking a meter for an observable counter it already has returns the first one, with the
    first callbacks only, so a second set of counts would never be reported. The SDK returns
    one meter per scope, so its meters are their own key. Before an SDK is installed, each
    instrumentor gets its own API proxy meter, all of which later resolve to the same SDK
    meter: they share one key.
    """
    if is_api_meter(meter):
        return _API_METERS
    return meter


@dataclass(frozen=True)
class MessagingInstruments:
    operation_duration: BudgetedHistogram
    sent_messages: MessageCount
    consumed_messages: MessageCount
    process_duration: BudgetedHistogram
    record_age: BudgetedHistogram
    pipeline_age: BudgetedHistogram
    consumer_lag: ConsumerLag
    skipped_messages: MessageCount
    client_metrics: ClientMetrics

    @classmethod
    def create(cls, meter: Meter, histogram_budget: int) -> MessagingInstruments:
        """The instruments of ``meter``, shared with every instrumentor that uses it (with
        the histogram budget of the first)."""
        key = _sharing_key(meter)
        with _SHARED_LOCK:
            try:
                instruments = _SHARED.get(key)
            except TypeError:  # a meter that cannot be weakly referenced: not shared
                return cls._create(meter, histogram_budget)
            if instruments is None:
                instruments = _SHARED[key] = cls._create(meter, histogram_budget)
            return instruments

    @classmethod
    def _create(cls, meter: Meter, histogram_budget: int) -> MessagingInstruments:
        sent, consumed, lag = MessageCount(), MessageCount(), ConsumerLag()
        skipped = MessageCount()
        client_metrics = ClientMetrics()
        client_metrics.register(meter)

        def seconds(name: str, description: str, buckets: Sequence[float]) -> BudgetedHistogram:
            histogram = meter.create_histogram(
                name,
                unit="s",
                description=description,
                explicit_bucket_boundaries_advisory=buckets,
            )
            return BudgetedHistogram(histogram, histogram_budget)

        meter.create_observable_counter(
            MESSAGING_CLIENT_SENT_MESSAGES,
            callbacks=[sent.observe],
            unit="{message}",
            description="Messages the producer attempted to send to the broker.",
        )
        meter.create_observable_counter(
            MESSAGING_CLIENT_CONSUMED_MESSAGES,
            callbacks=[consumed.observe],
            unit="{message}",
            description="Messages handed to the application by the consumer.",
        )
        meter.create_observable_gauge(
            CONSUMER_LAG,
            callbacks=[lag.observe],
            unit="{message}",
            description="Messages in an assigned partition not yet handed to the application.",
        )
        GroupInstruments(meter, lag)
        meter.create_observable_counter(
            CONSUMER_SKIPPED,
            callbacks=[skipped.observe],
            unit="{message}",
            description="Messages the broker deleted before the consumer group read them.",
        )
        return cls(
            operation_duration=seconds(
                MESSAGING_CLIENT_OPERATION_DURATION,
                "Duration of a send (until the broker acknowledged it) or a receive.",
                DURATION_BUCKETS_S,
            ),
            sent_messages=sent,
            consumed_messages=consumed,
            process_duration=seconds(
                MESSAGING_PROCESS_DURATION,
                "Time the application spent handling one message.",
                DURATION_BUCKETS_S,
            ),
            record_age=seconds(
                RECORD_AGE,
                "Time between a record's timestamp and the start of its processing.",
                AGE_BUCKETS_S,
            ),
            pipeline_age=seconds(
                PIPELINE_AGE,
                "Time since the first send of the message's pipeline, when its processing starts.",
                AGE_BUCKETS_S,
            ),
            consumer_lag=lag,
            skipped_messages=skipped,
            client_metrics=client_metrics,
        )
