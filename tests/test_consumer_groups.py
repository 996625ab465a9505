"""Consumer-group changes on Apache Kafka, per client: assignments, revocations and lost
partitions counted (``kafka.consumer.rebalance_total``, ``kafka.consumer.assigned_partitions``,
``kafka_autotrace.consumer.rebalance.partitions``), added as events to the span current when
they happen, the lag of partitions no longer owned gone; and the application's own rebalance
callbacks and listeners called exactly as without us (compared with an uninstrumented run
where the outcome does not depend on timing).
"""

from __future__ import annotations

import subprocess
import sys
import time
from contextlib import ExitStack, nullcontext
from pathlib import Path
from typing import Any

import pytest
from support.broker import create_topic, unique_topic
from support.group_clients import GROUP_CLIENTS, AppCalls, AppError, GroupConsumer
from support.otel import RecordingSdk, instrumented
from test_consumer_lag import INSTRUMENTORS, PARTITIONS, exported_lag, produce

from kafka_autotrace.core.groups import (
    ASSIGNED_PARTITIONS,
    LAST_POLL_SECONDS_AGO,
    PARTITION_CHANGES,
    REBALANCE_TOTAL,
)
from kafka_autotrace.core.rebalance import CHANGE
from kafka_autotrace.core.rebalance import PARTITIONS as EVENT_PARTITIONS

GROUP = "messaging.consumer.group.name"
GROUP_MEMBER = Path(__file__).parents[1] / "e2e" / "apps" / "group_member.py"
ASSIGNED_EVENT = "kafka_autotrace.partitions_assigned"
REVOKED_EVENT = "kafka_autotrace.partitions_revoked"
FAST_GROUP = {
    "kafka-python": {"session_timeout_ms": 6000, "heartbeat_interval_ms": 500},
    "confluent-kafka": {"session.timeout.ms": 6000, "heartbeat.interval.ms": 500},
    "aiokafka": {"session_timeout_ms": 6000, "heartbeat_interval_ms": 500},
    "confluent-kafka-aio": {"session.timeout.ms": 6000, "heartbeat.interval.ms": 500},
}
MEMBER_PROCESS = {"confluent-kafka-aio": "confluent-kafka"}
"""The client of the second member where it is not the first's own: the group protocol is
librdkafka's either way."""


def points(sdk: RecordingSdk, name: str, group: str) -> list[Any]:
    return [p for p in sdk.metric_points(name) if p.attributes.get(GROUP) == group]


def changes(sdk: RecordingSdk, group: str) -> dict[str, int]:
    """Partitions changed so far, by change, in one export."""
    return {p.attributes[CHANGE]: p.value for p in points(sdk, PARTITION_CHANGES, group)}


def member(client: str, bootstrap: str, group: str) -> GroupConsumer:
    return GROUP_CLIENTS[client](bootstrap, group, **FAST_GROUP[client])


