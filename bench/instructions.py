"""Instructions per message of the kafka-python send, iteration and poll() wrappers and of
confluent-kafka's produce(), poll() and consume(), counted by callgrind: a figure that does not
move with the machine's load, to compare two trees.

    python bench/instructions.py                        # this tree
    python bench/instructions.py --reference OLD/src    # and another, side by side

Each case runs the instrumented ``KafkaProducer.send``, ``KafkaConsumer.__next__`` or
``KafkaConsumer.poll`` (batches of 10 records, iterated as an application does), or
confluent-kafka's ``Producer.produce`` (then ``poll(0)``), ``Consumer.poll`` or ``consume``,
around a stand-in for the client's own method or C type (no broker: the wrappers' cost, not the
client's), in a fresh interpreter under ``valgrind --tool=callgrind``, for N and for 2N
messages; the difference divided by N is the cost of one message, start-up excluded. Set-ups:
``production`` (``ParentBased(TraceIdRatioBased(0.01))``, metrics collected in memory; consumed
records cycle through 200 traces, 1 in 100 sampled upstream, and sends get trace ids of which
the ratio sampler keeps exactly 1 in 100), ``nosdk`` (the API alone), ``sampled`` (every span
recorded, exported to nothing, metrics as in production), ``exported`` (as ``sampled``, and the
spans encoded as the OTLP exporters encode them, in the BatchSpanProcessor's batches of 512:
what each attribute costs again at export, on the processor's thread but in the process's CPU)
and ``unsampled`` (a parent-based sampler that drops everything). Keep N a multiple of 200 so
that production's share is exactly 1%.

The histogram budget admits measurements by the monotonic clock, and under callgrind a message
takes about a hundred times as long, more on a loaded machine: by the real clock the share it
admits would follow the machine, not the code. So the scenario's ``time.monotonic`` (which the
budget and kafka-autotrace's other timers read) is a clock that the stand-in advances by
1/1024 s per message, as if the client handed over 1,024 messages a second (a power of two,
so that its sums are exact): the budget then decides the same, message for message, on every
run, and keeps every third measurement in steady state, which N of 1,024 or more reaches in
the difference. A busier service keeps fewer. Next to each figure, "histograms/msg" is how
many histogram measurements the SDK aggregated per message (read from its metric reader after
the loop, so counting them costs the loop nothing), to tell a change in the code's cost from
one in what the budget let through. Hash randomisation is off for the same reason.
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
import collections, functools, itertools, sys, time
import kafka
from opentelemetry import trace
setup, operation, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
# 1 in 100 of these has its lower 64 bits under a 1% ratio sampler's bound.
TRACE_IDS = [(index + 1) << 64 | (1 if index % 100 else 0) << 63 for index in range(200)]
tracer_provider = meter_provider = reader = None
if setup != "nosdk":
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import Histogram, InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
    from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
    from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased, TraceIdRatioBased

    class Nowhere(SpanExporter):
        def export(self, spans):
            return SpanExportResult.SUCCESS

    class Encoded(SpanExporter):
        # Encodes the spans as the OTLP exporters do, in the batches of 512 of the SDK's
        # BatchSpanProcessor (the rest at the end), and sends them nowhere.

        def __init__(self):
            self.batch = []

        def export(self, spans):
            self.batch.extend(spans)
            if len(self.batch) >= 512:
                self.flush()
            return SpanExportResult.SUCCESS

        def flush(self):
            from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

            if self.batch:
                encode_spans(self.batch).SerializePartialToString()
            self.batch = []

    ids = None
    if setup == "production":
        ids = RandomIdGenerator()
        ids.generate_trace_id = itertools.cycle(TRACE_IDS).__next__
    ratio = {"production": 0.01, "unsampled": 0.0}
    sampler = ParentBased(TraceIdRatioBased(ratio[setup])) if setup in ratio else ALWAYS_ON
    tracer_provider = TracerProvider(sampler=sampler, id_generator=ids)
    exporter = Encoded() if setup == "exported" else Nowhere()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])

Metadata = collections.namedtuple("Metadata", "partition offset")
Record = collections.namedtuple(
    "Record", "topic partition offset timestamp key value headers"
)
if setup == "production":
    TRACES = [(trace_id, "00" if index % 100 else "01") for index, trace_id in enumerate(TRACE_IDS)]
else:
    TRACES = [(int("ab" * 16, 16), "01" if setup in ("sampled", "exported") else "00")]
HEADERS = [
    [("traceparent", f"00-{trace_id:032x}-{'cd' * 8}-{flags}".encode())]
    for trace_id, flags in TRACES
]
next_headers = itertools.cycle(HEADERS).__next__


class Clock:
    now = 1.0


time.monotonic = functools.partial(getattr, Clock, "now")


class Future:
    def add_callback(self, callback, *args):
        callback(*args, Metadata(0, 7))
        return self

    def add_errback(self, errback, *args):
        return self


def send(self, topic, value=None, key=None, headers=None, partition=None, timestamp_ms=None):
    Clock.now += 1 / 1024
    return Future()


next_offset = itertools.count().__next__


def next_(self):
    Clock.now += 1 / 1024
    return Record("orders", 0, next_offset(), 1700000000000, b"k", b"v", next_headers())


BATCH = 10
PARTITION = kafka.TopicPartition("orders", 0)


def poll(self, timeout_ms=0, max_records=None, update_offsets=True):
    return {PARTITION: [next_(self) for _ in range(BATCH)]}


# What confluent-kafka's Consumer (a C type) hands out: a message with getter methods, whose
# headers() builds a new list on every call.
class Message:
    __slots__ = ("_headers", "_offset")

    def __init__(self, offset, headers):
        self._offset = offset
        self._headers = headers

    def error(self):
        return None

    def topic(self):
        return "orders"

    def partition(self):
        return 0

    def offset(self):
        return self._offset

    def timestamp(self):
        return 1, 1700000000000  # TIMESTAMP_CREATE_TIME

    def key(self):
        return b"k"

    def value(self):
        return b"v"

    def headers(self):
        return list(self._headers)


def message():
    Clock.now += 1 / 1024
    return Message(next_offset(), next_headers())


class Consumer:
    def __init__(self, config):
        pass

    def poll(self, timeout=-1):
        return message()

    def consume(self, num_messages=1, timeout=-1):
        return [message() for _ in range(num_messages)]

    def assignment(self):
        return []

    def get_watermark_offsets(self, partition, timeout=None, cached=False):
        return 0, 0

    def cluster_id(self, timeout=-1):
        return "bench-cluster"


# What librdkafka hands a delivery callback: a message with getter methods.
class Delivered:
    def partition(self):
        return 0

    def offset(self):
        return 7


DELIVERED = Delivered()


# confluent-kafka's Producer (a C type): produce() queues the delivery callback librdkafka
# would call, with the same precedence, and poll() calls the queued ones.
class Producer:
    def __init__(self, config):
        self._default = config.get("on_delivery")
        self._reports = []

    def produce(
        self, topic, value=None, key=None, partition=-1, callback=None, on_delivery=None,
        timestamp=0, headers=None,
    ):
        Clock.now += 1 / 1024
        report = callback or on_delivery or self._default
        if report is not None:
            self._reports.append(report)

    def poll(self, timeout=-1):
        reports, self._reports = self._reports, []
        for report in reports:
            report(None, DELIVERED)
        return len(reports)

    def cluster_id(self, timeout=-1):
        return "bench-cluster"


kafka.KafkaProducer.send = send
kafka.KafkaConsumer.__next__ = next_
kafka.KafkaConsumer.poll = poll
if operation.startswith("confluent"):
    import confluent_kafka

    confluent_kafka.Consumer = Consumer
    confluent_kafka.Producer = Producer
    from kafka_autotrace.confluent_kafka import ConfluentKafkaInstrumentor

    instrumentor = ConfluentKafkaInstrumentor()
else:
    from kafka_autotrace.kafka_python import KafkaPythonInstrumentor

    instrumentor = KafkaPythonInstrumentor()
instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
if operation == "confluent-produce":
    client = confluent_kafka.Producer({"bootstrap.servers": "127.0.0.1:9092", "client.id": "bench"})
    for _ in range(count):
        client.produce("orders", b"v", b"k")  # as bench/worker.py does: no callback of its own
        client.poll(0)
elif operation.startswith("confluent"):
    client = confluent_kafka.Consumer({"bootstrap.servers": "127.0.0.1:9092", "group.id": "bench"})
    if operation == "confluent-poll":
        for _ in range(count):
            client.poll(0)
    else:
        for _ in range(count // BATCH):
            for record in client.consume(BATCH, 0):
                pass
elif operation == "produce":
    client = kafka.KafkaProducer.__new__(kafka.KafkaProducer)
    client.config = {"bootstrap_servers": "127.0.0.1:9092", "client_id": "bench"}
    for _ in range(count):
        client.send("orders", b"v", b"k")
elif operation == "consume":
    client = kafka.KafkaConsumer.__new__(kafka.KafkaConsumer)
    client.config = {"bootstrap_servers": "127.0.0.1:9092", "group_id": "bench"}
    for _ in range(count):
        next(client)
else:
    client = kafka.KafkaConsumer.__new__(kafka.KafkaConsumer)
    client.config = {"bootstrap_servers": "127.0.0.1:9092", "group_id": "bench"}
    for _ in range(count // BATCH):
        for records in client.poll().values():
            for record in records:
                pass
if setup == "exported":
    exporter.flush()
measurements = 0
if reader is not None:
    for resource in reader.get_metrics_data().resource_metrics:
        for scope in resource.scope_metrics:
            if scope.scope.name == "kafka_autotrace":
                for metric in scope.metrics:
                    if isinstance(metric.data, Histogram):
                        measurements += sum(point.count for point in metric.data.data_points)
print(measurements)
"""
SETUPS = ("production", "nosdk", "unsampled", "sampled", "exported")
OPERATIONS = (
    "produce",
    "consume",
    "poll",
    "confluent-produce",
    "confluent-poll",
    "confluent-consume",
)
_COLLECTED = re.compile(r"Collected : (\d+)")


