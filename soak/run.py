"""Memory over a long run: messages produced and consumed through instrumented clients.

    python soak/run.py                                   # both clients, 500,000 messages each
    python soak/run.py --messages 100000 --clients kafka-python

Each client runs in a process of its own (so one client's memory cannot hide in the other's),
instrumented by kafka-autotrace into an SDK set up as a service's would be: a
BatchSpanProcessor with its default queue and an exporter that drops what it is given (the
network is not what is measured), and a periodic metric reader with an exporter that does the
same. Every message is sampled. The messages go through a four-partition topic on a private
noida-db broker (which stalls above ~700k records in one partition) in rounds: send a round's
messages and wait for every acknowledgement, then consume them, each record handled while its
process span is current. After every round, RSS and the number of live Python objects (what
a leak in Python code would grow) are read. RSS also grows while the C allocator's arenas settle
under several threads; memory is flat when neither grows once that warm-up is done.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PARTITIONS = 4
VALUE = b"v" * 100


def rss_mib() -> float:
    """Resident memory now (not the peak), from /proc: Linux only, like the test broker."""
    with open(f"/proc/{os.getpid()}/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def configure_sdk() -> Any:
    """Global SDK providers that record everything and export nowhere; returns the tracer
    provider, whose shutdown flushes the last batch."""
    from opentelemetry import metrics, trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import (
        MetricExporter,
        MetricExportResult,
        PeriodicExportingMetricReader,
    )
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    class DropSpans(SpanExporter):  # type: ignore[misc]
        exported = 0

        def export(self, spans: Sequence[Any]) -> SpanExportResult:
            DropSpans.exported += len(spans)
            return SpanExportResult.SUCCESS

    class DropMetrics(MetricExporter):  # type: ignore[misc]
        def export(self, metrics_data: Any, timeout_millis: float = 0, **kwargs: Any) -> Any:
            return MetricExportResult.SUCCESS

        def force_flush(self, timeout_millis: float = 0) -> bool:
            return True

        def shutdown(self, timeout_millis: float = 0, **kwargs: Any) -> None:
            pass

    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(DropSpans()))
    trace.set_tracer_provider(tracer_provider)
    reader = PeriodicExportingMetricReader(DropMetrics(), export_interval_millis=5000)
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
    return tracer_provider, DropSpans


class KafkaPythonClients:
    def __init__(self, bootstrap: str, topic: str) -> None:
        from kafka import KafkaConsumer, KafkaProducer, TopicPartition

        self.topic = topic
        self.producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
        self.consumer = KafkaConsumer(
            bootstrap_servers=bootstrap, auto_offset_reset="earliest", consumer_timeout_ms=30_000
        )
        self.consumer.assign([TopicPartition(topic, p) for p in range(PARTITIONS)])

    def produce(self, start: int, count: int) -> None:
        for index in range(start, start + count):
            self.producer.send(self.topic, VALUE, key=str(index).encode())
        self.producer.flush(timeout=60)

    def consume(self, count: int) -> None:
        for seen, record in enumerate(self.consumer, 1):
            record.value  # noqa: B018 - the application reads the message
            if seen == count:
                return
        raise SystemExit("the consumer ran dry")


class ConfluentClients:
    def __init__(self, bootstrap: str, topic: str) -> None:
        import confluent_kafka

        self.topic = topic
        self.producer = confluent_kafka.Producer({"bootstrap.servers": bootstrap})
        self.consumer = confluent_kafka.Consumer(
            {"bootstrap.servers": bootstrap, "group.id": topic, "enable.auto.commit": False}
        )
        self.consumer.assign(
            [
                confluent_kafka.TopicPartition(topic, p, confluent_kafka.OFFSET_BEGINNING)
                for p in range(PARTITIONS)
            ]
        )

    def produce(self, start: int, count: int) -> None:
        produce, poll = self.producer.produce, self.producer.poll
        for index in range(start, start + count):
            while True:
                try:
                    produce(self.topic, VALUE, str(index).encode())
                    break
                except BufferError:
                    poll(0.05)
            poll(0)
        if self.producer.flush(60) != 0:
            raise SystemExit("messages left unacknowledged")

    def consume(self, count: int) -> None:
        seen = 0
        while seen < count:
            message = self.consumer.poll(30)
            if message is None:
                raise SystemExit("the consumer ran dry")
            if message.error() is None:
                message.value()
                seen += 1


def worker(args: argparse.Namespace) -> None:
    """One client's run; prints one JSON line per round."""
    tracer_provider, exported = configure_sdk()
    if args.client == "kafka-python":
        from kafka_autotrace.kafka_python import KafkaPythonInstrumentor as Instrumentor

        clients_class: type[KafkaPythonClients | ConfluentClients] = KafkaPythonClients
    else:
        from kafka_autotrace.confluent_kafka import ConfluentKafkaInstrumentor as Instrumentor

        clients_class = ConfluentClients
    if not args.uninstrumented:
        Instrumentor().instrument()
    clients = clients_class(args.bootstrap, args.topic)
    gc.collect()
    first = {"round": 0, "messages": 0, "rss_mib": rss_mib(), "objects": len(gc.get_objects())}
    print(json.dumps(first), flush=True)
    done, round_index, started = 0, 0, time.monotonic()
    while done < args.messages:
        count = min(args.round, args.messages - done)
        clients.produce(done, count)
        clients.consume(count)
        done += count
        round_index += 1
        gc.collect()
        sample = {
            "round": round_index,
            "messages": done,
            "rss_mib": rss_mib(),
            "objects": len(gc.get_objects()),
            "seconds": time.monotonic() - started,
            "spans_exported": exported.exported,
        }
        print(json.dumps(sample), flush=True)
    tracer_provider.shutdown()


