"""Consumer-group changes and polling, as the Java client reports them (``assigned-partitions``,
``rebalance-total``, ``last-poll-seconds-ago``, under the OpenTelemetry Java agent's names),
plus a count of partitions assigned, revoked and lost.

The changes are counted as they happen (:mod:`~kafka_autotrace.core.rebalance`); everything
is read when the metrics are exported, from the consumers
:class:`~kafka_autotrace.core.lag.ConsumerLag` tracks: no cost per message, one clock read per
call.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from opentelemetry.metrics import CallbackOptions, Meter, Observation
from opentelemetry.semconv._incubating.attributes.messaging_attributes import (
    MESSAGING_CLIENT_ID,
    MESSAGING_CONSUMER_GROUP_NAME,
)

from kafka_autotrace.core.lag import ConsumerLag, read_assignment
from kafka_autotrace.core.rebalance import CHANGE

if TYPE_CHECKING:
    from kafka_autotrace.core.client import ClientInfo, ClientState

ASSIGNED_PARTITIONS = "kafka.consumer.assigned_partitions"
"""The Java agent's name for the Java client's ``assigned-partitions``."""
REBALANCE_TOTAL = "kafka.consumer.rebalance_total"
"""The Java agent's name for ``rebalance-total``: rebalances this member completed (each
assignment it was given)."""
LAST_POLL_SECONDS_AGO = "kafka.consumer.last_poll_seconds_ago"
"""The Java agent's name for ``last-poll-seconds-ago``: seconds since the application last
called the consumer (poll, consume, getone, getmany, iteration)."""
PARTITION_CHANGES = "kafka_autotrace.consumer.rebalance.partitions"
"""Partitions assigned, revoked or lost (:data:`CHANGE`) in rebalances."""


def _attributes(info: ClientInfo) -> dict[str, str]:
    attributes = {}
    if info.client_id:
        attributes[MESSAGING_CLIENT_ID] = info.client_id
    if info.consumer_group:
        attributes[MESSAGING_CONSUMER_GROUP_NAME] = info.consumer_group
    return attributes


class GroupInstruments:
    """The observable instruments of the consumers :class:`ConsumerLag` tracks."""

    __slots__ = ("_consumers",)

    def __init__(self, meter: Meter, consumers: ConsumerLag) -> None:
        self._consumers = consumers
        meter.create_observable_gauge(
            ASSIGNED_PARTITIONS,
            callbacks=[self._assigned],
            unit="{partition}",
            description="Partitions currently assigned to the consumer.",
        )
        meter.create_observable_counter(
            REBALANCE_TOTAL,
            callbacks=[self._rebalances],
            unit="{rebalance}",
            description="Rebalances the consumer completed (assignments it was given).",
        )
        meter.create_observable_gauge(
            LAST_POLL_SECONDS_AGO,
            callbacks=[self._last_poll],
            unit="s",
            description="Seconds since the application last called the consumer for records.",
        )
        meter.create_observable_counter(
            PARTITION_CHANGES,
            callbacks=[self._partition_changes],
            unit="{partition}",
            description="Partitions assigned to, revoked from or lost by the consumer.",
        )

    def _assigned(self, options: CallbackOptions) -> Iterable[Observation]:
        observations = []
        for consumer, state, reader in self._consumers.tracked():
            assignment = read_assignment(consumer, reader)
            if assignment is not None:
                observations.append(Observation(len(assignment), _attributes(state.info)))
        return observations

    def _rebalances(self, options: CallbackOptions) -> Iterable[Observation]:
        return [
            Observation(state.activity.rebalances, _attributes(state.info))
            for _, state, _ in self._consumers.tracked()
        ]

    def _last_poll(self, options: CallbackOptions) -> Iterable[Observation]:
        now = time.monotonic()
        return [
            Observation(now - called, _attributes(state.info))
            for state, called in _last_calls(self._consumers.tracked())
        ]

    def _partition_changes(self, options: CallbackOptions) -> Iterable[Observation]:
        observations = []
        for _, state, _ in self._consumers.tracked():
            attributes = _attributes(state.info)
            for change, count in list(state.activity.partitions.items()):
                observations.append(Observation(count, {**attributes, CHANGE: change}))
        return observations


def _last_calls(
    tracked: Iterable[tuple[object, ClientState, object]],
) -> list[tuple[ClientState, float]]:
    return [
        (state, state.activity.last_call)
        for _, state, _ in tracked
        if state.activity.last_call is not None
    ]
