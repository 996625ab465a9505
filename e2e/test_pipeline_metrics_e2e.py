"""The pipeline metrics of unmodified apps under ``opentelemetry-instrument``, against the real
broker: read over OTLP, and as users read them, through a real Prometheus running the queries
and alerting rules of docs/metrics.md exactly as written there.

Every app is ``apps/pipeline_step.py`` on the client under test; to cover another client, give
it an adapter there and add it to ``CLIENTS``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.apps import RunningApp, finish_app, start_app
from support.broker import Broker, create_topic, unique_topic
from support.documented_metrics import (
    UNUSED,
    DocumentedMetrics,
    all_within,
    assert_rules_evaluate,
    values_by,
)
from support.histograms import HistogramReceiver
from support.prometheus import Prometheus, Sample, check_alerts, firing
from support.receiving import WaitingReceiver

from kafka_autotrace.core.metrics import RECORD_AGE
from kafka_autotrace.tools.receiver import ReceivedMetricPoint

STEP = Path(__file__).parent / "apps" / "pipeline_step.py"
CLIENTS = ["kafka-python", "confluent-kafka", "aiokafka"]

DOC = DocumentedMetrics(("Names", "Queries", "Alerting rules"), "Alerting rules")
"""The sections of docs/metrics.md this module checks: the messaging and pipeline metrics."""

PIPELINE_AGE = "kafka_autotrace.pipeline.age"
CONSUMER_LAG = "kafka_autotrace.consumer.lag"
CONSUMED = "messaging.client.consumed.messages"
TOPIC = "messaging.destination.name"
GROUP = "messaging.consumer.group.name"
PARTITION = "messaging.destination.partition.id"
ORIGIN = "kafka_autotrace.pipeline.origin"

TRACES_OFF = {"OTEL_TRACES_SAMPLER": "always_off"}


def _options(options: dict[str, object]) -> list[str]:
    """pipeline_step.py's options from keywords: ``count=6, idle=True`` is ``--count 6 --idle``."""
    args: list[str] = []
    for name, value in options.items():
        args += [f"--{name}"] if value is True else [f"--{name}", str(value)]
    return args


def start_step(
    client: str,
    bootstrap: str,
    service: str,
    endpoint: str,
    env: dict[str, str] | None = None,
    **options: object,
) -> RunningApp:
    """``pipeline_step.py`` on ``client`` under ``opentelemetry-instrument``, not waited for."""
    args = _options(options)
    return start_app(STEP, client, bootstrap, *args, service=service, endpoint=endpoint, env=env)


def run_step(*args: Any, **kwargs: Any) -> str:
    """A step run to its end (a producer, or a consumer without ``idle``); its stdout."""
    with start_step(*args, **kwargs) as app:
        return finish_app(app, timeout=60).stdout


def positions(stdout: str) -> dict[str, int]:
    """The next offset a consumer step would take, by partition id, from its output."""
    [line] = [line for line in stdout.splitlines() if line.startswith("positions ")]
    return {str(partition): offset for partition, offset in json.loads(line[10:]).items()}


# --- a: pipeline age over three hops, with tracing off ----------------------------------------

HOPS = 6
STAGE_B_DELAY_S = 0.3


@pytest.mark.parametrize("client", CLIENTS)
def test_pipeline_age_counts_from_the_first_send_while_time_in_queue_stays_per_hop(
    client: str, bootstrap: str
) -> None:
    """producer -> stage A -> stage B (0.3 s per message) -> final consumer: at the final
    consumer every message is at least 0.3 s old counted from the producer's send, yet each
    waited only briefly in the final topic. Traces are off: the origin must travel anyway."""
    orders, picked, packed = (
        create_topic(bootstrap, unique_topic(name)) for name in ("orders", "picked", "packed")
    )
    final_group = unique_topic("final")
    with HistogramReceiver() as receiver, ExitStack() as running:

        def consumer(service: str, source: str, group: str, **options: object) -> RunningApp:
            app = start_step(
                client,
                bootstrap,
                service,
                receiver.endpoint,
                TRACES_OFF,
                count=HOPS,
                source=source,
                group=group,
                **options,
            )
            return running.enter_context(app)

        final = consumer("final", packed, final_group)
        stage_b = consumer(
            "stage-b", picked, unique_topic("b"), target=packed, delay=STAGE_B_DELAY_S
        )
        stage_a = consumer("stage-a", orders, unique_topic("a"), target=picked)
        for app in (final, stage_b, stage_a):
            app.wait_for_output("ready")
        sent = run_step(
            client, bootstrap, "producer", receiver.endpoint, TRACES_OFF, count=HOPS, target=orders
        )
        assert f"sent {HOPS}" in sent
        for app in (stage_a, stage_b, final):
            assert f"handled {HOPS}" in finish_app(app).stdout

    queued = receiver.latest(RECORD_AGE, "final", **{TOPIC: packed, GROUP: final_group})
    assert queued.count == HOPS
    assert queued.observations_up_to(0.25) == HOPS, f"time in queue {queued}"
    assert queued.maximum is None or queued.maximum < 0.25

    age = receiver.latest(PIPELINE_AGE, "final", **{TOPIC: packed})
    assert {key: age.attributes.get(key) for key in (GROUP, ORIGIN)} == {
        GROUP: final_group,
        ORIGIN: orders,
    }
    assert age.count == HOPS
    below = max(bound for bound in (0.0, *age.bounds) if bound < STAGE_B_DELAY_S)
    assert age.observations_up_to(below) == 0, f"younger than stage B's delay: {age}"
    assert age.minimum is None or age.minimum >= STAGE_B_DELAY_S


