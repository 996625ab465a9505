"""What every client's telemetry says as the messaging semantic conventions (v1.44) say it:
the metrics' attributes, the schema URL of our tracer and meter, the cluster id, captured
headers, and partitions on the metrics when asked for (docs/design.md, the attribute table).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient
from opentelemetry.semconv._incubating.attributes.messaging_attributes import (
    MESSAGING_DESTINATION_PARTITION_ID,
    MESSAGING_OPERATION_NAME,
    MESSAGING_OPERATION_TYPE,
)
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from support.otel import RecordingSdk
from support.spans import one

from contract.drivers.base import CLUSTER_ID, HEADERS, Driver, write_untraced
from kafka_autotrace import Settings
from kafka_autotrace.core import guard

SCHEMA_URL = "https://opentelemetry.io/schemas/1.44.0"
CLUSTER_ID_ATTRIBUTE = "messaging.kafka.cluster.id"
OPERATION_DURATION = "messaging.client.operation.duration"
SENT = "messaging.client.sent.messages"
CONSUMED = "messaging.client.consumed.messages"
PROCESS_DURATION = "messaging.process.duration"
MESSAGING_METRICS = (OPERATION_DURATION, SENT, CONSUMED, PROCESS_DURATION)


def _send_and_read_both_ways(driver: Driver, topic: str) -> int:
    """Two messages sent, then read by the one-record call and by the batch call (two
    consumers: kafka-python 2.0.x cannot mix them on one); the partition they went to."""
    acks = [driver.send(topic, value) for value in (b"a", b"b")]
    for method in ("next", "batch"):
        driver.read(topic, method)
    return acks[0].partition


def _operations(sdk: RecordingSdk, metric: str) -> set[tuple[Any, Any]]:
    """The (operation name, operation type) pairs of ``metric``'s points."""
    return {
        (
            point.attributes.get(MESSAGING_OPERATION_NAME),
            point.attributes.get(MESSAGING_OPERATION_TYPE),
        )
        for point in sdk.metric_points(metric)
    }


def test_each_metric_names_its_operation_as_the_spans_do(
    driver: Driver, sdk: RecordingSdk, topic: str
) -> None:
    """A receive is ``poll`` on its span and its metrics alike; only the operation duration
    carries ``messaging.operation.type``; no partition unless asked for."""
    _send_and_read_both_ways(driver, topic)
    assert _operations(sdk, OPERATION_DURATION) == {("send", "send"), ("poll", "receive")}
    assert _operations(sdk, SENT) == {("send", None)}
    assert _operations(sdk, CONSUMED) == {("poll", None)}
    assert _operations(sdk, PROCESS_DURATION) == {("process", None)}
    poll = one(sdk.spans("poll"))
    assert (poll.attributes or {})[MESSAGING_OPERATION_NAME] == "poll"
    for metric in MESSAGING_METRICS:
        points = sdk.metric_points(metric)
        assert points, metric
        assert all(MESSAGING_DESTINATION_PARTITION_ID not in p.attributes for p in points), metric


@pytest.mark.settings(Settings(metric_partitions=True))
def test_metrics_name_the_partition_when_asked_for(
    driver: Driver, sdk: RecordingSdk, topic: str
) -> None:
    partition = str(_send_and_read_both_ways(driver, topic))
    for metric in (*MESSAGING_METRICS, "kafka_autotrace.record.age"):
        points = sdk.metric_points(metric)
        assert points, metric
        assert {p.attributes.get(MESSAGING_DESTINATION_PARTITION_ID) for p in points} == {
            partition
        }, metric
    assert sum(point.value for point in sdk.metric_points(SENT)) == 2
    assert sum(point.value for point in sdk.metric_points(CONSUMED)) == 2


@pytest.mark.settings(Settings(metric_partitions=True))
def test_a_send_whose_span_the_sampler_drops_is_measured_all_the_same(
    driver: Driver, sdk: RecordingSdk, topic: str, tmp_path: Path
) -> None:
    """The metrics count every message, sampled or not: a send without a span is counted and
    timed when the broker answers, in the partition it acknowledged, or with its error."""
    sdk.sampler.decide(sampled=False)
    partition = str(driver.send(topic, b"a").partition)
    undelivered = driver.undeliverable(tmp_path)
    assert sdk.spans("send") == []
    sent = sorted(
        (str(p.attributes.get(ERROR_TYPE)), p.attributes.get(MESSAGING_DESTINATION_PARTITION_ID))
        for p in sdk.metric_points(SENT)
        for _ in range(p.value)
    )
    timed = sorted(
        (str(p.attributes.get(ERROR_TYPE)), p.attributes.get(MESSAGING_DESTINATION_PARTITION_ID))
        for p in sdk.metric_points(OPERATION_DURATION)
        if p.attributes.get(MESSAGING_OPERATION_NAME) == "send"
        for _ in range(p.count)
    )
    assert sent == timed
    assert len(sent) == 1 + undelivered.sends  # kafka-python's driver sends a warm-up first
    assert [error for error, _ in sent if error != "None"] == [undelivered.error_type]
    assert ("None", partition) in sent


