"""``kafka-autotrace doctor`` against the real installation and a real broker.

Unhealthy outcomes are produced for real rather than mocked: an environment variable, an
unreachable address, a requirement the installed client does not meet, and an upstream
instrumentation "installed" as real distribution metadata on the path of a subprocess.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import pytest

from kafka_autotrace.core import settings as settings_module
from kafka_autotrace.core.settings import Settings
from kafka_autotrace.tools.doctor import (
    Finding,
    Report,
    Status,
    check_client_version,
    check_exporter,
    check_header_support,
    diagnose,
)

CLI = Path(sys.executable).parent / "kafka-autotrace"
HEALTHY = {"OTEL_SERVICE_NAME": "orders", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}


def section(report: Report, title: str) -> list[Finding]:
    (found,) = [s for s in report.sections if s.title.startswith(title)]
    return list(found.findings)


def texts(findings: list[Finding], status: Status) -> list[str]:
    return [finding.text for finding in findings if finding.status is status]


def run_doctor(
    *args: str, env: Mapping[str, str], pythonpath: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """The console script, in an environment holding only ``env`` of the OTel/our variables."""
    clean = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("OTEL_", "KAFKA_AUTOTRACE_"))
    }
    if pythonpath is not None:
        clean["PYTHONPATH"] = str(pythonpath)
    return subprocess.run(
        [str(CLI), "doctor", *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_healthy_environment_and_broker(bootstrap: str) -> None:
    report = diagnose(HEALTHY, bootstrap, timeout=10)

    assert report.healthy, report.render()
    clients = section(report, "Kafka clients")
    assert [text.split()[0] for text in texts(clients, Status.OK)] == [
        "kafka-python",
        "confluent-kafka",
        "aiokafka",
    ]
    instrumentation = texts(section(report, "Instrumentation"), Status.OK)
    assert "kafka_autotrace_kafka_python is registered and enabled" in instrumentation
    assert "kafka_autotrace_confluent_kafka is registered and enabled" in instrumentation
    assert "kafka_autotrace_aiokafka is registered and enabled" in instrumentation
    assert "traces are exported with otlp (otlp_proto_http)" in instrumentation
    broker = texts(section(report, f"Broker {bootstrap}"), Status.OK)
    assert len(broker) == 3
    assert broker[0].startswith("kafka-python reached it; the broker supports the Kafka ")
    assert broker[0].endswith(" API: record headers supported")
    assert broker[1].startswith("confluent-kafka reached it; metadata lists ")
    assert broker[2].startswith("aiokafka reached it; metadata lists ")
    assert not [f for s in report.sections for f in s.findings if f.status is Status.WARN]


def test_healthy_command_exits_zero(bootstrap: str) -> None:
    result = run_doctor("--bootstrap-servers", bootstrap, env=HEALTHY)

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1] == "No problem found: Kafka messages will be traced."
    assert "  ok    kafka_autotrace_kafka_python is registered and enabled" in result.stdout
    assert result.stderr == ""


def test_a_disabled_instrumentation_stops_tracing_and_exits_one() -> None:
    env = {
        **HEALTHY,
        "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "flask, kafka_autotrace_confluent_kafka",
    }

    result = run_doctor(env=env)

    assert result.returncode == 1
    lines = result.stdout.splitlines()
    failure = lines.index(
        "  FAIL  kafka_autotrace_confluent_kafka is disabled by "
        "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS: confluent-kafka messages are not traced"
    )
    assert lines[failure + 1] == (
        "        fix: remove kafka_autotrace_confluent_kafka from "
        "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS"
    )
    assert "  ok    kafka_autotrace_kafka_python is registered and enabled" in lines
    assert lines[-1] == "1 problem would stop tracing."


def test_the_wildcard_disables_every_client() -> None:
    report = diagnose({**HEALTHY, "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "*"})

    assert [finding.text.split()[0] for finding in report.failures] == [
        "kafka_autotrace_kafka_python",
        "kafka_autotrace_confluent_kafka",
        "kafka_autotrace_aiokafka",
    ]
    assert {finding.fix for finding in report.failures} == {
        "remove * from OTEL_PYTHON_DISABLED_INSTRUMENTATIONS"
    }


def test_an_unreachable_broker_fails_within_the_timeout() -> None:
    started = time.monotonic()
    report = diagnose(HEALTHY, "127.0.0.1:1", timeout=1)

    assert time.monotonic() - started < 10
    failures = [finding.text for finding in report.failures]
    assert len(failures) == 3
    assert failures[0].startswith("kafka-python cannot reach 127.0.0.1:1 within 1 s (")
    assert failures[1].startswith("confluent-kafka cannot reach 127.0.0.1:1 within 1 s (")
    assert failures[2].startswith("aiokafka cannot reach 127.0.0.1:1 within 1 s (")


def test_a_broker_older_than_kafka_0_11_cannot_carry_trace_headers() -> None:
    """No such broker to test against: the verdict on the negotiated version is checked on its
    own, the probe that negotiates it by the healthy test above."""
    old = check_header_support((0, 10, 2))
    assert old.status is Status.FAIL
    assert "only supports the Kafka 0.10.2 API, older than 0.11" in old.text
    assert check_header_support((0, 11)).status is Status.OK


def test_client_versions_are_checked_against_the_requirement() -> None:
    installed = check_client_version("kafka-python >= 2.0.2, < 4")
    assert installed.status is Status.OK

    too_old = check_client_version("kafka-python >= 99")
    version = installed.text.split()[1]
    assert too_old == Finding(
        Status.FAIL,
        f"kafka-python {version} is not supported (kafka-python >= 99): "
        "its messages are not traced",
        "pip install 'kafka-python >= 99'",
    )
    assert check_client_version("no-such-kafka-client >= 1").status is Status.INFO


def test_an_enabled_upstream_instrumentation_is_reported(tmp_path: Path) -> None:
    """Installed as real distribution metadata, found through importlib.metadata as
    opentelemetry-instrument would find it; never imported."""
    dist_info = tmp_path / "opentelemetry_instrumentation_kafka_python-0.66b2.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: opentelemetry-instrumentation-kafka-python\nVersion: 0.66b2\n"
    )
    (dist_info / "entry_points.txt").write_text(
        "[opentelemetry_instrumentor]\n"
        "kafka = opentelemetry.instrumentation.kafka:KafkaInstrumentor\n"
    )

    both = run_doctor(env=HEALTHY, pythonpath=tmp_path)
    assert both.returncode == 0, "kafka-autotrace takes over: tracing works"
    lines = both.stdout.splitlines()
    warning = next(i for i, line in enumerate(lines) if line.startswith("  warn"))
    assert lines[warning].startswith(
        "  warn  opentelemetry-instrumentation-kafka-python is installed and enabled too: "
        "kafka-autotrace takes over from it at start-up"
    )
    assert lines[warning + 1] == (
        "        fix: to make that choice explicit and silence the warning, add kafka to "
        "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS (or pip uninstall "
        "opentelemetry-instrumentation-kafka-python)"
    )

    upstream_off = run_doctor(
        env={**HEALTHY, "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "kafka"}, pythonpath=tmp_path
    )
    assert upstream_off.returncode == 0, upstream_off.stdout
    assert "  ok    opentelemetry-instrumentation-kafka-python is installed but disabled" in (
        upstream_off.stdout.splitlines()
    )


def test_an_exporter_that_is_not_installed_stops_tracing() -> None:
    missing = check_exporter({**HEALTHY, "OTEL_TRACES_EXPORTER": "otlp,no_such_exporter"})
    assert missing.status is Status.FAIL
    assert missing.text.startswith("traces exporter 'no_such_exporter' ")
    assert check_exporter({"OTEL_TRACES_EXPORTER": "none"}).status is Status.WARN
    assert check_exporter({"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}).status is Status.OK


def test_configuration_shows_every_setting_and_warns_about_rejected_values() -> None:
    report = diagnose({"KAFKA_AUTOTRACE_CAPTURE_KEY": "maybe", "OTEL_PROPAGATORS": "none"})

    config = section(report, "Configuration")
    shown = {finding.text.split(" = ")[0] for finding in config}
    for field in dataclasses.fields(Settings):
        if field.init:
            assert getattr(settings_module, f"ENV_{field.name.upper()}") in shown
    assert texts(config, Status.WARN) == [
        "KAFKA_AUTOTRACE_CAPTURE_KEY = true, because KAFKA_AUTOTRACE_CAPTURE_KEY='maybe' is not "
        "a boolean; using True",
        "OTEL_SERVICE_NAME is not set: spans show up as unknown_service",
        "OTEL_PROPAGATORS=none: no trace context travels with messages",
    ]
    assert "KAFKA_AUTOTRACE_PROPAGATE = true (default)" in texts(config, Status.INFO)


@pytest.mark.parametrize("protocol", ["", "grpc"])
def test_grpc_is_the_default_otlp_protocol(protocol: str) -> None:
    """The distro defaults OTLP to gRPC: with only the HTTP exporter installed (as here), the
    doctor must say so rather than call the setup healthy."""
    env = {"OTEL_EXPORTER_OTLP_PROTOCOL": protocol} if protocol else {}
    finding = check_exporter(env)
    grpc_installed = "otlp_proto_grpc" in finding.text and finding.status is Status.OK
    if grpc_installed:
        pytest.skip("the gRPC exporter is installed here")
    assert finding.status is Status.FAIL
    assert finding.fix.startswith("pip install opentelemetry-exporter-otlp-proto-grpc")