# --- b: consumer lag of a consumer that stopped taking records --------------------------------

BACKLOG_PARTITIONS = 3
BACKLOG_SENT = 600
BACKLOG_HANDLED = 60


def latest_points(
    points: list[ReceivedMetricPoint], name: str, **attributes: Any
) -> list[ReceivedMetricPoint]:
    """The points of ``name`` with these attributes from the last export that had any."""
    matching = [
        point
        for point in points
        if point.name == name
        and all(point.attributes.get(key) == value for key, value in attributes.items())
    ]
    last = max((point.time_unix_nano for point in matching), default=None)
    return [point for point in matching if point.time_unix_nano == last]


@pytest.mark.parametrize("client", CLIENTS)
def test_consumer_lag_is_the_backlog_of_every_assigned_partition(
    client: str, otlp_receiver: WaitingReceiver, bootstrap: str
) -> None:
    """600 messages over three partitions, 60 handled, then the consumer idles (paused,
    still polling, still exporting): its lag is what is left on each partition, also on one
    it may not have read from at all, 540 in all."""
    topic = create_topic(bootstrap, unique_topic("backlog"), partitions=BACKLOG_PARTITIONS)
    group = unique_topic("lagging")
    endpoint = otlp_receiver.endpoint
    sent = run_step(
        client,
        bootstrap,
        "producer",
        endpoint,
        count=BACKLOG_SENT,
        target=topic,
        partitions=BACKLOG_PARTITIONS,
    )
    assert f"sent {BACKLOG_SENT}" in sent
    lagging = start_step(
        client,
        bootstrap,
        "lagging",
        endpoint,
        count=BACKLOG_HANDLED,
        source=topic,
        group=group,
        idle=True,
    )
    with lagging as consumer:
        taken = positions(consumer.wait_for_output("idle"))
        assert sum(taken.values()) == BACKLOG_HANDLED, "a new group starts at offset 0 everywhere"

        def consumed(points: list[ReceivedMetricPoint]) -> bool:
            latest = latest_points(points, CONSUMED, **{TOPIC: topic, GROUP: group})
            return sum(point.value or 0 for point in latest) == BACKLOG_HANDLED

        otlp_receiver.wait_for_metric_points(consumed, timeout=10)

        per_partition = BACKLOG_SENT // BACKLOG_PARTITIONS
        expected = {
            str(partition): per_partition - taken.get(str(partition), 0)
            for partition in range(BACKLOG_PARTITIONS)
        }

        def lag(points: list[ReceivedMetricPoint]) -> dict[str, Any]:
            latest = latest_points(points, CONSUMER_LAG, **{TOPIC: topic, GROUP: group})
            return {point.attributes.get(PARTITION): point.value for point in latest}

        try:
            points = otlp_receiver.wait_for_metric_points(lambda got: lag(got) == expected, 10)
        except TimeoutError:
            got = lag(otlp_receiver.metric_points())
            raise AssertionError(f"lag by partition {got}, expected {expected}") from None
    latest = latest_points(points, CONSUMER_LAG, **{TOPIC: topic, GROUP: group})
    assert len(latest) == BACKLOG_PARTITIONS, "one data point per partition"
    assert sum(point.value or 0 for point in latest) == BACKLOG_SENT - BACKLOG_HANDLED


# --- c: the documented queries and alerting rules, in a real Prometheus -----------------------

SENT = 30
HANDLED = 20
PACE_S = 0.1  # spreads the sends over several scrapes, so rates see the counters move
FINAL_DELAY_S = 0.2  # the final consumer's time per message, for the same reason
QUEUED_S = 15.0
"""The most a record may wait for the final consumer, which starts taking once all are sent."""


