"""The Kafka clients' own test suites, with and without kafka-autotrace: same outcomes.

Run by ``make test-client-suites`` in a virtualenv where kafka-autotrace is installed as a user
installs it (not editable) beside the clients. For each suite below, the tests of the source
distribution on PyPI run twice: as they are, then under ``opentelemetry-instrument`` exporting
to a local OTLP receiver. The script exits non-zero when any test's outcome differs and the
difference is not in EXPECTED, when a run passed no test or stopped early, or when
``opentelemetry-instrument`` does not instrument the client (the comparison would prove
nothing).

What PyPI holds (each client's installed release, and the releases before it):
- kafka-python: its sdist has ``test/`` but not all of it. Left out are ``test/__init__.py``
  (added empty: the tests import ``test.testutil``), ``test/conftest.py`` (the tests that need
  its fixtures error in both runs), ``test/mock_broker.py`` (the modules importing it are not
  collected) and ``test/service.py``, the broker processes of the integration tests: a stand-in
  holding the address of an external broker is added, and the integration tests run against
  the test broker (``support.broker.start_broker``: Apache Kafka unless
  ``KAFKA_AUTOTRACE_TEST_BROKER`` says otherwise) through their ``KAFKA_URI``.
- confluent-kafka: its sdists prune ``tests/`` (checked 1.9.2, 2.0.2, 2.8.0, 2.16.2). The
  nearest on PyPI is superstream-confluent-kafka 2.4.0.4, a fork whose sdist carries
  confluent-kafka 2.4.0's unit tests (``tests/test_*.py``, no broker needed) unchanged; they
  run against the installed confluent-kafka.
- aiokafka: its sdists exclude ``tests/`` (checked 0.8.1, 0.9.0, 0.14.0), and neither the
  forks on PyPI nor FastStream ship tests: there is no aiokafka suite to run.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Mapping
from importlib.metadata import version
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from support.apps import app_env
from support.broker import Broker, start_broker
from support.kafka import KAFKA_RELEASE
from support.suites import (
    PASSED,
    Suite,
    collected,
    counts,
    differences,
    fetch,
    instrumented,
    outcomes,
    run,
)

from kafka_autotrace.clients.registry import CLIENTS
from kafka_autotrace.tools.receiver import OtlpReceiver

SPECS = {client.distribution: client for client in CLIENTS}

_NOT_IN_SDIST = "imports test/mock_broker.py, which the sdist leaves out"

# What kafka-python's integration fixtures use of test/service.py with KAFKA_URI set: an external
# broker's address. Starting a broker of their own (SpawnedService) is refused.
_SERVICE_STAND_IN = """\
class ExternalService:
    def __init__(self, host, port):
        self.host, self.port = host, port


class SpawnedService:
    def __init__(self, *args, **kwargs):
        raise RuntimeError("kafka-autotrace runs these tests against an external broker only")
"""

SUITES = (
    Suite(
        "kafka-python",
        f"kafka-python=={version('kafka-python')}",
        "test",
        add={"test/__init__.py": "", "test/service.py": _SERVICE_STAND_IN},
        ignore={
            "test/test_mock_broker.py": _NOT_IN_SDIST,
            "test/net/test_sasl_reauthentication.py": _NOT_IN_SDIST,
        },
        # KAFKA_ROOT: the fixtures insist that a Kafka installation folder exists, even when
        # they only attach to KAFKA_URI.
        broker_env={
            "KAFKA_URI": "tcp://{bootstrap}",
            "KAFKA_VERSION": KAFKA_RELEASE,
            "KAFKA_ROOT": "{root}",
        },
    ),
    Suite(
        "confluent-kafka",
        "superstream-confluent-kafka==2.4.0.4",
        "tests",
        ignore={
            **{
                f"tests/test_KafkaError.py::{test}": "raises KafkaError(12345), which "
                "confluent-kafka 2.16 does not let be raised: the interpreter exits, ending the run"
                for test in (
                    "test_kafkaError_unknonw_error",
                    "test_kafkaException_unknown_KafkaError_with_subclass",
                )
            },
            "tests/test_misc.py::test_oauth_cb_failure": "races librdkafka 2.16's 10 s wait for "
            "an OAuth token in the constructor: fails or passes by timing, with or without us",
        },
    ),
)

# Tests whose outcome may differ under kafka-autotrace, by suite, each with the reason: only where
# the trace header the instrumentation adds to every sent record must show.
_HEADER_SIZE = (
    "asserts RecordMetadata.serialized_header_size == 22 for its one header; the traceparent "
    "header kafka-autotrace adds is counted too"
)
EXPECTED: dict[str, dict[str, str]] = {
    "kafka-python": {
        # One case per compression the test runs with; lz4, snappy and zstd are skipped, their
        # codecs not being installed.
        f"test.integration.test_producer_integration::"
        f"test_kafka_producer_proper_record_metadata[{compression}]": _HEADER_SIZE
        for compression in ("None", "gzip")
    },
    "confluent-kafka": {},
}


def check(suite: Suite, scratch: Path, broker: Broker) -> list[str]:
    """Run ``suite`` both ways; the problems found, as sentences (none: transparent)."""
    root = fetch(suite)
    expected_count = collected(suite, root)
    with OtlpReceiver() as receiver:
        env = app_env(f"{suite.client}-suite", receiver.endpoint, _broker_env(suite, root, broker))
        tables = []
        for traced in (False, True):
            report = scratch / f"{suite.client}-{'traced' if traced else 'plain'}.xml"
            started = time.monotonic()
            run(suite, root, report, env, traced)
            tables.append(outcomes(report))
            label = "with kafka-autotrace   " if traced else "without kafka-autotrace"
            print(f"  {label} {counts(tables[-1])} ({time.monotonic() - started:.1f} s)")
        active = instrumented(SPECS[suite.client].instrumentor, env)
        traced_spans = [s for s in receiver.take_spans() if s.scope_name == "kafka_autotrace"]
    plain, traced_table = tables
    print(f"  {len(traced_spans)} spans exported by the instrumented run")
    for test, reason in EXPECTED[suite.client].items():
        print(f"  expected: {test} {plain.get(test)} → {traced_table.get(test)}: {reason}")
    problems = differences(plain, traced_table, EXPECTED[suite.client])
    if PASSED not in plain.values() or PASSED not in traced_table.values():
        problems.append("a run passed no test")
    for table in tables:
        if len(table) != expected_count:
            problems.append(f"a run reported {len(table)} of the {expected_count} tests collected")
    if not active:
        problems.append(f"opentelemetry-instrument does not run {SPECS[suite.client].instrumentor}")
    return problems


def _broker_env(suite: Suite, root: Path, broker: Broker) -> Mapping[str, str]:
    if suite.broker_env is None:
        return {}
    fill = {"bootstrap": broker.bootstrap_servers, "root": str(root)}
    return {name: value.format(**fill) for name, value in suite.broker_env.items()}


def main() -> int:
    failed = False
    with tempfile.TemporaryDirectory() as scratch:
        broker = start_broker(Path(scratch) / "broker")
        try:
            for suite in SUITES:
                print(f"== {suite.client} {version(suite.client)}: tests of {suite.sdist}")
                for path, reason in suite.ignore.items():
                    print(f"  not run: {path} ({reason})")
                problems = check(suite, Path(scratch), broker)
                for problem in problems:
                    print(f"  DIFFERENCE {problem}")
                failed = failed or bool(problems)
        finally:
            broker.stop()
    print("aiokafka: no test suite on PyPI (see this script's docstring)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
