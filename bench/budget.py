"""What histogram measurements cost with and without kafka-autotrace's measurement budget.

    python bench/budget.py                    # 1k, 10k and 100k measurements/s, 3 s each
    python bench/budget.py --rates 1000 50000 --seconds 2 --budget 500

For each rate, a histogram of a real SDK ``MeterProvider`` (with an ``InMemoryMetricReader``,
collected once at the end) gets measurements with one attribute set, paced to the rate: small
bursts, with a sleep whenever the calls are ahead of the clock. Once plainly (``record()`` on
the SDK's histogram) and once through ``BudgetedHistogram(histogram, budget)``
(``kafka_autotrace.core.budget``), each in a fresh provider. Only the calls are timed, in CPU
time of this thread (``time.thread_time``), and the figure printed is CPU seconds spent in
``record()`` per wall second: unbudgeted it grows with the rate (until one core is spent and
the rate is no longer reached), budgeted it should stay bounded, since above the budget only
``budget`` measurements a second reach the SDK and the rest cost a counter increment.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from kafka_autotrace.core.budget import BudgetedHistogram
from kafka_autotrace.core.settings import DEFAULT_HISTOGRAM_BUDGET

ATTRIBUTES = {
    "messaging.system": "kafka",
    "messaging.operation.name": "process",
    "messaging.destination.name": "orders",
    "messaging.consumer.group.name": "billing",
    "server.address": "127.0.0.1",
    "server.port": 9092,
}
"""The attributes of a processed record's histograms; one dict, as the core caches them."""
TICK_S = 0.001
"""Bursts are sized for a millisecond of the rate."""


def run(rate: int, seconds: float, budget: int | None) -> dict[str, Any]:
    """``rate`` measurements a second for ``seconds``, through the budget if one is given."""
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    histogram: Any = provider.get_meter("bench.budget").create_histogram(
        "messaging.process.duration", unit="s"
    )
    if budget is not None:
        histogram = BudgetedHistogram(histogram, budget)
    record, attributes = histogram.record, ATTRIBUTES
    burst = max(1, int(rate * TICK_S))
    done, cpu = 0, 0.0
    started = time.perf_counter()
    while True:
        elapsed = time.perf_counter() - started
        if elapsed >= seconds:
            break
        due = int(rate * elapsed) - done
        if due <= 0:
            time.sleep(TICK_S)
            continue
        count = min(due, burst)
        before = time.thread_time()
        for _ in range(count):
            record(0.001, attributes)
        cpu += time.thread_time() - before
        done += count
    wall = time.perf_counter() - started
    recorded = 0
    data = reader.get_metrics_data()
    if data is not None:
        for resource in data.resource_metrics:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    recorded += sum(getattr(point, "count", 0) for point in metric.data.data_points)
    provider.shutdown()
    return {
        "rate": rate,
        "budget": budget,
        "calls": done,
        "achieved_per_s": done / wall,
        "recorded": recorded,
        "cpu_per_wall_s": cpu / wall,
        "us_per_call": cpu / done * 1e6 if done else 0.0,
    }


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument("--seconds", type=float, default=3.0, help="per rate and mode")
    parser.add_argument(
        "--budget",
        type=int,
        default=DEFAULT_HISTOGRAM_BUDGET,
        help="measurements a second per attribute set (kafka-autotrace's default)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    print(
        f"histogram record(), {len(ATTRIBUTES)} attributes, {args.seconds:g} s per rate; budget "
        f"{args.budget}/s. CPU s/s: CPU seconds in record() per wall second (this thread)."
    )
    print()
    print(
        "| target /s | mode | achieved /s | measurements recorded | CPU s/s in record() "
        "| CPU µs per call |"
    )
    print("|--:|---|--:|--:|--:|--:|")
    for rate in args.rates:
        for budget in (None, args.budget):
            result = run(rate, args.seconds, budget)
            mode = "unbudgeted" if budget is None else f"budgeted ({budget}/s)"
            if result["achieved_per_s"] < 0.95 * rate:
                mode += ": rate not reached"
            print(
                f"| {rate:,} | {mode} | {result['achieved_per_s']:,.0f} | {result['recorded']:,} "
                f"| {result['cpu_per_wall_s']:.4f} | {result['us_per_call']:.2f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
