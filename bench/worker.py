"""One benchmark case, measured in a fresh process, printed as one JSON line.

Why a process per case: instrumentation patches client classes globally and the SDK keeps
global providers, so the only way to know that case B is not paying for what case A
installed is to never let them share an interpreter. The driver (``bench/run.py``) picks the
virtualenv (ours, the upstream contrib packages', or one without the OpenTelemetry SDK),
fills the topic for consume cases, and alternates cases in rounds.

Only the hot loop is timed: client start-up, metadata and connection set-up are covered by a
warm-up that goes through the same instrumented calls first. For producers the loop includes
the final ``flush()``, because kafka-autotrace ends send spans at the broker's acknowledgement
and that work must be counted.

The *floor* is the least the span we emit costs: in this same process, with the same tracer
provider, start and end a span with the same name, kind, parent and attributes, many times,
the cheapest way to the SDK's result (a span the sampler drops made without the SDK, as
kafka-autotrace makes it; every other span by the SDK). Whatever kafka-autotrace adds beyond
it is our own overhead, or the metrics: so the SDK's price of one histogram measurement with
the same attributes is measured too, and for consumers the least it costs to carry a record's
trace on (read it, make it current).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import itertools
import json
import resource
import statistics
import sys
import time
from collections.abc import Sequence
from functools import partial
from typing import Any, Callable

VALUE = b"v" * 100
KEY = b"order-4711"
POLL_TIMEOUT_S = 5.0
CONSUME_BATCH = 500
FLOOR_CHUNKS = 5

SETUPS = ("production", "sampled", "spans", "unsampled", "nosdk")
"""How OpenTelemetry is configured in a case; :func:`configure_sdk` says what each means.
``production`` comes first: it is the set-up a service runs, and every table leads with it."""
PRODUCTION_RATIO = 0.01
PRODUCTION_EVERY = 100
"""In the production set-up, 1 consumed record in ``PRODUCTION_EVERY`` carries a sampled trace."""
METRIC_SETUPS = ("production", "sampled", "unsampled")
"""The set-ups with a meter provider, whose workers export metrics (at shutdown)."""
SCOPE = "kafka_autotrace"
"""The instrumentation scope of kafka-autotrace's tracer and meter; the floors use it too."""
FLOOR_HISTOGRAM = "bench.floor"
"""The histogram the metric floor records into, which the driver leaves out of its count."""
TRACEPARENT_SAMPLED = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
TRACEPARENT_UNSAMPLED = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"


def traceparent_for(setup: str) -> bytes:
    """A trace header like those the consume topics are filled with: an upstream producer that
    sampled (or, in the ratio-0 set-up, did not), since a parent-based sampler follows that
    flag. For ``production`` the sampled one; :func:`traceparents_for` gives the mix."""
    return TRACEPARENT_UNSAMPLED if setup == "unsampled" else TRACEPARENT_SAMPLED


def traceparents_for(setup: str) -> list[bytes]:
    """The trace headers the consume topics are filled with, record ``i`` getting
    ``headers[i % len(headers)]``. In the production set-up each record is a trace of its own
    and 1 in ``PRODUCTION_EVERY`` was sampled upstream (trace flags 01, the rest 00), as with
    a 1% ratio sampler at the producer."""
    if setup != "production":
        return [traceparent_for(setup)]
    return [
        b"00-%032x-%016x-%s"
        % (0x5EED0000 + index, 0xB7AD0000 + index, b"01" if not index else b"00")
        for index in range(PRODUCTION_EVERY)
    ]


# -- OpenTelemetry set-up ---------------------------------------------------------------------


class Telemetry:
    """The SDK providers of a case, if any, and the count of sampled spans that ended (each
    one the BatchSpanProcessor queues for export), to check against what the receiver got."""

    def __init__(self) -> None:
        self.tracer_provider: Any = None
        self.meter_provider: Any = None
        self.spans_ended = 0
        self.max_queue_size = 0

    def flush(self) -> None:
        """Export every span ended so far (the clock runs through it: exporting is part of
        what tracing costs)."""
        if self.tracer_provider is not None:
            self.tracer_provider.force_flush()

    def shutdown(self) -> None:
        if self.tracer_provider is not None:
            self.tracer_provider.shutdown()
        if self.meter_provider is not None:
            self.meter_provider.shutdown()