def at(samples: list[dict[str, Any]], fraction: float) -> dict[str, Any]:
    """The first sample at or past ``fraction`` of the run."""
    total = samples[-1]["messages"]
    return next(sample for sample in samples if sample["messages"] >= fraction * total)


def drive(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(ROOT / "tests"))
    from support.broker import create_topic, start_private_broker, unique_topic

    broker = start_private_broker(Path(tempfile.mkdtemp()) / "broker.log")
    results = {}
    runs = [(client, False) for client in args.clients.split(",")]
    if args.control:
        runs += [(client, True) for client in args.clients.split(",")]
    try:
        for client, uninstrumented in runs:
            label = f"{client}{' (control)' if uninstrumented else ''}"
            topic = create_topic(broker.bootstrap_servers, unique_topic("soak"), PARTITIONS)
            command = [
                sys.executable,
                __file__,
                "--worker",
                f"--client={client}",
                f"--bootstrap={broker.bootstrap_servers}",
                f"--topic={topic}",
                f"--messages={args.messages}",
                f"--round={args.round}",
                *(["--uninstrumented"] if uninstrumented else []),
            ]
            print(f"== {label}: {args.messages:,} messages in rounds of {args.round:,}")
            samples = []
            with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:
                assert process.stdout is not None
                for line in process.stdout:
                    samples.append(json.loads(line))
                    sample = samples[-1]
                    if sample["round"] % 10 == 0:
                        print(f"   {sample}", flush=True)
            if process.returncode != 0:
                raise SystemExit(f"{label} worker failed with {process.returncode}")
            results[label] = samples
    finally:
        broker.stop()

    print(
        "\nRSS in MiB before the first message, after 10% (warm-up), 50% and 100% of the run;"
        " its change over the second half; live Python objects at 50% and 100%"
    )
    print(
        f"{'client':26} {'messages':>9} {'start':>7} {'10%':>7} {'50%':>7} {'100%':>7}"
        f" {'2nd half':>8} {'objects 50%':>11} {'100%':>7} {'msg/s':>6}"
    )
    for client, samples in results.items():
        first, warm, middle, last = samples[0], at(samples, 0.1), at(samples, 0.5), samples[-1]
        print(
            f"{client:26} {last['messages']:>9,} {first['rss_mib']:7.1f} {warm['rss_mib']:7.1f}"
            f" {middle['rss_mib']:7.1f} {last['rss_mib']:7.1f}"
            f" {last['rss_mib'] - middle['rss_mib']:+8.1f} {middle['objects']:>11,}"
            f" {last['objects']:>7,} {2 * last['messages'] / last['seconds']:6.0f}"
        )
    print("(msg/s: messages sent plus messages consumed, per second of the whole run;")
    print(" control: the same run with the same SDK and no instrumentation)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=500_000, help="per client")
    parser.add_argument("--round", type=int, default=10_000, help="messages per round")
    parser.add_argument("--clients", default="kafka-python,confluent-kafka")
    parser.add_argument(
        "--control", action="store_true", help="also run each client without instrumentation"
    )
    parser.add_argument("--uninstrumented", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--client", help=argparse.SUPPRESS)
    parser.add_argument("--bootstrap", help=argparse.SUPPRESS)
    parser.add_argument("--topic", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
    else:
        drive(args)


if __name__ == "__main__":
    main()
