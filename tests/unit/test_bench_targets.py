"""The benchmark's verdict on its performance targets: the ratios, the CPU µs per message a target
allows and the fixed costs held against it are arithmetic on the run's own figures, checked here
on made-up runs whose answers are worked out by hand."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

# bench/ holds scripts, not a package.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import report
from cases import (
    OPERATIONS,
    SETUPS,
    VARIANTS,
    Case,
    Operation,
    cases_of,
    check_spans,
)

PRODUCE, CONSUME = OPERATIONS[0], OPERATIONS[1]
FLOORS = {"floor_cpu_us": 30.0, "metric_floor_cpu_us": 6.0}


def _run(
    operation: Operation,
    variant: str,
    setup: str,
    us_per_msg: float,
    round_index: int = 0,
) -> dict[str, Any]:
    """One round of a case taking ``us_per_msg`` of wall and CPU time per message."""
    floors: dict[str, float] = {}
    if variant == "autotrace":
        floors = dict(FLOORS)
        if operation.operation != "produce":
            floors["context_floor_cpu_us"] = 4.0
        # As the receiver would count them: one a send, two a consumed record, none without
        # a meter provider.
        recorded = setup in ("production", "sampled", "unsampled")
        per_message = 1.0 if operation.operation == "produce" else 2.0
        floors["histograms_per_message"] = per_message if recorded else 0.0
    return {
        "label": operation.label,
        "variant": variant,
        "setup": setup,
        "round": round_index,
        "msg_per_s": 1e6 / us_per_msg,
        "cpu_us_per_msg": us_per_msg,
        "peak_rss_mib": 40.0,
        "spans_of_messages": 0 if setup == "nosdk" else 1000,
        **floors,
    }


# µs per message: uninstrumented 100 (the trace header costs the producer 16 more); then per
# set-up upstream and kafka-autotrace.
FIGURES = {
    "production": (200.0, 170.0),  # 100 and 70 added: 0.7x
    "sampled": (200.0, 210.0),  # 100 and 110 added: 1.1x
    "spans": (180.0, 190.0),  # 80 and 90 added: 1.125x
    "unsampled": (150.0, 140.0),
}


def _runs(
    nosdk_us: dict[str, float], reference_nosdk_us: float | None = None
) -> tuple[list[dict[str, Any]], list[Case]]:
    runs: list[dict[str, Any]] = []
    cases: list[Case] = []
    variants = VARIANTS if reference_nosdk_us is None else (*VARIANTS, "reference")
    for operation in (PRODUCE, CONSUME):
        cases += cases_of(operation, variants)
        runs += [
            _run(operation, "none", "nosdk", 100.0),
            _run(operation, "header", "nosdk", 116.0),
            _run(operation, "upstream", "nosdk", 120.0),
            _run(operation, "autotrace", "nosdk", nosdk_us[operation.label]),
        ]
        if reference_nosdk_us is not None:
            runs.append(_run(operation, "reference", "nosdk", reference_nosdk_us))
        for setup, (upstream_us, ours_us) in FIGURES.items():
            runs += [
                _run(operation, "upstream", setup, upstream_us),
                _run(operation, "autotrace", setup, ours_us),
            ]
    return runs, cases


SEND_BEFORE = report.NOSDK_BEFORE[PRODUCE.label]
RECORD_BEFORE = report.NOSDK_BEFORE[CONSUME.label]


def _summary(reference_nosdk_us: float | None = None) -> list[dict[str, Any]]:
    """kafka-autotrace without an SDK adds to a send what the recorded run did, and to a
    consumed record a quarter more."""
    runs, cases = _runs(
        {PRODUCE.label: 100.0 + SEND_BEFORE, CONSUME.label: 100.0 + 1.25 * RECORD_BEFORE},
        reference_nosdk_us=reference_nosdk_us,
    )
    return report.summarise(runs, cases)


def _verdict(
    target: str, operation: Operation, rows: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    verdicts = report.check_targets(_summary() if rows is None else rows)
    (found,) = [
        verdict
        for verdict in verdicts
        if verdict["target"] == target and verdict["operation"] == operation.label
    ]
    return found


def test_the_production_target_is_a_ratio_of_cpu_added_to_upstreams() -> None:
    verdict = _verdict("production: CPU added ≤ 0.9x upstream's", PRODUCE)
    assert verdict["value"] == pytest.approx(0.7)
    assert verdict["met"] is True
    # 0.9 of upstream's 100 µs added.
    assert verdict["allowance_us"] == pytest.approx(90.0)
    # Span 30, one histogram 6, the header 16.
    assert verdict["fixed_us"] == pytest.approx(52.0)
    assert verdict["reachable"] is True
    assert verdict["added_us"] == pytest.approx(70.0)


def test_a_ratio_above_the_bound_is_not_met() -> None:
    spans = _verdict("spans: CPU added ≤ 1.0x upstream's", CONSUME)
    assert spans["value"] == pytest.approx(90 / 80)
    assert spans["allowance_us"] == pytest.approx(80.0)
    # Span 30, carrying the context 4: no histograms without a meter provider, no header
    # for a consumer.
    assert spans["fixed_us"] == pytest.approx(34.0)
    assert (spans["met"], spans["reachable"]) == (False, True)


def test_fixed_costs_beyond_the_allowance_are_out_of_reach() -> None:
    # Were upstream to add 30 µs, all of that is less than the span and the context.
    rows = _summary()
    for row in rows:
        if (row["variant"], row["setup"]) == ("upstream", "spans"):
            row["cpu_us_added"] = 30.0
    verdict = _verdict("spans: CPU added ≤ 1.0x upstream's", CONSUME, rows)
    assert verdict["allowance_us"] == pytest.approx(30.0)
    assert verdict["reachable"] is False


def test_each_target_names_its_operations() -> None:
    verdicts = report.check_targets(_summary())
    judged = {(verdict["target"], verdict["operation"]) for verdict in verdicts}
    # The made-up run has the two kafka-python operations; confluent's are in other targets.
    assert judged == {
        ("production: CPU added ≤ 0.9x upstream's", PRODUCE.label),
        ("production: CPU added ≤ 0.9x upstream's", CONSUME.label),
        ("spans: CPU added ≤ 1.0x upstream's", PRODUCE.label),
        ("spans: CPU added ≤ 1.0x upstream's", CONSUME.label),
        ("nosdk: CPU added no more than before", PRODUCE.label),
        ("nosdk: CPU added no more than before", CONSUME.label),
    }
    bounds = {
        (target.setup, operation): target.bound
        for target in report.TARGETS
        for operation in target.operations or ()
    }
    assert bounds == {
        ("production", "confluent-kafka produce"): 0.6,
        ("production", "confluent-kafka poll()"): 0.6,
        ("production", "kafka-python produce"): 0.9,
        ("production", "kafka-python consume"): 0.9,
        ("spans", "kafka-python produce"): 1.0,
        ("spans", "confluent-kafka produce"): 1.0,
        ("spans", "kafka-python consume"): 1.0,
        ("spans", "confluent-kafka poll()"): 0.6,
    }


def test_without_an_sdk_the_figure_before_is_the_bound() -> None:
    produce = _verdict("nosdk: CPU added no more than before", PRODUCE)
    assert produce["value"] == pytest.approx(1.0)
    assert produce["allowance_us"] == pytest.approx(SEND_BEFORE)
    assert produce["fixed_us"] == 0.0
    assert (produce["met"], produce["reachable"]) == (True, True)
    consume = _verdict("nosdk: CPU added no more than before", CONSUME)
    assert consume["value"] == pytest.approx(1.25)
    assert consume["fixed_us"] == pytest.approx(4.0)
    assert (consume["met"], consume["reachable"]) == (False, True)


def test_a_reference_run_replaces_the_recorded_figure() -> None:
    reference_us = 2 * RECORD_BEFORE  # the reference adds that to both
    rows = _summary(reference_nosdk_us=100.0 + reference_us)
    consume = _verdict("nosdk: CPU added no more than before", CONSUME, rows)
    assert consume["allowance_us"] == pytest.approx(reference_us)
    assert consume["value"] == pytest.approx(1.25 * RECORD_BEFORE / reference_us)
    assert consume["met"] is True


def test_the_ratio_is_paired_by_round() -> None:
    # Round 0: the machine is fast; round 1 it is twice as slow for every case. Ratios per round
    # are 0.5 both times, which a ratio of medians over rounds would not give exactly.
    runs = [
        _run(PRODUCE, "none", "nosdk", 100.0, 0),
        _run(PRODUCE, "upstream", "production", 200.0, 0),
        _run(PRODUCE, "autotrace", "production", 150.0, 0),
        _run(PRODUCE, "none", "nosdk", 200.0, 1),
        _run(PRODUCE, "upstream", "production", 400.0, 1),
        _run(PRODUCE, "autotrace", "production", 300.0, 1),
    ]
    rows = report.by_case(report.summarise(runs, cases_of(PRODUCE)))
    assert rows[(PRODUCE.label, "autotrace", "production")]["cpu_vs_upstream"] == pytest.approx(0.5)
    assert rows[(PRODUCE.label, "upstream", "production")]["cpu_vs_upstream"] is None


def test_production_comes_first_in_every_table() -> None:
    rows = _summary()
    assert SETUPS[0] == "production"
    assert report.check_targets(rows)[0]["target"].startswith("production:")
    breakdown = report.breakdown(rows).splitlines()[2:]
    assert all("| production |" in line for line in breakdown[:2])
    table = report.table(rows).splitlines()[2:]
    instrumented = [line for line in table if "| — |" not in line]
    assert "| production |" in instrumented[0]


def test_the_breakdown_leaves_the_rest_after_the_fixed_costs() -> None:
    lines = report.breakdown(_summary()).splitlines()
    assert (
        "| kafka-python produce | production | 70.0 | 30.0 | 1.00 | 6.0 | 16.0 | — | 18.0 |"
        in lines
    )
    assert (
        "| kafka-python consume | production | 70.0 | 30.0 | 2.00 | 12.0 | — | 4.0 | 24.0 |"
        in lines
    )
    assert "| kafka-python consume | spans | 90.0 | 30.0 | 0.00 | 0.0 | — | 4.0 | 56.0 |" in lines
    added = 1.25 * RECORD_BEFORE
    nosdk = (
        f"| kafka-python consume | nosdk | {added:.1f} | — | 0.00 | — | — | 4.0 | {added - 4:.1f} |"
    )
    assert nosdk in lines


def test_a_case_that_lost_spans_fails() -> None:
    kept = {"spans_ended": 120, "spans_received": 120, "span_queue_size": 4096}
    assert check_spans(kept) == kept
    lost = check_spans({**kept, "spans_received": 100})
    assert lost["dropped"] == 20
    assert "SPANS DROPPED" in lost["error"]
    # A failed case is left out of the summary.
    runs, cases = _runs({PRODUCE.label: 104.7, CONSUME.label: 120.0})
    for index, entry in enumerate(runs):
        if (entry["label"], entry["variant"], entry["setup"]) == (
            PRODUCE.label,
            "autotrace",
            "production",
        ):
            runs[index] = {**entry, "error": lost["error"], "dropped": 20}
    rows = report.by_case(report.summarise(runs, cases))
    row = rows[(PRODUCE.label, "autotrace", "production")]
    assert (row["failures"], row["rounds"], row["cpu_us_added"]) == (1, 0, None)
