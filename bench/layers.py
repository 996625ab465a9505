"""What each layer of tracing costs a confluent-kafka ``poll()`` consumer in the run itself.

    python bench/layers.py                       # 170,000 records, 5,000 at a time
    python bench/layers.py --records 60000 --chunk 2000

Why: the floors ``run.py`` measures are tight loops, and in a real consumer the same SDK calls
cost more (the client's own code runs in between and the caches are cold). Comparing workers
across processes cannot tell a few microseconds apart on a shared machine. So this reads one
topic in one process with the SDK set up as in the benchmark's "sampled" case, and between
chunks of records swaps the core the instrumentation uses: none (uninstrumented), one with the
API's no-op tracer and meter (carrying each record's context, as without an SDK), one with the
SDK's tracer and a no-op meter (spans), and the full one (spans and metrics). The chunks
rotate through the layers, so the machine's noise falls on each alike; each layer's figure is
the median of its chunks, in CPU µs per record.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from broker import Tansu
from worker import POLL_TIMEOUT_S, configure_sdk, traceparent_for

GROUP_JOIN_S = 30.0
"""How long a poll may come back empty before the run gives up: joining the group takes a few
seconds."""
LAYERS = ("uninstrumented", "API only", "SDK spans", "SDK spans and metrics")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=170_000, help="records read in all")
    parser.add_argument("--chunk", type=int, default=5_000, help="records per chunk")
    parser.add_argument("--warmup", type=int, default=2_000, help="records read before timing")
    return parser.parse_args(argv)


def cores() -> dict[str, Any]:
    """The core each layer installs, after the SDK is set up and confluent-kafka patched."""
    from opentelemetry import trace
    from opentelemetry.metrics import NoOpMeter
    from opentelemetry.trace import NoOpTracer

    from kafka_autotrace.clients.confluent.common import TELEMETRY
    from kafka_autotrace.confluent_kafka import ConfluentKafkaInstrumentor
    from kafka_autotrace.core.telemetry import KafkaTelemetry

    ConfluentKafkaInstrumentor().instrument()
    full = TELEMETRY.telemetry
    assert full is not None
    tracer = trace.get_tracer("kafka_autotrace")
    return {
        "uninstrumented": None,
        "API only": KafkaTelemetry(NoOpTracer(), NoOpMeter("api"), full.settings),
        "SDK spans": KafkaTelemetry(tracer, NoOpMeter("spans"), full.settings),
        "SDK spans and metrics": full,
    }


def read(consumer: Any, count: int) -> None:
    """Poll until ``count`` records came back (the first may wait for the group to form)."""
    seen = 0
    deadline = time.monotonic() + GROUP_JOIN_S
    while seen < count:
        message = consumer.poll(POLL_TIMEOUT_S)
        if message is None:
            if time.monotonic() > deadline:
                raise RuntimeError(f"no record within {GROUP_JOIN_S} s, {seen} of {count} read")
            continue
        if message.error() is None:
            seen += 1
            deadline = time.monotonic() + GROUP_JOIN_S


def measure(bootstrap: str, topic: str, args: argparse.Namespace) -> dict[str, list[float]]:
    """CPU µs per record of every chunk, by layer."""
    configure_sdk("sampled")
    layers = cores()
    import confluent_kafka

    from kafka_autotrace.clients.confluent.common import TELEMETRY

    consumer = confluent_kafka.Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"layers-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    read(consumer, args.warmup)
    chunks: dict[str, list[float]] = {layer: [] for layer in LAYERS}
    for index in range((args.records - args.warmup) // args.chunk):
        layer = LAYERS[index % len(LAYERS)]
        TELEMETRY.telemetry = layers[layer]
        started = time.process_time()
        read(consumer, args.chunk)
        chunks[layer].append((time.process_time() - started) / args.chunk * 1e6)
    consumer.close()
    return chunks


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="kafka-autotrace-layers-"))
    broker = Tansu(work / "tansu.log")
    try:
        topic = f"layers-{uuid.uuid4().hex[:8]}"
        broker.create_topic(topic)
        broker.fill(topic, args.records, [traceparent_for("sampled")])
        chunks = measure(broker.bootstrap, topic, args)
    finally:
        broker.stop()
    print(f"confluent-kafka poll(), {args.chunk:,} records a chunk, CPU µs per record:\n")
    print("| layer | chunks | median | added by the layer |")
    print("|---|--:|--:|--:|")
    below = None
    for layer in LAYERS:
        median = statistics.median(chunks[layer])
        added = "—" if below is None else f"{median - below:.1f}"
        print(f"| {layer} | {len(chunks[layer])} | {median:.1f} | {added} |")
        below = median


if __name__ == "__main__":
    main()
