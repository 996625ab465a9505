"""The consumer-group and polling metrics of unmodified apps under ``opentelemetry-instrument``,
as users read them: a real Prometheus scrapes one consumer per client and runs the queries and
alerting rules of docs/metrics.md's "Consumer groups and polling" section exactly as written
there; promtool's rule unit tests show when each alert fires.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from support.broker import Broker, create_topic, unique_topic
from support.documented_metrics import (
    UNUSED,
    DocumentedMetrics,
    all_within,
    assert_rules_evaluate,
    values_by,
)
from support.prometheus import Prometheus, Sample, check_alerts, firing
from test_pipeline_metrics_e2e import CLIENTS, start_step

DOC = DocumentedMetrics(("Consumer groups and polling",), "Alerting rules: consumer groups")
PARTITIONS = 3
GROUP = "messaging.consumer.group.name"
CHANGE = "kafka_autotrace.rebalance.change"
POLL_ALERT, LOST_ALERT = "KafkaConsumerPollIntervalNearLimit", "KafkaConsumerPartitionsLost"


@dataclass(frozen=True)
class Scraped:
    """One idle consumer per client (its group named after the client), each owning the three
    partitions of its topic and polling every 0.2 s, scraped by Prometheus."""

    prometheus: Prometheus
    groups: set[str]


@pytest.fixture(scope="module")
def scraped(broker: Broker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scraped]:
    bootstrap = broker.bootstrap_servers
    groups = {client: unique_topic(client) for client in CLIENTS}
    with ExitStack() as running:
        scraping = running.enter_context(DOC.scraping(tmp_path_factory.mktemp("rules"), CLIENTS))
        apps = []
        for client in CLIENTS:
            topic = create_topic(bootstrap, unique_topic("polled"), partitions=PARTITIONS)
            env = scraping.envs[client]
            app = start_step(
                client, bootstrap, client, UNUSED, env, count=0, source=topic,
                group=groups[client], idle=True,
            )  # fmt: skip
            apps.append(running.enter_context(app))
        for app in apps:
            app.wait_for_output("idle")
        yield Scraped(scraping.prometheus, set(groups.values()))


def _last_poll(p: Scraped, samples: list[Sample]) -> bool:
    """Each idle consumer polls every 0.2 s: seconds, never minutes."""
    return all_within(values_by(samples, GROUP), p.groups, -1, 5)


def _owned(p: Scraped, samples: list[Sample]) -> bool:
    return values_by(samples, GROUP) == dict.fromkeys(p.groups, PARTITIONS)


def _rebalances(p: Scraped, samples: list[Sample]) -> bool:
    """Each joined its group once (a second rebalance, if its first assignment came back
    empty, would be right too)."""
    return all_within(values_by(samples, GROUP), p.groups, 0, 2)


def _changes(p: Scraped, samples: list[Sample]) -> bool:
    """All three partitions assigned to each; nothing revoked or lost."""
    got = values_by(samples, GROUP, CHANGE)
    expected = {(group, change) for group in p.groups for change in ("assigned", "revoked")}
    expected |= {(group, "lost") for group in p.groups}
    return (
        set(got) == expected
        and all(got[(group, "assigned")] >= PARTITIONS for group in p.groups)
        and all(got[(group, change)] == 0 for group in p.groups for change in ("revoked", "lost"))
    )


EXPECTED: dict[str, Callable[[Scraped, list[Sample]], bool]] = {
    "Seconds since the last poll, slowest member per consumer group": _last_poll,
    "Partitions owned, by consumer group": _owned,
    "Rebalances, by consumer group": _rebalances,
    "Partitions changed, by consumer group and change": _changes,
}


def test_every_documented_query_is_checked() -> None:
    DOC.assert_all_checked(EXPECTED)


@pytest.mark.parametrize("name", EXPECTED)
def test_documented_query_gives_the_right_numbers(scraped: Scraped, name: str) -> None:
    DOC.wait_for_query(scraped.prometheus, name, lambda got: EXPECTED[name](scraped, got), 15)


@pytest.mark.parametrize("metric", DOC.series)
def test_documented_series_are_what_prometheus_scrapes(scraped: Scraped, metric: str) -> None:
    DOC.wait_for_series(scraped.prometheus, metric)


def test_documented_alerting_rules_load_and_evaluate(scraped: Scraped) -> None:
    """Both load, evaluate without an error, and neither fires for consumers that poll."""
    rules = assert_rules_evaluate(scraped.prometheus, {POLL_ALERT, LOST_ALERT})
    assert {rule["name"]: rule.get("state") for rule in rules} == {
        POLL_ALERT: "inactive",
        LOST_ALERT: "inactive",
    }


def test_documented_alerts_fire_only_as_described(tmp_path: Path) -> None:
    """promtool's rule unit tests: a consumer whose last poll keeps ageing fires once it is
    over 240 s for 30 s, not before, and one that polls never does; partitions lost fire at
    once, partitions revoked in an orderly rebalance never do."""
    text = DOC.rules_text
    rules = {
        rule["alert"]: rule for group in yaml.safe_load(text)["groups"] for rule in group["rules"]
    }

    def last_poll(group: str, values: str) -> dict[str, str]:
        labels = f'messaging_consumer_group_name="{group}",instance="app:9464"'
        return {
            "series": f"kafka_consumer_last_poll_seconds_ago_seconds{{{labels}}}",
            "values": values,
        }

    def changed(group: str, change: str, values: str) -> dict[str, str]:
        labels = (
            f'messaging_consumer_group_name="{group}",kafka_autotrace_rebalance_change="{change}"'
        )
        return {
            "series": f"kafka_autotrace_consumer_rebalance_partitions_total{{{labels}}}",
            "values": values,
        }

    check_alerts(
        tmp_path,
        text,
        {
            "interval": "15s",
            "input_series": [
                last_poll("stuck", "0+15x40"),  # 15 s older at every scrape
                last_poll("polling", "0.2x40"),
            ],
            "alert_rule_test": [
                {"eval_time": "4m", "alertname": POLL_ALERT, "exp_alerts": []},
                {
                    "eval_time": "6m",
                    "alertname": POLL_ALERT,
                    "exp_alerts": [
                        firing(
                            rules[POLL_ALERT],
                            messaging_consumer_group_name="stuck",
                            instance="app:9464",
                        )
                    ],
                },
            ],
        },
        {
            "interval": "1m",
            "input_series": [
                changed("thrown-out", "lost", "0x10 3x30"),
                changed("rebalanced", "revoked", "0x10 3x30"),
            ],
            "alert_rule_test": [
                {"eval_time": "5m", "alertname": LOST_ALERT, "exp_alerts": []},
                {
                    "eval_time": "12m",
                    "alertname": LOST_ALERT,
                    "exp_alerts": [
                        firing(rules[LOST_ALERT], messaging_consumer_group_name="thrown-out")
                    ],
                },
            ],
        },
        evaluation_interval="15s",
    )