def configure_sdk(args: argparse.Namespace) -> Telemetry:
    """Install global SDK providers as ``opentelemetry-instrument`` would, exporting over
    OTLP/HTTP to ``args.otlp_endpoint`` (the driver's counting receiver); nothing for ``nosdk``.

    - ``production``: ``ParentBased(TraceIdRatioBased(0.01))``; consumed records carry a
      trace sampled for 1 in 100 of them; metrics with a periodic exporting reader.
    - ``sampled``: every message sampled; metrics as in production.
    - ``spans``: every message sampled, no meter provider (``OTEL_METRICS_EXPORTER=none``), so
      metric measurements go to the API's no-op.
    - ``unsampled``: ``ParentBased(TraceIdRatioBased(0))``, records carry an unsampled trace.

    Spans go through ``BatchSpanProcessor(OTLPSpanExporter())`` with the SDK's defaults (batches
    of 512, 5 s delay) except the queue, which is made big enough for every span of the case so
    that none is dropped; the driver checks that the receiver got them all. Metrics go through
    ``PeriodicExportingMetricReader(OTLPMetricExporter())`` at its default interval (60 s:
    exported at shutdown, after the clock stopped; its cost per message is what each
    measurement pays the SDK's aggregation).
    """
    telemetry = Telemetry()
    if args.setup == "nosdk":
        return telemetry
    from opentelemetry import metrics, trace
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.sampling import (
        DEFAULT_ON,
        ParentBased,
        TraceIdRatioBased,
    )

    class Counting(SpanProcessor):
        """Counts the spans the BatchSpanProcessor gets to export (sampled ones)."""

        def on_end(self, span: Any) -> None:
            if span.context.trace_flags.sampled:
                telemetry.spans_ended += 1

    samplers = {
        "production": ParentBased(TraceIdRatioBased(PRODUCTION_RATIO)),
        "unsampled": ParentBased(TraceIdRatioBased(0.0)),
    }
    tracer_provider = TracerProvider(sampler=samplers.get(args.setup, DEFAULT_ON))
    # At most two spans a message (a batch's poll span and a process span per record), plus
    # the floor's; no span may be dropped however far the exporter falls behind.
    telemetry.max_queue_size = max(
        2048, 2 * (args.warmup + args.messages) + args.floor_iterations + 1024
    )
    tracer_provider.add_span_processor(Counting())
    tracer_provider.add_span_processor(
        BatchSpanProcessor(
            OTLPSpanExporter(endpoint=f"{args.otlp_endpoint}/v1/traces"),
            max_queue_size=telemetry.max_queue_size,
        )
    )
    trace.set_tracer_provider(tracer_provider)
    telemetry.tracer_provider = tracer_provider
    if args.setup in METRIC_SETUPS:
        reader = PeriodicExportingMetricReader(
            OTLPMetricExporter(endpoint=f"{args.otlp_endpoint}/v1/metrics")
        )
        meter_provider = MeterProvider(metric_readers=[reader])
        metrics.set_meter_provider(meter_provider)
        telemetry.meter_provider = meter_provider
    return telemetry


def instrument(client: str, variant: str) -> None:
    """Patch ``client`` with kafka-autotrace (``autotrace``) or upstream contrib (``upstream``)."""
    if variant in ("none", "header"):
        return
    if variant == "autotrace":
        if client == "kafka-python":
            from kafka_autotrace.kafka_python import KafkaPythonInstrumentor

            KafkaPythonInstrumentor().instrument()
        else:
            module = importlib.import_module("kafka_autotrace.confluent_kafka")
            module.ConfluentKafkaInstrumentor().instrument()
    elif client == "kafka-python":
        from opentelemetry.instrumentation.kafka import KafkaInstrumentor

        KafkaInstrumentor().instrument()
    else:
        from opentelemetry.instrumentation.confluent_kafka import ConfluentKafkaInstrumentor

        ConfluentKafkaInstrumentor().instrument()


# -- hot loops ----------------------------------------------------------------------------------
# Each runs its warm-up, then the measured messages between clock.start() and clock.stop().
# Client classes are looked up on their module at call time: upstream confluent-kafka
# instrumentation replaces the classes there.


class Clock:
    """Wall and CPU time of the hot loop.

    CPU time (every thread of this process, librdkafka's included) is what tracing costs in
    the end; unlike wall time it leaves out the time this process waited for a core that
    another process held, which on a shared 2-core machine is most of the noise.
    """

    wall = cpu = 0.0

    def __init__(self, flush: Callable[[], None] = lambda: None) -> None:
        self._flush = flush
        """Exports the spans ended so far: before the clock starts, so that the warm-up's are
        not counted, and before it stops, so that the measured messages' all are."""

    def start(self) -> None:
        self._flush()
        self._wall, self._cpu = time.perf_counter(), time.process_time()

    def stop(self) -> None:
        self._flush()
        self.wall = time.perf_counter() - self._wall
        self.cpu = time.process_time() - self._cpu