@dataclass(frozen=True)
class Scraped:
    """A producer -> stage -> final consumer pipeline left running, scraped by Prometheus."""

    prometheus: Prometheus
    orders: str
    shipments: str
    stage_group: str
    final_group: str


@pytest.fixture(scope="module")
def scraped(broker: Broker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scraped]:
    """Module-scoped: a Prometheus and three apps take seconds to start, and each documented
    query is its own test against the same data. The stage takes all 30 messages as they are
    sent and idles; the final consumer, once they are all sent, handles 20 of them and idles,
    leaving a backlog of 10."""
    bootstrap = broker.bootstrap_servers
    orders = create_topic(bootstrap, unique_topic("orders"))
    shipments = create_topic(bootstrap, unique_topic("shipments"))
    stage_group, final_group = unique_topic("stage"), unique_topic("final")
    services = ("producer", "stage", "final")
    with ExitStack() as running:
        scraping = running.enter_context(DOC.scraping(tmp_path_factory.mktemp("rules"), services))

        def step(service: str, **options: object) -> RunningApp:
            env = scraping.envs[service]
            app = start_step("kafka-python", bootstrap, service, UNUSED, env, idle=True, **options)
            return running.enter_context(app)

        stage = step("stage", count=SENT, source=orders, group=stage_group, target=shipments)
        # A consumer knows a partition's high watermark as of its last fetch, and a paused one
        # fetches no more: the final consumer starts taking once every shipment is there to
        # fetch, then takes its time, so that its rates move over several scrapes.
        final = step(
            "final",
            count=HANDLED,
            source=shipments,
            group=final_group,
            wait=SENT * PACE_S + 1.0,
            delay=FINAL_DELAY_S,
            batch=1,
        )
        for app in (stage, final):
            app.wait_for_output("ready")
        producer = step("producer", count=SENT, target=orders, pace=PACE_S)
        producer.wait_for_output(f"sent {SENT}")
        for app in (stage, final):
            app.wait_for_output("idle")
        yield Scraped(scraping.prometheus, orders, shipments, stage_group, final_group)


def _hops(p: Scraped) -> set[tuple[str, str]]:
    return {(p.orders, p.stage_group), (p.shipments, p.final_group)}


def _sent_rates(p: Scraped, samples: list[Sample]) -> bool:
    """Above zero (the counters were seen to move) and at most SENT a second: a rate."""
    return all_within(values_by(samples, TOPIC), {p.orders, p.shipments}, 0, SENT)


def _consumed_rates(p: Scraped, samples: list[Sample]) -> bool:
    return all_within(values_by(samples, TOPIC, GROUP), _hops(p), 0, SENT)


def _sent_totals(p: Scraped, samples: list[Sample]) -> bool:
    return values_by(samples, TOPIC) == {p.orders: SENT, p.shipments: SENT}


def _consumed_totals(p: Scraped, samples: list[Sample]) -> bool:
    expected = {(p.orders, p.stage_group): SENT, (p.shipments, p.final_group): HANDLED}
    return values_by(samples, TOPIC, GROUP) == expected


def _queue_p99(p: Scraped, samples: list[Sample]) -> bool:
    """The stage kept up with the producer: well under a second; the final consumer's records
    waited for it to start."""
    got = values_by(samples, TOPIC, GROUP)
    return all_within(got, _hops(p), 0, QUEUED_S) and got[(p.orders, p.stage_group)] <= 1.0


def _send_p99(p: Scraped, samples: list[Sample]) -> bool:
    """Both topics were sent to, and acknowledged well within the histogram's last bucket."""
    return all_within(values_by(samples, TOPIC), {p.orders, p.shipments}, 0, 10)


def _pipeline_p99(p: Scraped, samples: list[Sample]) -> bool:
    """Everything descends from the producer's sends to orders: one origin, no older than the
    final consumer's wait plus the sending wherever it is processed."""
    return all_within(values_by(samples, ORIGIN), {p.orders}, 0, QUEUED_S + SENT * PACE_S)


def _lag(p: Scraped, samples: list[Sample]) -> bool:
    return values_by(samples, GROUP) == {p.stage_group: 0, p.final_group: SENT - HANDLED}


EXPECTED: dict[str, Callable[[Scraped, list[Sample]], bool]] = {
    "Messages sent per second, by topic": _sent_rates,
    "Messages consumed per second, by topic and consumer group": _consumed_rates,
    "Messages sent, by topic": _sent_totals,
    "Messages consumed, by topic and consumer group": _consumed_totals,
    "Time in queue per hop, p99": _queue_p99,
    "Send latency to the acknowledgement, p99, by topic": _send_p99,
    "Pipeline age per origin, p99": _pipeline_p99,
    "Lag per consumer group": _lag,
}
"""What each documented query must give for the scraped pipeline, by its name in the docs."""