def instructions(source: Path, setup: str, operation: str, count: int) -> tuple[int, int]:
    """Instructions callgrind counted for one run of the scenario, and the histogram
    measurements the SDK aggregated in it."""
    with tempfile.TemporaryDirectory() as scratch:
        script = Path(scratch) / "scenario.py"
        script.write_text(SCENARIO)
        env = {
            **os.environ,
            "PYTHONPATH": str(source),
            "OTEL_SDK_DISABLED": "false",
            "PYTHONHASHSEED": "0",
        }
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
    return int(match.group(1)), int(result.stdout.split()[-1])


def per_message(source: Path, setup: str, operation: str, count: int) -> tuple[float, float]:
    """Instructions and histogram measurements per message: those of 2N messages less those
    of N, over N."""
    (instructions_n, histograms_n), (instructions_2n, histograms_2n) = (
        instructions(source, setup, operation, messages) for messages in (count, 2 * count)
    )
    return (instructions_2n - instructions_n) / count, (histograms_2n - histograms_n) / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reference", type=Path, help="another tree's src/ to compare with")
    parser.add_argument(
        "--messages", type=int, default=2000, help="N (default 2000; a multiple of 200)"
    )
    parser.add_argument(
        "--setup", choices=SETUPS, action="append", help="only this set-up (repeatable)"
    )
    parser.add_argument(
        "--operation", choices=OPERATIONS, action="append", help="only this one (repeatable)"
    )
    args = parser.parse_args()
    here = Path(__file__).resolve().parents[1] / "src"
    columns = ["this tree", "histograms/msg"]
    if args.reference:
        columns += ["reference", "histograms/msg", "ratio"]
    print("| operation | set-up | " + " | ".join(columns) + " |")
    print("|---|---|" + "--:|" * len(columns))
    for operation in args.operation or OPERATIONS:
        for setup in args.setup or SETUPS:
            now, histograms = per_message(here, setup, operation, args.messages)
            cells = [f"{now:,.0f}", f"{histograms:.2f}"]
            if args.reference:
                before, then = per_message(args.reference, setup, operation, args.messages)
                cells += [f"{before:,.0f}", f"{then:.2f}", f"{now / before:.2f}x"]
            print(f"| {operation} | {setup} | " + " | ".join(cells) + " |", flush=True)
    print(
        "\ninstructions per message (callgrind), wrappers around a stand-in client method; "
        "histograms/msg: histogram measurements the SDK aggregated per message, at a clock of "
        "1,024 messages a second"
    )


if __name__ == "__main__":
    main()