def kafka_python_produce(args: argparse.Namespace, clock: Clock) -> None:
    import kafka

    producer = kafka.KafkaProducer(bootstrap_servers=args.bootstrap)
    topic, send = args.topic, producer.send
    if args.variant == "header":
        send = partial(send, headers=[("traceparent", TRACEPARENT_SAMPLED)])
    for _ in range(args.warmup):
        send(topic, VALUE, KEY)
    producer.flush()
    clock.start()
    for _ in range(args.messages):
        send(topic, VALUE, KEY)
    producer.flush()
    clock.stop()
    producer.close()


def kafka_python_consume(args: argparse.Namespace, clock: Clock) -> None:
    import kafka

    consumer = kafka.KafkaConsumer(
        bootstrap_servers=args.bootstrap, group_id=args.group, enable_auto_commit=False
    )
    consumer.assign([kafka.TopicPartition(args.topic, 0)])
    consumer.seek_to_beginning()
    target = args.warmup + args.messages
    for seen, record in enumerate(consumer, 1):
        record.value  # noqa: B018 - the application reads the message
        if seen == args.warmup:
            clock.start()
        if seen == target:
            break
    clock.stop()
    consumer.close()


def confluent_produce(args: argparse.Namespace, clock: Clock) -> None:
    import confluent_kafka

    producer = confluent_kafka.Producer({"bootstrap.servers": args.bootstrap})
    topic = args.topic

    def run(count: int) -> None:
        produce, poll = producer.produce, producer.poll
        if args.variant == "header":
            produce = partial(produce, headers=[("traceparent", TRACEPARENT_SAMPLED)])
        for _ in range(count):
            try:
                produce(topic, VALUE, KEY)
            except BufferError:
                poll(0.1)
                produce(topic, VALUE, KEY)
            poll(0)
        producer.flush()

    run(args.warmup)
    clock.start()
    run(args.messages)
    clock.stop()


def _confluent_consumer(args: argparse.Namespace) -> Any:
    import confluent_kafka

    consumer = confluent_kafka.Consumer(
        {
            "bootstrap.servers": args.bootstrap,
            "group.id": args.group,
            "enable.auto.commit": False,
        }
    )
    consumer.assign(
        [confluent_kafka.TopicPartition(args.topic, 0, confluent_kafka.OFFSET_BEGINNING)]
    )
    return consumer


def confluent_poll(args: argparse.Namespace, clock: Clock) -> None:
    consumer = _confluent_consumer(args)
    poll = consumer.poll
    seen, target = 0, args.warmup + args.messages
    while seen < target:
        message = poll(POLL_TIMEOUT_S)
        if message is None:
            raise RuntimeError(f"no message within {POLL_TIMEOUT_S} s after {seen}")
        if message.error() is not None:
            continue
        message.value()
        seen += 1
        if seen == args.warmup:
            clock.start()
    clock.stop()
    consumer.close()


def confluent_consume(args: argparse.Namespace, clock: Clock) -> None:
    """``consume(n)`` batches of up to ``CONSUME_BATCH``, never asking for more than remain,
    since librdkafka waits out the timeout for a batch the topic cannot fill."""
    consumer = _confluent_consumer(args)
    consume = consumer.consume

    def take(count: int) -> None:
        seen = 0
        while seen < count:
            messages = consume(min(CONSUME_BATCH, count - seen), POLL_TIMEOUT_S)
            if not messages:
                raise RuntimeError(f"no message within {POLL_TIMEOUT_S} s")
            for message in messages:
                if message.error() is None:
                    message.value()
                    seen += 1

    take(args.warmup)
    clock.start()
    take(args.messages)
    clock.stop()
    consumer.close()


OPERATIONS: dict[tuple[str, str], Callable[[argparse.Namespace, Clock], None]] = {
    ("kafka-python", "produce"): kafka_python_produce,
    ("kafka-python", "consume"): kafka_python_consume,
    ("confluent-kafka", "produce"): confluent_produce,
    ("confluent-kafka", "poll"): confluent_poll,
    ("confluent-kafka", "consume"): confluent_consume,
}


# -- the SDK floor --------------------------------------------------------------------------------


