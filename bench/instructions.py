"""Instructions per message of the kafka-python send and iteration wrappers, counted by
callgrind: a figure that does not move with the machine's load, to compare two trees.

    python bench/instructions.py                        # this tree
    python bench/instructions.py --reference OLD/src    # and another, side by side

Each case runs the instrumented ``KafkaProducer.send`` or ``KafkaConsumer.__next__`` around a
stand-in for the client's own method (no broker: the wrappers' cost, not the client's), in a
fresh interpreter under ``valgrind --tool=callgrind``, for N and for 2N messages; the difference
divided by N is the cost of one message, start-up excluded. Set-ups: ``nosdk`` (the API
alone), ``sampled`` (every span recorded, exported to nothing, metrics collected in memory)
and ``unsampled`` (a parent-based sampler that drops everything).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

SCENARIO = r"""
import collections, sys
import kafka
from opentelemetry import trace
setup, operation, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
tracer_provider = meter_provider = None
if setup != "nosdk":
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
    from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased, TraceIdRatioBased

    class Nowhere(SpanExporter):
        def export(self, spans):
            return SpanExportResult.SUCCESS

    sampler = ALWAYS_ON if setup == "sampled" else ParentBased(TraceIdRatioBased(0.0))
    tracer_provider = TracerProvider(sampler=sampler)
    tracer_provider.add_span_processor(SimpleSpanProcessor(Nowhere()))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])

Metadata = collections.namedtuple("Metadata", "partition offset")
Record = collections.namedtuple(
    "Record", "topic partition offset timestamp key value headers"
)
flags = "01" if setup == "sampled" else "00"
HEADERS = [("traceparent", f"00-{'ab' * 16}-{'cd' * 8}-{flags}".encode())]


class Future:
    def add_callback(self, callback, *args):
        callback(*args, Metadata(0, 7))
        return self

    def add_errback(self, errback, *args):
        return self


def send(self, topic, value=None, key=None, headers=None, partition=None, timestamp_ms=None):
    return Future()


def next_(self):
    return Record("orders", 0, 7, 1700000000000, b"k", b"v", HEADERS)


kafka.KafkaProducer.send = send
kafka.KafkaConsumer.__next__ = next_
from kafka_autotrace.kafka_python import KafkaPythonInstrumentor

KafkaPythonInstrumentor().instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
if operation == "produce":
    client = kafka.KafkaProducer.__new__(kafka.KafkaProducer)
    client.config = {"bootstrap_servers": "127.0.0.1:9092", "client_id": "bench"}
    for _ in range(count):
        client.send("orders", b"v", b"k")
else:
    client = kafka.KafkaConsumer.__new__(kafka.KafkaConsumer)
    client.config = {"bootstrap_servers": "127.0.0.1:9092", "group_id": "bench"}
    for _ in range(count):
        next(client)
"""
SETUPS = ("nosdk", "unsampled", "sampled")
OPERATIONS = ("produce", "consume")
_COLLECTED = re.compile(r"Collected : (\d+)")


def instructions(source: Path, setup: str, operation: str, count: int) -> int:
    """Instructions callgrind counted for one run of the scenario."""
    with tempfile.TemporaryDirectory() as scratch:
        script = Path(scratch) / "scenario.py"
        script.write_text(SCENARIO)
        env = {**os.environ, "PYTHONPATH": str(source), "OTEL_SDK_DISABLED": "false"}
        result = subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={scratch}/out",
                sys.executable,
                str(script),
                setup,
                operation,
                str(count),
            ],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
    match = _COLLECTED.search(result.stderr)
    if match is None:
        raise RuntimeError(f"callgrind counted nothing:\n{result.stderr[-2000:]}")
    return int(match.group(1))


def per_message(source: Path, setup: str, operation: str, count: int) -> float:
    return (
        instructions(source, setup, operation, 2 * count)
        - instructions(source, setup, operation, count)
    ) / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reference", type=Path, help="another tree's src/ to compare with")
    parser.add_argument("--messages", type=int, default=2000, help="N (default 2000)")
    args = parser.parse_args()
    here = Path(__file__).resolve().parents[1] / "src"
    columns = ["this tree"] + (["reference", "ratio"] if args.reference else [])
    print("| operation | set-up | " + " | ".join(columns) + " |")
    print("|---|---|" + "--:|" * len(columns))
    for operation in OPERATIONS:
        for setup in SETUPS:
            now = per_message(here, setup, operation, args.messages)
            cells = [f"{now:,.0f}"]
            if args.reference:
                before = per_message(args.reference, setup, operation, args.messages)
                cells += [f"{before:,.0f}", f"{now / before:.2f}x"]
            print(f"| {operation} | {setup} | " + " | ".join(cells) + " |", flush=True)
    print("\ninstructions per message (callgrind), wrappers around a stand-in client method")


if __name__ == "__main__":
    main()
