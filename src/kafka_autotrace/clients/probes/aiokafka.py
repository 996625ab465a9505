"""The doctor's broker probe through aiokafka: a producer's start fetches the cluster
metadata."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaProducer

from kafka_autotrace.clients.probes import Reached, quiet


def probe(bootstrap_servers: str, timeout: float) -> Reached:
    async def brokers() -> int:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers)
        try:
            await asyncio.wait_for(producer.start(), timeout)
            return len(producer.client.cluster.brokers())
        finally:
            await producer.stop()

    with quiet("aiokafka"):
        return Reached(brokers=asyncio.run(brokers()))