def floor_span(args: argparse.Namespace) -> tuple[str, Any, dict[str, Any], list[Any]]:
    """Name, kind, attributes and parent contexts of the span kafka-autotrace emits per message
    in this case, with every attribute it carries by default (the ack's partition and offset
    included; no client id or server port) given at start, which is the cheapest way the SDK
    can record them. The parents are those of the consumed records, in their mix (production:
    1 sampled in 100); a send has none (a root span, which the production sampler keeps 1 time
    in 100)."""
    from opentelemetry import trace
    from opentelemetry.context import Context
    from opentelemetry.propagate import extract
    from opentelemetry.semconv._incubating.attributes import messaging_attributes as m
    from opentelemetry.semconv.attributes import server_attributes as s

    from kafka_autotrace.core.attributes import PIPELINE_AGE_ATTRIBUTE, PIPELINE_ORIGIN

    host = args.bootstrap.partition(",")[0].rpartition(":")[0]
    attributes: dict[str, Any] = {
        m.MESSAGING_SYSTEM: "kafka",
        s.SERVER_ADDRESS: host,
        m.MESSAGING_DESTINATION_NAME: args.topic,
        m.MESSAGING_DESTINATION_PARTITION_ID: "0",
        m.MESSAGING_KAFKA_OFFSET: 12345,
        m.MESSAGING_KAFKA_MESSAGE_KEY: KEY.decode(),
    }
    if args.operation == "produce":
        attributes[m.MESSAGING_OPERATION_NAME] = "send"
        attributes[m.MESSAGING_OPERATION_TYPE] = "send"
        return f"send {args.topic}", trace.SpanKind.PRODUCER, attributes, [None]
    attributes[m.MESSAGING_OPERATION_NAME] = "process"
    attributes[m.MESSAGING_OPERATION_TYPE] = "process"
    attributes[m.MESSAGING_CONSUMER_GROUP_NAME] = args.group
    attributes[PIPELINE_ORIGIN] = args.topic
    attributes[PIPELINE_AGE_ATTRIBUTE] = 0.004
    parents = [
        extract({"traceparent": header.decode()}, context=Context())
        for header in traceparents_for(args.setup)
    ]
    return f"process {args.topic}", trace.SpanKind.CONSUMER, attributes, parents


def floor_metric_attributes(args: argparse.Namespace) -> dict[str, Any]:
    """The attributes kafka-autotrace records the case's per-message histograms with."""
    from opentelemetry.semconv._incubating.attributes import messaging_attributes as m
    from opentelemetry.semconv.attributes import server_attributes as s

    host, _, port = args.bootstrap.partition(",")[0].rpartition(":")
    operation = "send" if args.operation == "produce" else "process"
    attributes: dict[str, Any] = {
        m.MESSAGING_SYSTEM: "kafka",
        m.MESSAGING_OPERATION_NAME: operation,
        m.MESSAGING_DESTINATION_NAME: args.topic,
        s.SERVER_ADDRESS: host,
        s.SERVER_PORT: int(port),
    }
    if operation == "process":
        attributes[m.MESSAGING_CONSUMER_GROUP_NAME] = args.group
    else:  # the send's histogram is messaging.client.operation.duration, which names its type
        attributes[m.MESSAGING_OPERATION_TYPE] = "send"
    return attributes


