"""Fixtures of tests/ only (the repository's conftest.py has those e2e/ shares)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.broker import Broker
from support.kafka import KafkaCluster, start_kafka, wait_for_group_coordinator


@pytest.fixture(scope="session")
def kafka(broker: Broker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaCluster]:
    """An Apache Kafka node, for what only it does (deleted and compacted records,
    transactions): the session's broker when it is one, else a node of its own."""
    if isinstance(broker, KafkaCluster):
        wait_for_group_coordinator(broker.bootstrap_servers)
        yield broker
        return
    running = start_kafka(tmp_path_factory.mktemp("kafka"))
    wait_for_group_coordinator(running.bootstrap_servers)
    yield running
    running.stop()
