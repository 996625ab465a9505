"""The example of docs/metrics.md's "Tuning batching and polling with these metrics": one
producer per client library and ``linger.ms``, sending 100-byte records at 500 a second for
SECONDS, then what the clients' own figures and the send duration showed.

Usage: .venv/bin/python bench/batching_example.py [SECONDS]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

RATE = 500
LINGERS = (0, 20)


def run(client: str, linger_ms: int, bootstrap: str, seconds: float) -> dict[str, Any]:
    from support.broker import create_topic, unique_topic
    from support.figures import collect
    from support.otel import RecordingSdk, instrumented

    from kafka_autotrace.core import client_metrics

    client_metrics.READ_INTERVAL_S = 0.0
    topic = create_topic(bootstrap, unique_topic(f"linger-{linger_ms}"))
    sdk = RecordingSdk()
    if client == "confluent-kafka":
        from kafka_autotrace.confluent_kafka import ConfluentKafkaInstrumentor as Instrumentor
    else:
        from kafka_autotrace.kafka_python import KafkaPythonInstrumentor as Instrumentor  # type: ignore[assignment]
    with instrumented(Instrumentor(), sdk):
        if client == "confluent-kafka":
            import confluent_kafka

            producer = confluent_kafka.Producer(
                {
                    "bootstrap.servers": bootstrap,
                    "linger.ms": linger_ms,
                    "statistics.interval.ms": int(seconds * 1000 / 2),
                }
            )

            def send() -> None:
                producer.produce(topic, b"v" * 100)
                producer.poll(0)
        else:
            import kafka

            kp = kafka.KafkaProducer(bootstrap_servers=bootstrap, linger_ms=linger_ms)

            def send() -> None:
                kp.send(topic, b"v" * 100)

        started = time.monotonic()
        sent = 0
        while time.monotonic() - started < seconds:
            send()
            sent += 1
            time.sleep(max(0.0, started + sent / RATE - time.monotonic()))
        figures = {name: list(points.values()) for name, points in collect(sdk).items()}
        durations = sdk.metric_points("messaging.client.operation.duration")
        count = sum(point.count for point in durations)
        mean_ms = 1000 * sum(point.sum for point in durations) / count if count else None
    return {"client": client, "linger_ms": linger_ms, "sent": sent, "send_ms": mean_ms, **figures}


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 6.0
    from support.broker import start_broker

    broker = start_broker(Path(tempfile.mkdtemp()))
    try:
        for client in ("kafka-python", "confluent-kafka"):
            for linger in LINGERS:
                print(run(client, linger, broker.bootstrap_servers, seconds), flush=True)
    finally:
        broker.stop()


if __name__ == "__main__":
    main()