def test_the_tracer_and_meter_name_the_conventions_schema(
    driver: Driver, sdk: RecordingSdk, topic: str
) -> None:
    driver.send(topic, b"v")
    driver.read(topic)
    scopes = {span.instrumentation_scope for span in sdk.spans()}
    assert {(scope.name, scope.schema_url) for scope in scopes} == {("kafka_autotrace", SCHEMA_URL)}
    data = sdk.reader.get_metrics_data()
    assert data is not None
    metric_scopes = {
        (scope_metrics.scope.name, scope_metrics.scope.schema_url, scope_metrics.schema_url)
        for resource_metrics in data.resource_metrics
        for scope_metrics in resource_metrics.scope_metrics
    }
    assert metric_scopes == {("kafka_autotrace", SCHEMA_URL, SCHEMA_URL)}


def _cluster_id(bootstrap: str) -> str:
    """The cluster id the broker reports, asked with an admin client of the test's own."""
    cluster_id = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10).cluster_id
    assert isinstance(cluster_id, str) and cluster_id
    return cluster_id


@pytest.mark.needs(CLUSTER_ID)
def test_spans_name_the_cluster_once_the_client_knows_it(
    driver: Driver, sdk: RecordingSdk, topic: str, bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Learnt from the metadata the client fetched for itself: by the second call at the
    latest (asked again on every call here, not once a second)."""
    monkeypatch.setattr(guard, "CLUSTER_ID_RETRY_S", 0.0)
    expected = _cluster_id(bootstrap)
    producer = driver.producer()
    for value in (b"a", b"b"):
        driver.send(topic, value, producer=producer)
    consumer = driver.consumer(topic)
    for _ in range(2):
        driver.next_record(consumer)
    driver.close(consumer)
    for kind in ("send", "process"):
        last = max(sdk.spans(kind), key=lambda span: span.start_time or 0)
        assert (last.attributes or {}).get(CLUSTER_ID_ATTRIBUTE) == expected, kind
    for metric in MESSAGING_METRICS:
        assert all(CLUSTER_ID_ATTRIBUTE not in p.attributes for p in sdk.metric_points(metric))


CAPTURED = {"messaging.header.app-tenant": ("acme", "beta"), "messaging.header.x-id": ("7",)}
"""What the settings below capture of :data:`CAPTURED_FROM`."""
CAPTURED_FROM = [
    ("app-tenant", b"acme"),
    ("app-secret", b"hunter2"),
    ("x-id", b"7"),
    ("x-idx", b"not a match"),
    ("App-tenant", b"another name"),
    ("other", b"o"),
    ("app-tenant", b"beta"),
]


def _captured(attributes: Any) -> dict[str, Any]:
    return {
        key: tuple(value)
        for key, value in (attributes or {}).items()
        if key.startswith("messaging.header.")
    }


@pytest.mark.needs(HEADERS)
@pytest.mark.settings(
    Settings(capture_headers=("app-*", "x-id"), capture_headers_exclude=("app-secret",))
)
def test_headers_are_captured_by_glob_except_the_excluded(
    driver: Driver, sdk: RecordingSdk, topic: str
) -> None:
    driver.send_form(topic, driver.call_forms[0], list(CAPTURED_FROM))
    driver.read(topic)
    assert _captured(one(sdk.spans("send")).attributes) == CAPTURED
    assert _captured(one(sdk.spans("process")).attributes) == CAPTURED


@pytest.mark.settings(Settings(capture_headers=("app-*", "x-id")))
def test_a_consumer_captures_headers_it_did_not_send(
    driver: Driver, sdk: RecordingSdk, topic: str
) -> None:
    write_untraced(driver.bootstrap, topic, b"v", [("x-id", b"7"), ("other", b"o")])
    driver.read(topic, "batch")
    assert _captured(one(sdk.spans("process")).attributes) == {"messaging.header.x-id": ("7",)}
