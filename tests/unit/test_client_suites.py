"""The comparison behind ``make test-client-suites``: what counts as a difference."""

from __future__ import annotations

from pathlib import Path

from support.suites import FAILED, PASSED, SKIPPED, differences, outcomes


def test_an_outcome_that_changes_is_a_difference() -> None:
    plain = {"t::a": PASSED, "t::b": SKIPPED}
    traced = {"t::a": FAILED, "t::b": SKIPPED}

    assert differences(plain, traced, {}) == [
        "t::a: passed without kafka-autotrace, failed with it"
    ]


def test_a_test_missing_from_one_run_is_a_difference() -> None:
    assert differences({"t::a": PASSED}, {}, {}) == [
        "t::a: passed without kafka-autotrace, absent with it"
    ]


def test_an_expected_difference_passes_and_a_stale_one_is_reported() -> None:
    expected = {"t::a": "the trace header shows"}

    assert differences({"t::a": PASSED}, {"t::a": FAILED}, expected) == []
    assert differences({"t::a": PASSED}, {"t::a": PASSED}, expected) == [
        "t::a: expected to differ (the trace header shows), but passed twice"
    ]


def test_outcomes_read_from_a_junit_report(tmp_path: Path) -> None:
    report = tmp_path / "report.xml"
    report.write_text(
        "<testsuites><testsuite>"
        '<testcase classname="tests.test_p" name="ok"/>'
        '<testcase classname="tests.test_p" name="bad"><failure message="x"/></testcase>'
        '<testcase classname="tests.test_p" name="broken"><error message="x"/></testcase>'
        '<testcase classname="tests.test_p" name="later"><skipped message="x"/></testcase>'
        "</testsuite></testsuites>"
    )

    assert outcomes(report) == {
        "tests.test_p::ok": "passed",
        "tests.test_p::bad": "failed",
        "tests.test_p::broken": "error",
        "tests.test_p::later": "skipped",
    }
    assert outcomes(tmp_path / "never-written.xml") == {}
