"""Where one benchmark case spends its CPU: a py-spy profile of the worker, summarised.

    python bench/hotspots.py --client kafka-python --operation consume --setup sampled
    python bench/hotspots.py --client confluent-kafka --operation produce --variant upstream

Why: a benchmark says how much tracing costs, not where. This runs the same worker as
``bench/run.py`` under py-spy, sampling whichever thread holds the GIL (so the client's I/O
thread, the span processor's thread and delivery callbacks count too, and threads waiting on a
socket do not), then groups the samples by who owns the time: the OpenTelemetry SDK's spans,
its metrics, the propagators, kafka-autotrace (or upstream's instrumentation), and the client
library. Time in C code that keeps the GIL (librdkafka's produce) appears under the Python
function that called it.
"""

from __future__ import annotations

import argparse
import collections
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Sequence
from pathlib import Path

from broker import Tansu
from cases import OPERATIONS, Case, python_for
from environments import BENCH, ensure_venv, environments
from receiver import CountingReceiver
from worker import SETUPS, traceparents_for

# Checked from the innermost frame outwards: the first owner found gets the sample, so the
# SDK's attribute cleaning counts for the spans or the metrics that asked for it.
OWNERS = (
    ("SDK metrics", ("/opentelemetry/sdk/metrics/", "/opentelemetry/metrics/")),
    ("SDK spans", ("/opentelemetry/sdk/trace/",)),
    (
        "propagators",
        ("/opentelemetry/propagators/", "/opentelemetry/trace/propagation/", "/baggage/"),
    ),
    ("kafka-autotrace", ("/kafka_autotrace/",)),
    ("upstream instrumentation", ("/opentelemetry/instrumentation/",)),
    ("client library", ("/kafka/", "/confluent_kafka/")),
)
FRAME = re.compile(r"(?P<function>.*) \((?P<path>.*):\d+\)$")


def owner_of(frames: list[str]) -> str:
    for frame in reversed(frames):
        for owner, markers in OWNERS:
            if any(marker in frame for marker in markers):
                return owner
    return "other (benchmark loop, interpreter, threads)"


def summarise(raw: Path, top: int) -> str:
    """Shares of the samples per owner, then the functions with the most inclusive time."""
    owners: collections.Counter[str] = collections.Counter()
    functions: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count, frames = int(count_text), stack.split(";")
        total += count
        owners[owner_of(frames)] += count
        seen = set()
        for frame in frames:
            match = FRAME.match(frame)
            name = f"{match['function']} ({Path(match['path']).name})" if match else frame.strip()
            if name not in seen:
                seen.add(name)
                functions[name] += count
    if not total:
        return "no samples"
    lines = [f"{total} samples of the thread holding the GIL", "", "| owner | share |"]
    lines.append("|---|--:|")
    lines += [f"| {owner} | {count / total:.0%} |" for owner, count in owners.most_common()]
    lines += ["", "| function (inclusive) | share |", "|---|--:|"]
    lines += [
        f"| {name} | {count / total:.1%} |"
        for name, count in functions.most_common(top)
        if count < total  # drop the frames every sample shares (thread bootstrap, main)
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--client", required=True, choices=["kafka-python", "confluent-kafka"])
    parser.add_argument("--operation", required=True, choices=["produce", "consume", "poll"])
    parser.add_argument("--variant", default="autotrace", choices=["none", "upstream", "autotrace"])
    parser.add_argument("--setup", default="sampled", choices=SETUPS)
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--rate", type=int, default=500, help="py-spy samples per second")
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args(argv)
    operation = next(
        (op for op in OPERATIONS if (op.client, op.operation) == (args.client, args.operation)),
        None,
    )
    if operation is None:
        parser.error(f"{args.client} has no operation {args.operation}")
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    pythons = {name: ensure_venv(name, reqs) for name, reqs in environments().items()}
    python = python_for(Case(operation, args.variant, args.setup), pythons)
    work = Path(tempfile.mkdtemp(prefix="kafka-autotrace-profile-"))
    broker = Tansu(work / "tansu.log")
    # The worker exports as the benchmark's does, so that the profile includes the export and
    # the worker's final flush is answered rather than retried until it gives up.
    receiver = CountingReceiver().__enter__()
    try:
        topic = f"profile-{uuid.uuid4().hex[:10]}"
        broker.create_topic(topic)
        warmup = 1000
        if args.operation != "produce":
            broker.fill(topic, warmup + args.messages, traceparents_for(args.setup))
        raw = work / "profile.txt"
        subprocess.run(
            [
                py_spy,
                "record",
                "--format=raw",
                "--full-filenames",
                # Only threads holding the GIL: Python work and C code that keeps the GIL,
                # not threads waiting on a socket or a condition.
                "--gil",
                f"--rate={args.rate}",
                f"--output={raw}",
                "--",
                str(python),
                str(BENCH / "worker.py"),
                f"--client={args.client}",
                f"--operation={args.operation}",
                f"--variant={args.variant}",
                f"--setup={args.setup}",
                f"--messages={args.messages}",
                f"--warmup={warmup}",
                f"--bootstrap={broker.bootstrap}",
                f"--topic={topic}",
                f"--otlp-endpoint={receiver.endpoint}",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        print(
            f"{args.client} {args.operation}, {args.variant}, {args.setup}, "
            f"{args.messages} messages (warm-up and client start-up included)\n"
        )
        print(summarise(raw, args.top))
    finally:
        receiver.__exit__(None, None, None)
        broker.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