def _cpu_us_per_call(
    call: Callable[[], object], iterations: int, flush: Callable[[], None] = lambda: None
) -> float:
    """Median CPU µs of ``call`` over a few chunks of iterations, each chunk timed through
    ``flush`` (the export of the spans it ended, so that a span's floor includes its export)."""
    per_chunk = max(iterations // FLOOR_CHUNKS, 1)
    chunks = []
    for _ in range(FLOOR_CHUNKS):
        flush()
        started = time.process_time()
        for _ in range(per_chunk):
            call()
        flush()
        chunks.append((time.process_time() - started) / per_chunk * 1e6)
    return statistics.median(chunks)


def _span_starter(tracer: Any) -> Any:
    """The cheapest way to the span the SDK would make: kafka-autotrace's own, where the tree
    measured has one (a reference tree may predate it)."""
    try:
        from kafka_autotrace.core.unsampled import SpanStarter
    except ImportError:
        return tracer.start_span
    return SpanStarter(tracer).start


def measure_floors(args: argparse.Namespace, telemetry: Telemetry) -> dict[str, float]:
    """The SDK's own price, in CPU µs, for what kafka-autotrace records per message: the span
    (start and end), and one histogram measurement with the case's metric attributes (how many
    of those a message got, the budget's sampling included, the driver counts in the metrics
    this worker exports).

    For consumers also the least that carrying a record's trace on costs, with or without an
    SDK: reading its ``traceparent`` (kafka-autotrace's own reader, which takes a canonical
    header at half the propagator's price) and making that context current, then restoring
    the previous one."""
    from opentelemetry import context, metrics, trace

    from kafka_autotrace.core.propagation import extract_context

    name, kind, attributes, parents = floor_span(args)
    start_span = _span_starter(trace.get_tracer(SCOPE))
    next_parent = itertools.cycle(parents).__next__
    histogram = metrics.get_meter(SCOPE).create_histogram(FLOOR_HISTOGRAM, unit="s")
    metric_attributes = floor_metric_attributes(args)
    floors = {
        "floor_cpu_us": _cpu_us_per_call(
            lambda: start_span(name, context=next_parent(), kind=kind, attributes=attributes).end(),
            args.floor_iterations,
            telemetry.flush,
        ),
        "metric_floor_cpu_us": _cpu_us_per_call(
            lambda: histogram.record(0.001, metric_attributes), args.floor_iterations
        ),
    }
    if args.operation != "produce":
        next_headers = itertools.cycle(
            [[("traceparent", header)] for header in traceparents_for(args.setup)]
        ).__next__
        floors["context_floor_cpu_us"] = _cpu_us_per_call(
            lambda: context.detach(context.attach(extract_context(next_headers()))),
            args.floor_iterations,
        )
    return floors


# -- entry point ----------------------------------------------------------------------------------


def peak_rss_mib() -> float:
    """This process's peak resident set size.

    Linux keeps ``ru_maxrss`` across ``execve``, so a worker started by a large driver would
    report the driver's size; the kernel's per-address-space high-water mark (``VmHWM``) starts
    afresh at exec. Elsewhere, ``ru_maxrss`` (KiB on Linux, bytes on macOS) is the best there is.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024 / (1024 if sys.platform == "darwin" else 1)


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--client", required=True, choices=["kafka-python", "confluent-kafka"])
    parser.add_argument("--operation", required=True, choices=["produce", "consume", "poll"])
    parser.add_argument(
        "--variant",
        required=True,
        choices=["none", "header", "upstream", "autotrace"],
        help="header: uninstrumented, but every record sent carries a traceparent header",
    )
    parser.add_argument("--setup", required=True, choices=SETUPS)
    parser.add_argument("--messages", type=int, required=True)
    parser.add_argument("--warmup", type=int, default=1000)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--group", default="bench")
    parser.add_argument(
        "--floor-iterations", type=int, default=0, help="0: do not measure the SDK floor"
    )
    parser.add_argument(
        "--otlp-endpoint",
        default="http://127.0.0.1:4318",
        help="base URL of the OTLP/HTTP receiver the SDK set-ups export to",
    )
    args = parser.parse_args(argv)
    if args.warmup < 1:
        parser.error("--warmup must be at least 1: the clock starts on the last warm-up message")
    if (args.client, args.operation) not in OPERATIONS:
        parser.error(f"{args.client} has no operation {args.operation}")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    telemetry = configure_sdk(args)
    instrument(args.client, args.variant)
    clock = Clock(telemetry.flush)
    OPERATIONS[(args.client, args.operation)](args, clock)
    spans_of_messages = telemetry.spans_ended  # warm-up and measured messages
    floors = measure_floors(args, telemetry) if args.floor_iterations else {}
    # Every span left goes out now; the driver compares spans_ended with what it received.
    telemetry.shutdown()
    result = {
        "client": args.client,
        "operation": args.operation,
        "variant": args.variant,
        "setup": args.setup,
        "messages": args.messages,
        "seconds": clock.wall,
        "cpu_seconds": clock.cpu,
        "msg_per_s": args.messages / clock.wall,
        "cpu_us_per_msg": clock.cpu / args.messages * 1e6,
        **floors,
        "spans_ended": telemetry.spans_ended,
        "spans_of_messages": spans_of_messages,
        "span_queue_size": telemetry.max_queue_size,
        "peak_rss_mib": peak_rss_mib(),
        "python": sys.version.split()[0],
        "versions": {
            name: _version(name)
            for name in (
                "opentelemetry-api",
                "opentelemetry-sdk",
                "opentelemetry-exporter-otlp-proto-http",
                "kafka-python",
                "confluent-kafka",
                "kafka-autotrace",
                "opentelemetry-instrumentation-kafka-python",
                "opentelemetry-instrumentation-confluent-kafka",
            )
        },
    }
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
