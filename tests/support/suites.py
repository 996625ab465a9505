"""The Kafka clients' own test files, fetched from PyPI, run with and without kafka-autotrace.

A suite is the test folder of one source distribution on PyPI, kept in
``<cache>/client-suites/<sdist>/`` (``support.maven.cache_dir``). It is run twice with the same
interpreter, by pytest in a fresh process: once as is, once under ``opentelemetry-instrument``.
Each run writes a JUnit report; the per-test outcomes of the two are compared.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from support.apps import INSTRUMENT
from support.maven import cache_dir

PASSED, FAILED, ERROR, SKIPPED = "passed", "failed", "error", "skipped"


@dataclass(frozen=True)
class Suite:
    """Where one client's tests come from and how much of them can run here."""

    client: str  # the distribution under test, e.g. "kafka-python"
    sdist: str  # the requirement whose sdist holds the tests, e.g. "kafka-python==3.0.12"
    folder: str  # the test folder inside the sdist
    # Files to add, relative to the sdist root, with their text: stand-ins for modules the sdist
    # leaves out.
    add: Mapping[str, str] = field(default_factory=dict)
    # Paths relative to the sdist root not collected, and test ids not run, each with its reason.
    ignore: Mapping[str, str] = field(default_factory=dict)
    # Variables that point the suite's integration tests at a running broker; in the values,
    # ``{bootstrap}`` is its address and ``{root}`` the sdist root. None: no broker needed.
    broker_env: Mapping[str, str] | None = None


def fetch(suite: Suite) -> Path:
    """The sdist root holding ``suite.folder``, downloaded and unpacked on first use.

    Only the test folder is kept, with the files ``suite.add`` and a ``pytest.ini`` of its own
    (a time limit per test), so pytest neither imports the client from the sdist (the installed
    client is what runs) nor reads this project's configuration.
    """
    root = cache_dir() / "client-suites" / suite.sdist.replace("==", "-")
    if not (root / suite.folder).is_dir():
        _download(suite, root)
    for path, text in {**suite.add, "pytest.ini": "[pytest]\ntimeout = 120\n"}.items():
        (root / path).write_text(text)
    return root


def _download(suite: Suite, root: Path) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        name = suite.sdist.partition("==")[0]
        pip = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"]
        subprocess.run([*pip, "--no-binary", name, suite.sdist, "--dest", scratch], check=True)
        (archive,) = Path(scratch).glob("*.tar.gz")
        with tarfile.open(archive) as sdist:
            sdist.extractall(scratch, filter="data")
        (unpacked,) = (path for path in Path(scratch).iterdir() if path.is_dir())
        staging = Path(scratch) / "suite"
        shutil.copytree(unpacked / suite.folder, staging / suite.folder)
        root.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(root, ignore_errors=True)
        shutil.move(str(staging), root)


def _pytest(suite: Suite, *options: str) -> list[str]:
    command = [sys.executable, "-m", "pytest", suite.folder, "-q", "-p", "no:cacheprovider"]
    command += [
        f"--deselect={path}" if "::" in path else f"--ignore={path}" for path in suite.ignore
    ]
    return [*command, "-W", "ignore::DeprecationWarning", *options]


def collected(suite: Suite, root: Path) -> int:
    """How many tests a run of the suite should report."""
    listing = subprocess.run(
        _pytest(suite, "--collect-only"), cwd=root, capture_output=True, text=True, check=False
    ).stdout
    found = re.search(r"(\d+)(?:/\d+)? tests? collected", listing)
    return int(found.group(1)) if found else 0


def run(suite: Suite, root: Path, report: Path, env: Mapping[str, str], traced: bool) -> None:
    """Run the suite's tests once, their outcomes into the JUnit file ``report``.

    pytest's exit code is not checked: failures the suite has without us are compared, not
    fatal, and a run that ends early reports fewer tests than were collected.
    """
    command = _pytest(suite, f"--junitxml={report}")
    if traced:
        command = [str(INSTRUMENT), *command]
    subprocess.run(command, cwd=root, env=dict(env), capture_output=True, check=False)


def instrumented(instrumentor: str, env: Mapping[str, str]) -> bool:
    """Whether ``opentelemetry-instrument`` with ``env`` runs ``instrumentor`` (``module:Class``)
    in this interpreter: the instrumented runs are then instrumented, whether or not their tests
    send anything."""
    module, _, name = instrumentor.partition(":")
    active = f"{name}().is_instrumented_by_opentelemetry"
    probe = f"from {module} import {name}\nraise SystemExit({active} is not True)"
    command = [str(INSTRUMENT), sys.executable, "-c", probe]
    return subprocess.run(command, env=dict(env), check=False).returncode == 0


def outcomes(report: Path) -> dict[str, str]:
    """``{test id: outcome}`` from a JUnit report; {} when the run wrote none."""
    if not report.exists():
        return {}
    table: dict[str, str] = {}
    for case in ET.parse(report).iter("testcase"):
        test = f"{case.get('classname')}::{case.get('name')}"
        tags = {child.tag for child in case}
        if "error" in tags:
            table[test] = ERROR
        elif "failure" in tags:
            table[test] = FAILED
        elif "skipped" in tags:
            table[test] = SKIPPED
        else:
            table[test] = PASSED
    return table


def differences(
    plain: Mapping[str, str], traced: Mapping[str, str], expected: Mapping[str, str]
) -> list[str]:
    """Every test whose outcome differs between the runs and is not in ``expected``, and every
    expected difference that did not happen (a stale allowlist hides nothing), as sentences."""
    found = []
    for test in sorted(plain.keys() | traced.keys()):
        before, after = plain.get(test, "absent"), traced.get(test, "absent")
        if before == after:
            if test in expected:
                found.append(f"{test}: expected to differ ({expected[test]}), but {before} twice")
        elif test not in expected:
            found.append(f"{test}: {before} without kafka-autotrace, {after} with it")
    return found


def counts(table: Mapping[str, str]) -> str:
    """ "300 passed, 9 skipped, ..." for a summary line."""
    tally = {outcome: 0 for outcome in (PASSED, FAILED, ERROR, SKIPPED)}
    for outcome in table.values():
        tally[outcome] += 1
    return ", ".join(f"{number} {outcome}" for outcome, number in tally.items() if number)
