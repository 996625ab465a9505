"""The histogram budget: exact below it, a bounded, evenly spread sample above it, and the
message counters exact whatever the rate. Time is a clock the tests move."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider

from kafka_autotrace import Settings
from kafka_autotrace.core import settings as settings_module
from kafka_autotrace.core.budget import BudgetedHistogram
from kafka_autotrace.core.client import ClientInfo
from kafka_autotrace.core.telemetry import KafkaTelemetry

BUDGET = 100


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Recorded:
    """What a histogram was handed."""

    def __init__(self) -> None:
        self.values: list[float] = []

    def record(self, amount: float, attributes: Any = None, context: Any = None) -> None:
        self.values.append(amount)


def _stream(histogram: BudgetedHistogram, clock: Clock, rate: int, seconds: int) -> list[float]:
    """``rate`` measurements a second for ``seconds``, evenly spread; their values in order."""
    attributes = {"messaging.destination.name": "orders"}
    values = []
    for index in range(rate * seconds):
        clock.now = 1000.0 + index / rate
        histogram.record(float(index), attributes)
        values.append(float(index))
    return values


def test_below_the_budget_every_measurement_is_recorded() -> None:
    clock, recorded = Clock(), Recorded()
    sent = _stream(BudgetedHistogram(recorded, BUDGET, clock), clock, rate=BUDGET - 1, seconds=5)
    assert recorded.values == sent


@pytest.mark.parametrize("rate", [BUDGET * 10, BUDGET * 100])
def test_above_the_budget_at_most_the_budget_a_second_spread_evenly(rate: int) -> None:
    clock, recorded = Clock(), Recorded()
    seconds = 5
    sent = _stream(BudgetedHistogram(recorded, BUDGET, clock), clock, rate, seconds)
    assert len(recorded.values) <= BUDGET * seconds
    assert len(recorded.values) >= BUDGET * (seconds - 1), "from the second second on"
    # After the first second the sample is systematic: its mean is the stream's.
    later = [value for value in recorded.values if value >= rate]
    stream_mean = sum(sent[rate:]) / len(sent[rate:])
    assert abs(sum(later) / len(later) - stream_mean) < 0.02 * stream_mean


def test_a_budget_of_0_records_everything() -> None:
    clock, recorded = Clock(), Recorded()
    sent = _stream(BudgetedHistogram(recorded, 0, clock), clock, rate=BUDGET * 10, seconds=2)
    assert recorded.values == sent


def test_attribute_sets_have_budgets_of_their_own() -> None:
    clock, recorded = Clock(), Recorded()
    histogram = BudgetedHistogram(recorded, BUDGET, clock)
    quiet, busy = {"t": "quiet"}, {"t": "busy"}
    for _ in range(BUDGET * 10):
        histogram.record(1.0, busy)
    histogram.record(2.0, quiet)
    assert recorded.values.count(2.0) == 1


def test_message_counters_stay_exact_past_the_budget() -> None:
    reader = InMemoryMetricReader()
    telemetry = KafkaTelemetry(
        TracerProvider().get_tracer("t"),
        MeterProvider(metric_readers=[reader]).get_meter("budget-test"),
        Settings(histogram_budget=10),
    )
    client = ClientInfo()
    for _ in range(500):
        pending = telemetry.start_send(client, "orders", None, b"v", None, None)
        assert pending is not None
        pending.succeed(0, 1)
    points: dict[str, Any] = {}
    data = reader.get_metrics_data()
    for resource in data.resource_metrics if data else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                points[metric.name] = metric.data.data_points[0]
    assert points["messaging.client.sent.messages"].value == 500
    assert points["messaging.client.operation.duration"].count <= 20


def test_the_budget_is_read_from_the_environment() -> None:
    assert Settings.from_env({}).histogram_budget == settings_module.DEFAULT_HISTOGRAM_BUDGET
    assert Settings.from_env({settings_module.ENV_HISTOGRAM_BUDGET: "0"}).histogram_budget == 0
    assert Settings.from_env({settings_module.ENV_HISTOGRAM_BUDGET: "-3"}).histogram_budget == (
        settings_module.DEFAULT_HISTOGRAM_BUDGET
    )
