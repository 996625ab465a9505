"""The doctor's broker probe through confluent-kafka, which does not expose the API version
it negotiated: the cluster metadata proves the broker reachable."""

from __future__ import annotations

from confluent_kafka.admin import AdminClient

from kafka_autotrace.clients.probes import Reached


def probe(bootstrap_servers: str, timeout: float) -> Reached:
    # log_level 0: librdkafka would otherwise log every refused connection to stderr.
    admin = AdminClient({"bootstrap.servers": bootstrap_servers, "log_level": 0})
    metadata = admin.list_topics(timeout=timeout)
    return Reached(brokers=len(metadata.brokers))
