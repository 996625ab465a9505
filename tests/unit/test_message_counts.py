"""The observable message counters: counted locally, reported as the SDK collects them.

They replaced synchronous counters for speed, so what they export must be what the
synchronous counters exported: one monotonic sum per attribute set, whichever dict objects
carried the attributes, and nothing lost when two instrumentors share a meter.
"""

from __future__ import annotations

import threading
from typing import Any

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from kafka_autotrace.core.memo import MEMO_LIMIT
from kafka_autotrace.core.metrics import MessageCount, MessagingInstruments


def _observed(count: MessageCount) -> dict[frozenset[tuple[str, Any]], int]:
    return {
        frozenset((observation.attributes or {}).items()): int(observation.value)
        for observation in count.observe(CallbackOptions())
    }


def test_equal_attribute_dicts_share_one_count() -> None:
    count = MessageCount()
    first = {"messaging.destination.name": "orders", "error.type": "TimeoutError"}
    count.add(1, first)
    count.add(2, first)
    count.add(4, dict(first))  # equal content, another object
    count.add(8, {"messaging.destination.name": "payments"})
    assert _observed(count) == {
        frozenset(first.items()): 7,
        frozenset({("messaging.destination.name", "payments")}): 8,
    }


def test_counts_survive_the_identity_memo_starting_over() -> None:
    count = MessageCount()
    for _ in range(MEMO_LIMIT + 10):
        count.add(1, {"error.type": "X"})  # a new dict every time, as for failures
    assert _observed(count) == {frozenset({("error.type", "X")}): MEMO_LIMIT + 10}


def test_concurrent_adds_are_not_lost() -> None:
    count = MessageCount()
    attributes = {"messaging.destination.name": "orders"}

    def add() -> None:
        for _ in range(20_000):
            count.add(1, attributes)

    threads = [threading.Thread(target=add) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert _observed(count) == {frozenset(attributes.items()): 80_000}


def _sums(reader: InMemoryMetricReader, name: str) -> list[int]:
    data = reader.get_metrics_data()
    return [
        int(point.value)
        for resource_metrics in (data.resource_metrics if data else ())
        for scope_metrics in resource_metrics.scope_metrics
        for metric in scope_metrics.metrics
        if metric.name == name
        for point in metric.data.data_points
    ]


def test_instrumentors_sharing_a_meter_report_every_count() -> None:
    """The SDK hands a second ``create_observable_counter`` the first instrument, with only
    the first callbacks, so both instrumentors must count into the same place."""
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    meter = provider.get_meter("kafka_autotrace")
    first = MessagingInstruments.create(meter, 0)
    second = MessagingInstruments.create(provider.get_meter("kafka_autotrace"), 0)
    first.sent_messages.add(1, {"messaging.destination.name": "t"})
    second.sent_messages.add(2, {"messaging.destination.name": "t"})
    assert _sums(reader, "messaging.client.sent.messages") == [3]


def test_proxy_meters_resolving_to_one_sdk_meter_report_every_count() -> None:
    proxy_provider = metrics.get_meter_provider()
    first = MessagingInstruments.create(proxy_provider.get_meter("kafka_autotrace"), 0)
    second = MessagingInstruments.create(proxy_provider.get_meter("kafka_autotrace"), 0)
    assert first is second


def test_separate_providers_keep_separate_counts() -> None:
    readers = [InMemoryMetricReader(), InMemoryMetricReader()]
    instruments = [
        MessagingInstruments.create(MeterProvider(metric_readers=[reader]).get_meter("k"), 0)
        for reader in readers
    ]
    instruments[0].consumed_messages.add(1, {"messaging.destination.name": "t"})
    instruments[1].consumed_messages.add(5, {"messaging.destination.name": "t"})
    assert [_sums(reader, "messaging.client.consumed.messages") for reader in readers] == [
        [1],
        [5],
    ]
