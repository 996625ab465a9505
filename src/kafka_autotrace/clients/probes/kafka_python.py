"""The doctor's broker probe through kafka-python, which reports the API version it
negotiated through ApiVersions."""

from __future__ import annotations

from kafka import KafkaConsumer

from kafka_autotrace.clients.probes import Reached, quiet


def probe(bootstrap_servers: str, timeout: float) -> Reached:
    # kafka-python 3 bounds the bootstrap with bootstrap_timeout_ms; 2.x with the version probe.
    timeout_key = (
        "bootstrap_timeout_ms"
        if "bootstrap_timeout_ms" in KafkaConsumer.DEFAULT_CONFIG
        else "api_version_auto_timeout_ms"
    )
    with quiet("kafka"):
        consumer = KafkaConsumer(
            bootstrap_servers=bootstrap_servers, **{timeout_key: int(timeout * 1000)}
        )
    try:
        return Reached(api_version=tuple(consumer.config["api_version"]))
    finally:
        consumer.close()
