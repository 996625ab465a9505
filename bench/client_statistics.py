"""The CPU the clients' own statistics cost, bridge on against bridge off
(``KAFKA_AUTOTRACE_CLIENT_METRICS``), each case in a fresh process, on and off interleaved.

Usage: .venv/bin/python bench/client_statistics.py [SECONDS] [ROUNDS]

Cases, per client library: an idle client (a consumer polling an empty topic) and a busy one
(a producer sending 1000 records a second), for SECONDS (default 120) each, with the SDK's
periodic metric reader exporting every 15 s (``OTEL_METRIC_EXPORT_INTERVAL``; the SDK's default
is 60 s) to a discarding exporter, and librdkafka's statistics at the default interval
kafka-autotrace sets (15 s). The process CPU (user + system, all threads) of the measured
stretch is printed per case and round; the difference on - off is what the statistics path
costs.

Also ``amplified``, per client library: an idle consumer collected every 0.1 s (150 times as
often as above) and, for confluent-kafka, statistics every 10 ms (1500 times as often; none
with the bridge off), so that the cost of one collection and one emission stands above the
noise.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

RATE = 1000


def case(client: str, kind: str, bootstrap: str, seconds: float) -> dict[str, float]:
    """One case in this process: set up, then measure ``seconds`` of process CPU."""
    from opentelemetry import metrics
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import (
        ConsoleMetricExporter,
        InMemoryMetricReader,
        PeriodicExportingMetricReader,
    )

    amplified = kind == "amplified"
    if amplified:
        reader: object = InMemoryMetricReader()
    else:
        devnull = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process
        reader = PeriodicExportingMetricReader(ConsoleMetricExporter(out=devnull))
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))  # type: ignore[list-item]
    from support.broker import create_topic, unique_topic

    topic = create_topic(bootstrap, unique_topic(f"bench-{client}-{kind}"))
    if client == "confluent-kafka":
        from kafka_autotrace.confluent_kafka import ConfluentKafkaInstrumentor

        if amplified:
            from kafka_autotrace.clients.confluent import statistics

            statistics.DEFAULT_INTERVAL_MS = 10
        ConfluentKafkaInstrumentor().instrument()
        import confluent_kafka

        extra: dict[str, object] = {}
        if kind == "busy":
            producer = confluent_kafka.Producer({"bootstrap.servers": bootstrap, **extra})

            def step() -> None:
                producer.produce(topic, b"v" * 100)
                producer.poll(0)
                time.sleep(1 / RATE)
        else:
            consumer = confluent_kafka.Consumer(
                {"bootstrap.servers": bootstrap, "group.id": topic, **extra}
            )
            consumer.subscribe([topic])

            def step() -> None:
                consumer.poll(0.1)
    else:
        from kafka_autotrace.kafka_python import KafkaPythonInstrumentor

        KafkaPythonInstrumentor().instrument()
        import kafka

        if kind == "busy":
            kp_producer = kafka.KafkaProducer(bootstrap_servers=bootstrap)

            def step() -> None:
                kp_producer.send(topic, b"v" * 100)
                time.sleep(1 / RATE)
        else:
            kp_consumer = kafka.KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=topic)

            def step() -> None:
                kp_consumer.poll(100)

    warm = time.monotonic() + 3
    collect_every = 0.1 if amplified else float("inf")
    while time.monotonic() < warm:
        step()
    started, cpu = time.monotonic(), time.process_time()
    collected_at = started
    while time.monotonic() - started < seconds:
        step()
        if time.monotonic() - collected_at >= collect_every:
            reader.get_metrics_data()  # type: ignore[attr-defined]
            collected_at = time.monotonic()
    return {"cpu_s": time.process_time() - cpu, "wall_s": time.monotonic() - started}


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 120.0
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    from support.broker import start_broker

    broker = start_broker(Path(tempfile.mkdtemp()))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # stop the broker on the way out
    cases = [
        ("confluent-kafka", "idle"),
        ("confluent-kafka", "busy"),
        ("kafka-python", "idle"),
        ("kafka-python", "busy"),
        ("confluent-kafka", "amplified"),
        ("kafka-python", "amplified"),
    ]
    try:
        for round_number in range(rounds):
            for client, kind in cases:
                for bridge in ("true", "false"):  # interleaved: on, off, on, off...
                    env = {
                        **os.environ,
                        "KAFKA_AUTOTRACE_CLIENT_METRICS": bridge,
                        "OTEL_METRIC_EXPORT_INTERVAL": "15000",
                    }
                    args = [client, kind, broker.bootstrap_servers, str(seconds)]
                    done = subprocess.run(
                        [sys.executable, __file__, "--case", *args],
                        env=env,
                        capture_output=True,
                        text=True,
                        check=True,
                    )
                    result = json.loads(done.stdout.strip().splitlines()[-1])
                    print(
                        json.dumps(
                            {
                                "round": round_number,
                                "client": client,
                                "kind": kind,
                                "bridge": bridge,
                                **result,
                            }
                        ),
                        flush=True,
                    )
    finally:
        broker.stop()


if __name__ == "__main__":
    if sys.argv[1:2] == ["--case"]:
        client, kind, bootstrap, seconds = sys.argv[2:6]
        print(json.dumps(case(client, kind, bootstrap, float(seconds))), flush=True)
    else:
        main()
