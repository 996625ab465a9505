"""What the benchmark measures (operations, variants, set-ups) and how one case runs: a fresh
worker process on a fresh topic, its spans and metrics counted by the receiver."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from broker import Tansu
from environments import BENCH
from receiver import CountingReceiver
from worker import METRIC_SETUPS, SETUPS, traceparents_for

CASE_TIMEOUT_S = 300.0
VARIANTS = ("upstream", "autotrace")
SETUP_TEXT = {
    "production": "SDK, ParentBased(TraceIdRatioBased(0.01)), 1 consumed record in 100 sampled "
    "upstream, metrics exported",
    "sampled": "SDK, every message sampled",
    "spans": "SDK, every message sampled, no meter provider",
    "unsampled": "SDK, parent-based ratio 0",
    "nosdk": "no SDK (API only)",
}


@dataclass(frozen=True)
class Operation:
    client: str
    operation: str
    label: str
    messages: int
    """Measured messages per case, sized for about a second or two in the slowest variant."""


OPERATIONS = (
    Operation("kafka-python", "produce", "kafka-python produce", 10_000),
    Operation("kafka-python", "consume", "kafka-python consume", 15_000),
    Operation("confluent-kafka", "produce", "confluent-kafka produce", 40_000),
    Operation("confluent-kafka", "poll", "confluent-kafka poll()", 30_000),
    Operation("confluent-kafka", "consume", "confluent-kafka consume(n)", 30_000),
)


@dataclass(frozen=True)
class Case:
    operation: Operation
    variant: str
    """``none`` (uninstrumented), ``header`` (uninstrumented, sending a traceparent header with
    every record: what propagation costs the client library itself), ``upstream``,
    ``autotrace``, or ``reference``: kafka-autotrace from the source tree given with
    ``--reference`` (the same code before a change, say)."""
    setup: str

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.operation.label, self.variant, self.setup)


def cases_of(operation: Operation, variants: Sequence[str] = VARIANTS) -> list[Case]:
    """The uninstrumented baseline (and, for producers, the same sending a trace header),
    then each variant in every set-up. These run without any SDK: with nothing instrumented,
    an SDK would have no work."""
    cases = [Case(operation, "none", "nosdk")]
    if operation.operation == "produce":
        cases.append(Case(operation, "header", "nosdk"))
    cases += [Case(operation, variant, setup) for setup in SETUPS for variant in variants]
    return cases


def run_case(
    case: Case,
    python: Path,
    broker: Tansu,
    receiver: CountingReceiver,
    messages: int,
    warmup: int,
    floor_iterations: int,
    round_index: int,
    reference: Path | None = None,
) -> dict[str, Any]:
    """One worker run on a fresh topic; its JSON result, or a record of its failure.

    A run whose spans did not all reach the receiver (``spans_ended`` in the worker against
    the spans the receiver counted) is a failure with ``dropped`` set: its figures would leave
    out the cost of spans that were never exported.

    ``histograms_per_message`` is the histogram measurements kafka-autotrace handed the SDK
    (counted by the receiver in the metrics the worker exports as it exits, so read once it
    has) over the warm-up and measured messages, as ``spans_of_messages`` counts spans: the
    budget's windows run across both, and one export at exit cannot tell them apart."""
    operation = case.operation
    topic = f"bench-{operation.client}-{operation.operation}-{uuid.uuid4().hex[:10]}"
    broker.create_topic(topic)
    base = {
        "label": operation.label,
        "variant": case.variant,
        "setup": case.setup,
        "round": round_index,
    }
    try:
        if operation.operation != "produce":
            broker.fill(topic, warmup + messages, traceparents_for(case.setup))
        command = [
            str(python),
            str(BENCH / "worker.py"),
            f"--client={operation.client}",
            f"--operation={operation.operation}",
            f"--variant={'autotrace' if case.variant == 'reference' else case.variant}",
            f"--setup={case.setup}",
            f"--messages={messages}",
            f"--warmup={warmup}",
            f"--bootstrap={broker.bootstrap}",
            f"--topic={topic}",
            f"--group=bench-{uuid.uuid4().hex[:8]}",
            f"--floor-iterations={floor_iterations if case.variant == 'autotrace' else 0}",
            f"--otlp-endpoint={receiver.endpoint}",
        ]
        # The workers must not pick up an OTEL_* configuration from the caller's shell.
        env = {key: value for key, value in os.environ.items() if not key.startswith("OTEL_")}
        if case.variant == "reference" and reference is not None:
            # Ahead of the editable install of this tree on sys.path.
            env["PYTHONPATH"] = os.pathsep.join(
                filter(None, [str(reference), env.get("PYTHONPATH")])
            )
        receiver.counts.reset()
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=CASE_TIMEOUT_S, env=env
            )
        except subprocess.TimeoutExpired:
            return {**base, "error": f"timed out after {CASE_TIMEOUT_S:g} s"}
        lines = done.stdout.strip().splitlines()
        if done.returncode != 0 or not lines:
            tail = "\n".join(done.stderr.strip().splitlines()[-15:])
            return {**base, "error": f"exit {done.returncode}: {tail}"}
        result: dict[str, Any] = json.loads(lines[-1])
        counts = receiver.counts.read()
        result = {
            **result,
            **counts,
            "histograms_per_message": counts["histogram_measurements"] / (warmup + messages),
        }
        ours = case.variant in ("autotrace", "reference")
        checked = check_metrics(check_spans(result), ours and case.setup in METRIC_SETUPS)
        return {**checked, **base}  # the driver's labels win
    finally:
        broker.delete_topic(topic)


def check_spans(result: dict[str, Any]) -> dict[str, Any]:
    """``result`` marked failed, with ``dropped`` set, if the receiver got fewer spans than the
    worker ended sampled (or more: then the count itself is wrong)."""
    dropped = result["spans_ended"] - result["spans_received"]
    if not dropped:
        return result
    error = (
        f"SPANS DROPPED: {result['spans_ended']} sampled spans ended, "
        f"{result['spans_received']} received (queue {result['span_queue_size']})"
    )
    return {**result, "dropped": dropped, "error": error}


def check_metrics(result: dict[str, Any], expected: bool) -> dict[str, Any]:
    """``result`` marked failed if it was ``expected`` to export metrics (kafka-autotrace with a
    meter provider always has some) and the receiver got none: its histogram count would read
    0 for want of an export, not of measurements."""
    if not expected or result["metric_requests"] or "error" in result:
        return result
    return {**result, "error": "NO METRICS RECEIVED: the worker's metric export never arrived"}


def rotated(items: Sequence[Case], by: int) -> list[Case]:
    by %= len(items)
    return [*items[by:], *items[:by]]


def python_for(case: Case, pythons: dict[str, Path]) -> Path:
    if case.variant == "upstream":
        return pythons["upstream"]
    if case.variant in ("autotrace", "reference") and case.setup == "nosdk":
        return pythons["nosdk"]
    return Path(sys.executable)
