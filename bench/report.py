"""The benchmark's summary: medians over rounds, the performance targets, and the tables."""

from __future__ import annotations

import os
import platform
import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cases import OPERATIONS, Case
from worker import SETUPS


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
        "CPU added ≤ 0.6x upstream's",
        "production",
        "cpu_vs_upstream",
        0.6,
        ("confluent-kafka produce", POLL),
    ),
    Target("CPU added ≤ 0.9x upstream's", "production", "cpu_vs_upstream", 0.9, KAFKA_PYTHON),
    Target(
        "CPU added ≤ 1.0x upstream's",
        "spans",
        "cpu_vs_upstream",
        1.0,
        (*PRODUCE, "kafka-python consume"),
    ),
    Target("CPU added ≤ 0.6x upstream's", "spans", "cpu_vs_upstream", 0.6, (POLL,)),
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
