"""The clients' own statistics of unmodified apps under ``opentelemetry-instrument``, scraped
by a real Prometheus with the SDK's Prometheus exporter: the names in docs/metrics.md's table
are what Prometheus gets, and its queries and alerting rule run exactly as written there.

A kafka-python app and a confluent-kafka app (``apps/client_figures.py``) each keep producing,
``linger.ms`` 20, at a pace that never fills a batch, and consuming what they produce.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from support.apps import RunningApp, start_app
from support.broker import Broker, create_topic, unique_topic
from support.documented_metrics import (
    UNUSED,
    DocumentedMetrics,
    all_within,
    assert_rules_evaluate,
    values_by,
)
from support.prometheus import Prometheus, Sample, check_alerts, firing

APP = Path(__file__).parent / "apps" / "client_figures.py"
LINGER_MS = 20
DOC = DocumentedMetrics(
    ("Client statistics", "Client statistics: queries", "Client statistics: alerting rules"),
    "Alerting rules: client statistics",
)
ALERT = "KafkaProducerQueueTimeNearLinger"
PRODUCERS = {"kp-producer", "ck-producer"}
CONSUMERS = {"kp-consumer", "ck-consumer"}


@dataclass(frozen=True)
class Scraped:
    prometheus: Prometheus
    apps: dict[str, RunningApp]


@pytest.fixture(scope="module")
def scraped(broker: Broker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scraped]:
    bootstrap = broker.bootstrap_servers
    clients = ("kafka-python", "confluent-kafka")
    with ExitStack() as running:
        scraping = running.enter_context(DOC.scraping(tmp_path_factory.mktemp("rules"), clients))
        apps = {}
        for client in clients:
            topic = create_topic(bootstrap, unique_topic(f"figures-{client}"))
            app = start_app(
                APP,
                client,
                bootstrap,
                topic,
                str(LINGER_MS),
                service=client,
                endpoint=UNUSED,
                env=scraping.envs[client],
            )
            apps[client] = running.enter_context(app)
        for app in apps.values():
            app.wait_for_output("running")
        yield Scraped(scraping.prometheus, apps)


def _by_client(samples: list[Sample]) -> dict[str, float]:
    return values_by(samples, "client_id")


def _queue_time(samples: list[Sample]) -> bool:
    """kafka-python's batches close on linger.ms: each waits about that long (well over 1 ms,
    under a second)."""
    return all_within(_by_client(samples), {"kp-producer"}, 1, 1000)


def _queue_latency(samples: list[Sample]) -> bool:
    return all_within(_by_client(samples), {"ck-producer"}, 1, 1000)


def _batch_size(samples: list[Sample]) -> bool:
    """At least one 100-byte record per batch, far from a full batch (16 KiB or 1 MB)."""
    return all_within(_by_client(samples), PRODUCERS, 100, 16_384)


def _records_per_fetch(samples: list[Sample]) -> bool:
    return all_within(_by_client(samples), CONSUMERS, 0, 10_000)


def _request_latency(samples: list[Sample]) -> bool:
    """Every client, per broker (one here), from a request's send to its response."""
    got = {(s.labels["client_id"], s.labels["node_id"]) for s in samples}
    return {client for client, _ in got} == PRODUCERS | CONSUMERS and all(
        math.isfinite(s.value) and s.value >= 0 for s in samples
    )


def _failed_deliveries(samples: list[Sample]) -> bool:
    """A healthy broker: no delivery failed, seen as a rate (kafka-python keeps one) or as the
    rate of a total (confluent-kafka's, counted by us)."""
    return _by_client(samples) == {"kp-producer": 0, "ck-producer": 0}


EXPECTED: dict[str, Callable[[list[Sample]], bool]] = {
    "Producer queue time per client": _queue_time,
    "Producer message queue latency per client": _queue_latency,
    "Producer batch size per client": _batch_size,
    "Records per fetch per consumer": _records_per_fetch,
    "Request latency per client and broker": _request_latency,
    "Failed deliveries per second, per producer": _failed_deliveries,
}


def test_every_documented_query_is_checked() -> None:
    DOC.assert_all_checked(EXPECTED)


@pytest.mark.parametrize("name", EXPECTED)
def test_documented_query_gives_plausible_numbers(scraped: Scraped, name: str) -> None:
    DOC.wait_for_query(scraped.prometheus, name, EXPECTED[name], 30)


@pytest.mark.parametrize("metric", DOC.series)
def test_documented_series_are_what_prometheus_scrapes(scraped: Scraped, metric: str) -> None:
    DOC.wait_for_series(scraped.prometheus, metric, 30)


def test_the_applications_stats_cb_still_gets_the_statistics(scraped: Scraped) -> None:
    """Both confluent-kafka clients passed their own stats_cb: it keeps being called."""
    app = scraped.apps["confluent-kafka"]
    app.wait_for_output("stats 4")


def test_documented_alerting_rule_loads_and_fires_on_the_lingering_producers(
    scraped: Scraped,
) -> None:
    """Both producers' batches close on linger.ms: the rule's condition holds for both (it
    fires only after 10 minutes, which promtool checks below)."""
    assert_rules_evaluate(scraped.prometheus, {ALERT})
    scraped.prometheus.wait_for_rules(
        lambda rules: (
            {alert["labels"]["client_id"] for alert in rules[0].get("alerts", [])} == PRODUCERS
        ),
        30,
    )


def test_documented_alert_fires_only_as_described(tmp_path: Path) -> None:
    """promtool's rule unit tests: a producer whose records wait about linger.ms (20 ms) for
    10 minutes fires, per client, whichever figure it has (per batch, or librdkafka's per
    message, half as long); one whose batches fill before linger.ms (queue time a few ms) does
    not, nor does a lingering one before 10 minutes."""
    text = DOC.rules_text
    [rule] = [rule for group in yaml.safe_load(text)["groups"] for rule in group["rules"]]

    def series(metric: str, client: str, values: str) -> dict[str, str]:
        return {"series": f'{metric}{{job="apps",client_id="{client}"}}', "values": values}

    batch, message = (
        "kafka_producer_record_queue_time_avg",
        "kafka_autotrace_producer_queue_latency_avg",
    )
    check_alerts(
        tmp_path,
        text,
        {
            "input_series": [
                series(batch, "lingering", "19x30"),
                series(batch, "filling", "3x30"),
                series(message, "lingering-rd", "10x30"),
                series(message, "filling-rd", "2x30"),
            ],
            "alert_rule_test": [
                {"eval_time": "9m", "alertname": ALERT, "exp_alerts": []},
                {
                    "eval_time": "20m",
                    "alertname": ALERT,
                    "exp_alerts": [
                        firing(rule, job="apps", client_id="lingering"),
                        firing(rule, job="apps", client_id="lingering-rd"),
                    ],
                },
            ],
        },
    )
