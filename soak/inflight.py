"""What sends waiting for a broker that stopped answering cost in memory, and what the cap
(``KAFKA_AUTOTRACE_MAX_INFLIGHT_SPANS``) bounds.

    python soak/inflight.py                    # both clients, 100,000 waiting sends

Per client and cap, in a fresh process: a producer connects to a private broker, which is then
killed, and the application keeps sending; nothing is ever acknowledged, so every message waits
in the client's queue with its send span. RSS growth divided by the messages sent is what each
waiting message costs; past the cap a send has no span of its own and costs only what the
client itself holds for it. The SDK is the soak's (everything recorded, exported nowhere).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from run import ROOT, VALUE, configure_sdk, rss_mib

TOPIC = "waiting"
CAPS: tuple[int | None, ...] = (None, 0, 10_000, 100_000)
"""None: not instrumented, what the client alone holds per waiting message."""


def connected_send(client: str, cap: int | None, bootstrap: str, messages: int) -> Any:
    """The send method of a producer that has had one message to TOPIC acknowledged (so it has
    the metadata and a connection) and can queue ``messages`` more; instrumented with ``cap``
    unless that is None."""
    from kafka_autotrace.core.settings import Settings

    settings = Settings(max_inflight_spans=cap or 0)
    if client == "kafka-python":
        import kafka

        from kafka_autotrace.kafka_python import KafkaPythonInstrumentor

        if cap is not None:
            KafkaPythonInstrumentor().instrument(settings=settings)
        producer = kafka.KafkaProducer(
            bootstrap_servers=bootstrap,
            linger_ms=1000,
            request_timeout_ms=600_000,
            **({"delivery_timeout_ms": 900_000} if kafka.version.__version__ >= "2.1" else {}),
        )
        producer.send(TOPIC, VALUE).get(timeout=10)
        return producer.send
    import confluent_kafka

    from kafka_autotrace.confluent_kafka import ConfluentKafkaInstrumentor

    if cap is not None:
        ConfluentKafkaInstrumentor().instrument(settings=settings)
    producer = confluent_kafka.Producer(
        {
            "bootstrap.servers": bootstrap,
            "queue.buffering.max.messages": 2 * messages,
            "message.timeout.ms": 900_000,
            "log_level": 0,
        }
    )
    producer.produce(TOPIC, VALUE)
    producer.flush(10)
    return producer.produce


def worker(client: str, cap: int | None, messages: int) -> dict[str, float]:
    sys.path.insert(0, str(ROOT / "tests"))
    from support.broker import create_topic, start_private_broker

    configure_sdk()
    broker = start_private_broker(Path(tempfile.mkdtemp()) / "broker.log")
    try:
        create_topic(broker.bootstrap_servers, TOPIC)
        send = connected_send(client, cap, broker.bootstrap_servers, messages)
    finally:
        broker.stop()  # from now on, nothing is ever acknowledged
    gc.collect()
    before = rss_mib()
    for index in range(messages):
        send(TOPIC, VALUE, str(index).encode())
    gc.collect()
    return {"bytes_per_message": (rss_mib() - before) * 2**20 / messages}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--clients", default="kafka-python,confluent-kafka")
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        client, cap = args.worker
        result = worker(client, None if cap == "off" else int(cap), args.messages)
        print(json.dumps(result), flush=True)
        # Without waiting for the unanswered messages: os._exit skips the clients' exit
        # handlers, which would wait for the broker that is gone.
        os._exit(0)
    print(f"{args.messages:,} sends waiting for a broker that is gone: memory per message")
    titles = ["uninstrumented" if cap is None else f"cap {cap:,}" for cap in CAPS]
    print(f"{'client':16} " + " ".join(f"{title:>14}" for title in titles))
    for client in args.clients.split(","):
        row = []
        for cap in CAPS:
            done = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    f"--messages={args.messages}",
                    "--worker",
                    client,
                    "off" if cap is None else str(cap),
                ],
                capture_output=True,
                text=True,
                check=True,
                timeout=600,
            )
            result = json.loads(done.stdout.strip().splitlines()[-1])
            row.append(f"{result['bytes_per_message']:10.0f} B")
        print(f"{client:16} " + " ".join(f"{cell:>14}" for cell in row))
    print("(cap 0: no send spans at all; 100,000 is the default)")


if __name__ == "__main__":
    main()
