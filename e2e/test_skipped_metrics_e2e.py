"""Records a consumer never got, as users read them: an unmodified confluent-kafka consumer
under ``opentelemetry-instrument`` with the Prometheus exporter falls behind while the broker
deletes records it has not read, and a real Prometheus runs the queries and alerting rule of
docs/metrics.md, "Records a consumer never got", exactly as written there; promtool's rule unit
tests show when the alert fires.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import confluent_kafka
import pytest
import yaml
from confluent_kafka.admin import AdminClient
from support.apps import start_app
from support.broker import Broker, create_topic, unique_topic
from support.documented_metrics import UNUSED, DocumentedMetrics, assert_rules_evaluate
from support.kafka import wait_for_group_coordinator
from support.prometheus import Prometheus, Sample, check_alerts, firing

APP = Path(__file__).parent / "apps" / "skipping_consumer.py"
DOC = DocumentedMetrics(("Records a consumer never got",), "Alerting rules: records skipped")
SENT = 10
BEFORE = 3
DELETED_BEFORE = 6
"""Offsets 3 to 5, which the consumer had not read, are deleted: 3 records skipped."""
SKIPPED = DELETED_BEFORE - BEFORE
TOPIC = "messaging_destination_name"
GROUP = "messaging_consumer_group_name"


@dataclass(frozen=True)
class Scraped:
    prometheus: Prometheus
    topic: str
    group: str


@pytest.fixture(scope="module")
def scraped(broker: Broker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scraped]:
    bootstrap = broker.bootstrap_servers
    wait_for_group_coordinator(bootstrap)
    topic = create_topic(bootstrap, unique_topic("skipped"))
    group = unique_topic("behind")
    producer = confluent_kafka.Producer({"bootstrap.servers": bootstrap})
    for index in range(SENT):
        producer.produce(topic, f"record-{index}".encode())
    assert producer.flush(20) == 0
    folder = tmp_path_factory.mktemp("skipped")
    resume = folder / "resume"
    with ExitStack() as running:
        scraping = running.enter_context(DOC.scraping(folder, ["behind"]))
        prometheus = scraping.prometheus
        args = (bootstrap, topic, group, str(BEFORE), str(SENT - DELETED_BEFORE), str(resume))
        env = scraping.envs["behind"]
        app = running.enter_context(
            start_app(APP, *args, service="behind", endpoint=UNUSED, env=env)
        )
        app.wait_for_output("paused", timeout=60)
        # The count is at 0 in Prometheus before the loss, as for a consumer that ran a while.
        series = f'kafka_autotrace_consumer_skipped_total{{{TOPIC}="{topic}"}}'
        prometheus.wait_for(series, lambda samples: [s.value for s in samples] == [0])
        admin = AdminClient({"bootstrap.servers": bootstrap})
        deleted = confluent_kafka.TopicPartition(topic, 0, DELETED_BEFORE)
        for future in admin.delete_records([deleted]).values():
            future.result(20)
        resume.touch()
        handled = app.wait_for_output("handled", timeout=60)
        assert f"handled {list(range(DELETED_BEFORE, SENT))}" in handled, handled
        yield Scraped(prometheus, topic, group)


def _by_hop(samples: list[Sample]) -> dict[tuple[str | None, str | None], float]:
    return {(s.labels.get(TOPIC), s.labels.get(GROUP)): s.value for s in samples}


EXPECTED: dict[str, Callable[[Scraped, list[Sample]], bool]] = {
    "Records skipped, by topic and consumer group": lambda p, samples: (
        _by_hop(samples) == {(p.topic, p.group): SKIPPED}
    ),
    # increase() extrapolates to the ends of its range: about SKIPPED, never less.
    "Records skipped in the last hour, by topic and consumer group": lambda p, samples: (
        set(_by_hop(samples)) == {(p.topic, p.group)}
        and SKIPPED <= _by_hop(samples)[p.topic, p.group] <= 2 * SKIPPED
    ),
}


def test_every_documented_query_is_checked() -> None:
    DOC.assert_all_checked(EXPECTED)


@pytest.mark.parametrize("name", EXPECTED)
def test_documented_query_gives_the_right_numbers(scraped: Scraped, name: str) -> None:
    DOC.wait_for_query(scraped.prometheus, name, lambda got: EXPECTED[name](scraped, got))


@pytest.mark.parametrize("metric", DOC.series)
def test_documented_series_are_what_prometheus_scrapes(scraped: Scraped, metric: str) -> None:
    DOC.wait_for_series(scraped.prometheus, metric)


def test_documented_alerting_rule_fires_on_the_real_series(scraped: Scraped) -> None:
    """Loaded, evaluated without an error, and firing for the group that lost records."""
    rules = assert_rules_evaluate(
        scraped.prometheus, {"KafkaRecordsSkipped"}, lambda rule: rule["state"] == "firing", 30
    )
    [alert] = rules[0]["alerts"]
    assert (alert["labels"][TOPIC], alert["labels"][GROUP]) == (scraped.topic, scraped.group)


def test_documented_alert_fires_only_as_described(tmp_path: Path) -> None:
    """A group that loses records at minute 5 fires from then on and stops 15 minutes after;
    one that never loses any, or whose count started above zero and never grew, never fires."""
    text = DOC.rules_text
    [rule] = [rule for group in yaml.safe_load(text)["groups"] for rule in group["rules"]]
    alert = rule["alert"]

    def skipped(group: str, values: str) -> dict[str, str]:
        labels = f'{GROUP}="{group}",{TOPIC}="orders",kafka_autotrace_skipped_reason="deleted"'
        return {"series": f"kafka_autotrace_consumer_skipped_total{{{labels}}}", "values": values}

    lossy = firing(rule, **{GROUP: "lossy", TOPIC: "orders"})
    check_alerts(
        tmp_path,
        text,
        {
            "input_series": [
                skipped("lossy", "0x5 3x40"),
                skipped("healthy", "0x45"),
                skipped("old-loss", "7x45"),
            ],
            "alert_rule_test": [
                {"eval_time": "4m", "alertname": alert, "exp_alerts": []},
                {"eval_time": "7m", "alertname": alert, "exp_alerts": [lossy]},
                {"eval_time": "18m", "alertname": alert, "exp_alerts": [lossy]},
                {"eval_time": "25m", "alertname": alert, "exp_alerts": []},
            ],
        },
    )
