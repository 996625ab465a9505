"""The benchmark's verdict on its performance targets: the µs per message a target allows and the
fixed costs held against it are arithmetic on the run's own figures, checked here on made-up
runs whose answers are worked out by hand."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import run  # bench/ holds scripts, not a package

PRODUCE, CONSUME = run.OPERATIONS[0], run.OPERATIONS[1]
FLOORS = {"floor_cpu_us": 30.0, "metric_floor_cpu_us": 6.0}


def _run(operation: run.Operation, variant: str, setup: str, us_per_msg: float) -> dict[str, Any]:
    """One round of a case taking ``us_per_msg`` of wall and CPU time per message."""
    floors: dict[str, float] = {}
    if variant == "autotrace":
        floors = dict(FLOORS)
        if operation.operation != "produce":
            floors["context_floor_cpu_us"] = 4.0
    return {
        "label": operation.label,
        "variant": variant,
        "setup": setup,
        "round": 0,
        "msg_per_s": 1e6 / us_per_msg,
        "cpu_us_per_msg": us_per_msg,
        "peak_rss_mib": 40.0,
        **floors,
    }


def _summary() -> list[dict[str, Any]]:
    """Uninstrumented 100 µs per message; the trace header costs the producer 16 µs more;
    upstream 200 µs sampled; kafka-autotrace 160 µs sampled and 107 µs (produce) or 120 µs
    (consume) without an SDK."""
    runs, cases = [], []
    for operation, nosdk_us in ((PRODUCE, 107.0), (CONSUME, 120.0)):
        cases += run.cases_of(operation)
        runs += [
            _run(operation, "none", "nosdk", 100.0),
            _run(operation, "header", "nosdk", 116.0),
            _run(operation, "upstream", "sampled", 200.0),
            _run(operation, "autotrace", "sampled", 160.0),
            _run(operation, "autotrace", "nosdk", nosdk_us),
        ]
    return run.summarise(runs, cases)


def _verdict(target: str, operation: run.Operation) -> dict[str, Any]:
    verdicts = run.check_targets(_summary())
    (found,) = [
        verdict
        for verdict in verdicts
        if verdict["target"] == target and verdict["operation"] == operation.label
    ]
    return found


def test_a_throughput_target_allows_what_keeps_the_ratio() -> None:
    # 1.5x upstream's 5,000 msg/s is 7,500 msg/s: 133.3 µs per message, 33.3 over 100 µs.
    verdict = _verdict("sampled: ≥ 1.5x upstream", PRODUCE)
    assert verdict["allowance_us"] == pytest.approx(100 / 3)
    # Span 30, one histogram 6, the header 16.
    assert verdict["fixed_us"] == pytest.approx(52.0)
    assert verdict["reachable"] is False
    assert verdict["met"] is False
    assert verdict["value"] == pytest.approx(200 / 160)
    assert verdict["added_us"] == pytest.approx(60.0)


def test_a_floor_target_allows_its_multiple_of_the_floor() -> None:
    verdict = _verdict("sampled: CPU added ≤ 1.3x the span floor", CONSUME)
    assert verdict["allowance_us"] == pytest.approx(39.0)
    # Span 30, two histograms 12, carrying the context 4: no header for a consumer.
    assert verdict["fixed_us"] == pytest.approx(46.0)
    assert verdict["reachable"] is False


def test_without_an_sdk_only_carrying_the_context_is_fixed() -> None:
    # 0.9x of 10,000 msg/s is 111.1 µs per message: 11.1 µs allowed.
    produce = _verdict("nosdk: ≥ 0.9x uninstrumented", PRODUCE)
    assert produce["allowance_us"] == pytest.approx(100 / 9)
    assert produce["fixed_us"] == 0.0
    assert (produce["reachable"], produce["met"]) == (True, True)
    consume = _verdict("nosdk: ≥ 0.9x uninstrumented", CONSUME)
    assert consume["fixed_us"] == pytest.approx(4.0)
    assert (consume["reachable"], consume["met"]) == (True, False)


def test_the_breakdown_leaves_the_rest_after_the_fixed_costs() -> None:
    lines = run.breakdown(_summary()).splitlines()
    assert "| kafka-python produce | sampled | 60.0 | 30.0 | 6.0 | 16.0 | — | 8.0 |" in lines
    assert "| kafka-python consume | sampled | 60.0 | 30.0 | 12.0 | — | 4.0 | 14.0 |" in lines
    assert "| kafka-python consume | nosdk | 20.0 | — | — | — | 4.0 | 16.0 |" in lines