@pytest.fixture(params=sorted(GROUP_CLIENTS))
def client(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_a_second_member_takes_partitions_over_and_every_change_is_counted(
    client: str, bootstrap: str
) -> None:
    """A owns all three partitions and has taken some records; B (another process, of the same
    client, untraced) joins. What A's own listener was told is what was counted; A's lag and
    assigned partitions cover what it owns now and no more; the changes are events of the span
    the application's call for records was made in, also where the library calls its listener
    on a thread or task of its own."""
    topic = create_topic(bootstrap, unique_topic("shared"), partitions=PARTITIONS)
    produce(bootstrap, topic, 60)
    group = unique_topic("members")
    with instrumented(INSTRUMENTORS[client]()) as sdk, ExitStack() as closing:
        first = member(client, bootstrap, group)
        tracer = sdk.tracer_provider.get_tracer("app")
        app = AppCalls()
        closing.callback(first.close)
        with tracer.start_as_current_span("alone"):
            first.subscribe(topic, app)
            first.take_exactly(30)
        assert first.assignment() == [(topic, p) for p in range(PARTITIONS)]
        second = subprocess.Popen(
            [
                sys.executable,
                str(GROUP_MEMBER),
                MEMBER_PROCESS.get(client, client),
                bootstrap,
                topic,
                group,
            ],
            stdout=subprocess.DEVNULL,
        )
        closing.callback(second.wait, 20)
        closing.callback(second.terminate)
        with tracer.start_as_current_span("joined"):
            for _ in range(150):
                first.take(10, 0.2)
                if 0 < len(first.assignment()) < PARTITIONS:
                    break
            else:
                raise AssertionError(f"A kept {first.assignment()}")
        for _ in range(5):  # until A has fetched from what it owns now
            first.take(10, 0.2)

        told = {
            change: sum(len(partitions) for name, partitions in app.calls if name == change)
            for change in ("assigned", "revoked", "lost")
        }
        assert changes(sdk, group) == told, app.calls
        assert told["revoked"] > 0, "A gave partitions up"
        [rebalances] = points(sdk, REBALANCE_TOTAL, group)
        assert rebalances.value == sum(1 for name, _ in app.calls if name == "assigned")
        [assigned] = points(sdk, ASSIGNED_PARTITIONS, group)
        owned = {partition for _, partition in first.assignment()}
        assert assigned.value == len(owned)
        assert set(exported_lag(sdk, group)) == owned, "only the partitions A owns now"
        [last_poll] = points(sdk, LAST_POLL_SECONDS_AGO, group)
        assert last_poll.value >= 0

        events = {span.name: span.events for span in sdk.spans()}
        [assignment] = [
            e
            for e in events["alone"]
            if e.name == ASSIGNED_EVENT and e.attributes[EVENT_PARTITIONS]  # a first may be empty
        ]
        assert list(assignment.attributes[EVENT_PARTITIONS]) == [
            f"{topic}/{p}" for p in range(PARTITIONS)
        ]
        assert assignment.attributes[GROUP] == group
        assert REVOKED_EVENT in [e.name for e in events["joined"]]


def test_without_application_callbacks_the_changes_are_counted_until_the_consumer_closes(
    client: str, bootstrap: str
) -> None:
    """Ours alone, where the application passes no callback or listener; counted for the
    consumer the application calls, and for no other (confluent-kafka's asyncio consumer
    wraps a synchronous one), so nothing is left once it closed."""
    topic = create_topic(bootstrap, unique_topic("alone"), partitions=PARTITIONS)
    group = unique_topic("alone")
    with instrumented(INSTRUMENTORS[client]()) as sdk:
        made = member(client, bootstrap, group)
        try:
            made.subscribe(topic, None)
            for _ in range(40):
                made.take(1, 0.3)
                if len(made.assignment()) == PARTITIONS:
                    break
            counted = changes(sdk, group)
        finally:
            made.close()
        assert counted["assigned"] == PARTITIONS, counted
        assert points(sdk, REBALANCE_TOTAL, group) == [], "no consumer of the group is left"


def _outcome(client: str, bootstrap: str, traced: bool, fail: str | None, **hooks: Any) -> Any:
    """What the application saw: its callbacks' calls and what each poll raised, until the
    consumer owns every partition (or ten polls went by)."""
    topic = create_topic(bootstrap, unique_topic("outcome"), partitions=PARTITIONS)
    app = AppCalls(fail=fail)
    raised: list[str] = []
    context = instrumented(INSTRUMENTORS[client]()) if traced else nullcontext()
    with context:
        made = member(client, bootstrap, unique_topic("outcome"))
        try:
            made.subscribe(topic, app, **hooks)
            for _ in range(40):
                try:
                    made.take(1, 0.3)
                except AppError as error:
                    raised.append(f"AppError {error}")
                except Exception as error:  # the library's wrapping of it
                    cause = error.__cause__
                    raised.append(f"{type(error).__name__} from {type(cause).__name__}")
                if len(made.assignment()) == PARTITIONS and app.calls:
                    break
            owned = len(made.assignment())
        finally:
            made.close()
    given = [(name, len(partitions)) for name, partitions in app.calls if partitions]
    return given, raised, owned


@pytest.mark.parametrize("fail", [None, "assigned"])
def test_the_application_callbacks_see_what_they_saw_without_us(
    client: str, bootstrap: str, fail: str | None
) -> None:
    """Same calls, same exceptions out of the poll (confluent-kafka raises the callback's own,
    kafka-python wraps it, aiokafka logs it), same assignment, traced or not."""
    without = _outcome(client, bootstrap, False, fail)
    assert _outcome(client, bootstrap, True, fail) == without
    assert without[2] == PARTITIONS


def test_aiokafka_async_listener_methods_are_awaited(bootstrap: str) -> None:
    without = _outcome("aiokafka", bootstrap, False, "assigned", asynchronous=True)
    assert without[0] == [("assigned", PARTITIONS)]
    assert _outcome("aiokafka", bootstrap, True, "assigned", asynchronous=True) == without


@pytest.mark.parametrize("hooks", [{"on_lost": False}, {}], ids=["on_revoke only", "on_lost"])
@pytest.mark.parametrize("client", ["confluent-kafka", "confluent-kafka-aio"])
def test_confluent_partitions_lost_are_counted_and_go_where_they_went_without_us(
    bootstrap: str, hooks: dict[str, bool], client: str
) -> None:
    """A member that stops polling past ``max.poll.interval.ms`` loses its partitions: the
    application's ``on_lost``, or its ``on_revoke`` when it gave no ``on_lost``, is told so as
    without us, and the loss is counted as lost."""

    def run(traced: bool) -> tuple[list[tuple[str, int]], dict[str, int] | None]:
        topic = create_topic(bootstrap, unique_topic("lost"), partitions=PARTITIONS)
        group = unique_topic("lost")
        app = AppCalls()
        with instrumented(INSTRUMENTORS[client]()) if traced else nullcontext() as sdk:
            made = GROUP_CLIENTS[client](
                bootstrap,
                group,
                **{
                    "session.timeout.ms": 1000,
                    "heartbeat.interval.ms": 300,
                    "max.poll.interval.ms": 1500,
                },
            )
            try:
                made.subscribe(topic, app, **hooks)
                for _ in range(40):
                    made.take(1, 0.3)
                    if made.assignment():
                        break
                time.sleep(3)  # past max.poll.interval.ms: the member leaves its group
                for _ in range(10):
                    made.take(1, 0.3)
                    if len(app.calls) > 1:
                        break
                counted = changes(sdk, group) if isinstance(sdk, RecordingSdk) else None
            finally:
                made.close()
        return [(name, len(partitions)) for name, partitions in app.calls], counted

    without, _ = run(False)
    told, counted = run(True)
    assert told == without
    expected_name = "lost" if hooks.get("on_lost", True) else "revoked"
    assert told[:2] == [("assigned", PARTITIONS), (expected_name, PARTITIONS)]
    assert counted is not None and counted["lost"] == PARTITIONS and counted["revoked"] == 0