def test_every_documented_query_is_checked() -> None:
    DOC.assert_all_checked(EXPECTED)


@pytest.mark.parametrize("name", EXPECTED)
def test_documented_query_gives_the_right_numbers(scraped: Scraped, name: str) -> None:
    """The query exactly as the docs give it, on what Prometheus scraped from the apps."""
    DOC.wait_for_query(scraped.prometheus, name, lambda got: EXPECTED[name](scraped, got), 15)


@pytest.mark.parametrize("metric", DOC.series)
def test_documented_series_are_what_prometheus_scrapes(scraped: Scraped, metric: str) -> None:
    """The names in the docs' table are what users search for: each must be scraped."""
    DOC.wait_for_series(scraped.prometheus, metric)


OPERATIONS_QUERY = (
    "count by (__name__, messaging_operation_name, messaging_operation_type) "
    '({__name__=~"messaging_client_sent_messages_total|'
    "messaging_client_consumed_messages_total|messaging_client_operation_duration_seconds_count|"
    'messaging_process_duration_seconds_count"})'
)


def test_operations_are_named_on_the_metrics_as_on_the_spans(scraped: Scraped) -> None:
    """A receive is ``poll`` on the consumed counter and the duration as on its span; only the
    duration names the operation's type (the meter's schema URL is checked by the contract
    suite: older Prometheus exporters leave it off the series)."""
    expected = {
        ("messaging_client_sent_messages_total", "send", None),
        ("messaging_client_consumed_messages_total", "poll", None),
        ("messaging_client_operation_duration_seconds_count", "send", "send"),
        ("messaging_client_operation_duration_seconds_count", "poll", "receive"),
        ("messaging_process_duration_seconds_count", "process", None),
    }
    scraped.prometheus.wait_for(
        OPERATIONS_QUERY,
        lambda got: (
            {
                (
                    s.labels["__name__"],
                    s.labels.get("messaging_operation_name"),
                    s.labels.get("messaging_operation_type"),
                )
                for s in got
            }
            == expected
        ),
    )


def test_documented_alerting_rules_load_and_evaluate(scraped: Scraped) -> None:
    """Prometheus accepts the rules and evaluates them on the real series without an error."""
    assert_rules_evaluate(scraped.prometheus, {"KafkaConsumerLagGrowing", "KafkaPipelineAgeHigh"})


def test_documented_alerts_fire_only_as_described(tmp_path: Path) -> None:
    """promtool's rule unit tests, on made-up series covering the minutes a live test cannot:
    lag that keeps growing fires after 10 minutes, not before; steady lag, or lag that stopped
    growing, does not; an origin whose records are 1 to 5 minutes old fires after 5 minutes,
    one whose records are under a second old does not."""
    text = DOC.rules_text
    rules = {
        rule["alert"]: rule for group in yaml.safe_load(text)["groups"] for rule in group["rules"]
    }

    def lag(group: str, values: str) -> dict[str, str]:
        labels = f'messaging_consumer_group_name="{group}",messaging_destination_name="orders"'
        return {"series": f"kafka_autotrace_consumer_lag{{{labels}}}", "values": values}

    def ages(origin: str, le: str) -> list[dict[str, str]]:
        """Ten records a minute from ``origin``, all in the bucket that ends at ``le``."""
        buckets = ("1", "60", "300", "+Inf")
        return [
            {
                "series": "kafka_autotrace_pipeline_age_seconds_bucket"
                f'{{kafka_autotrace_pipeline_origin="{origin}",le="{bound}"}}',
                "values": "0+10x40" if index >= buckets.index(le) else "0x40",
            }
            for index, bound in enumerate(buckets)
        ]

    lag_alert, age_alert = "KafkaConsumerLagGrowing", "KafkaPipelineAgeHigh"
    check_alerts(
        tmp_path,
        text,
        {
            "input_series": [
                lag("falling-behind", "0+10x40"),
                lag("steady", "5x40"),
                lag("caught-up", "0+10x10 100x30"),
                *ages("slow", "300"),
                *ages("fast", "1"),
            ],
            "alert_rule_test": [
                {"eval_time": "9m", "alertname": lag_alert, "exp_alerts": []},
                {
                    "eval_time": "20m",
                    "alertname": lag_alert,
                    "exp_alerts": [
                        firing(rules[lag_alert], messaging_consumer_group_name="falling-behind")
                    ],
                },
                {"eval_time": "4m", "alertname": age_alert, "exp_alerts": []},
                {
                    "eval_time": "20m",
                    "alertname": age_alert,
                    "exp_alerts": [
                        firing(rules[age_alert], kafka_autotrace_pipeline_origin="slow")
                    ],
                },
            ],
        },
    )
