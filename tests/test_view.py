"""``kafka-autotrace view``: traces assembled as they arrive over real OTLP/HTTP, printed once
quiet, reprinted when late spans arrive; and the command itself, run as users run it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from opentelemetry.trace import SpanKind
from support.exports import Services, trace_id
from support.receiving import WaitingReceiver

from kafka_autotrace.tools.cli import main
from kafka_autotrace.tools.view import TraceAssembler, watch
from kafka_autotrace.tools.waterfall import render_traces

CLI = Path(sys.executable).parent / "kafka-autotrace"
PRODUCER, CONSUMER = SpanKind.PRODUCER, SpanKind.CONSUMER


def test_a_trace_is_ready_once_quiet_and_again_when_it_grows(
    otlp_receiver: WaitingReceiver, services: Services
) -> None:
    assembler = TraceAssembler(quiet_period=2.0, retention=10.0)
    send = services.hop("orders-api", "send orders", PRODUCER, 0, 1, offset=0)
    assembler.add(otlp_receiver.take_spans(), now=100.0)

    assert assembler.ready(now=101.9) == []
    (first,) = assembler.ready(now=102.0)
    assert (first.view.trace_id, first.updated, first.view.missing) == (trace_id(1), False, 1)
    assert assembler.ready(now=103.0) == [], "printed once, not on every tick"

    # The consumer's exporter reports later (every OTEL_BSP_SCHEDULE_DELAY): same trace, updated.
    services.hop("billing", "process orders", CONSUMER, 3, 4, send, offset=0)
    assembler.add(otlp_receiver.take_spans(), now=104.0)
    assert assembler.ready(now=105.0) == []
    (second,) = assembler.ready(now=106.0)
    assert (second.updated, len(second.view.rows), second.view.missing) == (True, 2, 0)
    assert "updated" in second.view.render(note="updated").splitlines()[0]

    # Forgotten after the retention period, so a long session does not keep every span.
    assert assembler.ready(now=116.0) == []
    services.hop("billing", "process orders", CONSUMER, 5, 6, send, offset=0)
    assembler.add(otlp_receiver.take_spans(), now=117.0)
    (late,) = assembler.ready(now=117.0, flush=True)
    assert (late.updated, len(late.view.rows)) == (False, 1)


def test_take_spans_hands_each_span_over_once(
    otlp_receiver: WaitingReceiver, services: Services
) -> None:
    assert otlp_receiver.take_spans(timeout=0.05) == []
    services.hop("orders-api", "send orders", PRODUCER, 0, 1)
    (span,) = otlp_receiver.take_spans(timeout=5)
    assert span.name == "send orders"
    assert otlp_receiver.take_spans() == [] and otlp_receiver.spans() == []


def test_watch_prints_each_trace_as_its_waterfall(
    otlp_receiver: WaitingReceiver, services: Services
) -> None:
    first = services.hop("orders-api", "send orders", PRODUCER, 0, 1, offset=0)
    services.hop("billing", "process orders", CONSUMER, 3, 4, first, offset=0)
    services.hop("orders-api", "send orders", PRODUCER, 10, 11, offset=1)
    expected = render_traces(otlp_receiver.spans())
    written: list[str] = []

    shown = watch(otlp_receiver, written.append, TraceAssembler(quiet_period=0.1), once=True)

    assert shown == 2
    assert "".join(written) == expected + "\n\n"
    assert "✗ MISSING" in written[1] and "MISSING" not in written[0]


def test_watch_stops_after_its_duration_and_prints_what_is_pending(
    otlp_receiver: WaitingReceiver, services: Services
) -> None:
    services.hop("orders-api", "send orders", PRODUCER, 0, 1, offset=0)
    written: list[str] = []

    shown = watch(otlp_receiver, written.append, TraceAssembler(quiet_period=60), duration=0.2)

    assert shown == 1
    assert written[0].startswith(f"trace {trace_id(1)} · orders-api · ")


def test_view_command_receives_real_exports() -> None:
    with subprocess.Popen(
        [str(CLI), "view", "--port", "0", "--quiet-period", "0.3", "--once"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as viewer:
        assert viewer.stdout is not None
        banner = list(iter(viewer.stdout.readline, "\n"))  # up to the blank line
        assert banner[0].startswith("Receiving OTLP/HTTP on http://127.0.0.1:")
        endpoint = banner[0].split(" on ", 1)[1].split(";", 1)[0]
        services = Services(endpoint)
        order = services.hop("orders-api", "send orders", PRODUCER, 0, 2, offset=0, key="k")
        services.hop("shipping", "process orders", CONSUMER, 5, 9, order, offset=0, key="k")
        services.shutdown()
        stdout, stderr = viewer.communicate(timeout=30)

    assert viewer.returncode == 0, stderr
    assert banner[1].split() == [
        f"OTEL_EXPORTER_OTLP_ENDPOINT={endpoint}",
        "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf",
    ]
    waterfall = stdout.splitlines()
    assert waterfall[0] == f"trace {trace_id(1)} · key k · orders-api → shipping · 9.0 ms"
    assert waterfall[2].endswith("4.0 ms  p0@0  waited 3.0 ms in Kafka")
    assert waterfall[-1] == "1 trace shown."


def test_view_says_how_to_install_the_optional_decoder() -> None:
    """opentelemetry-proto is only in the ``view`` extra; blocking its import (a None entry in
    sys.modules makes ``import`` fail) shows what a user without it gets."""
    code = (
        "import sys; sys.modules['opentelemetry.proto'] = None\n"
        "from kafka_autotrace.tools.cli import main\n"
        "sys.exit(main(['view', '--port', '0', '--once']))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 1
    assert "pip install 'kafka-autotrace[view]'" in result.stderr
    assert "Traceback" not in result.stderr


def test_view_reports_a_port_in_use(
    otlp_receiver: WaitingReceiver, capsys: pytest.CaptureFixture[str]
) -> None:
    port = otlp_receiver.endpoint.rsplit(":", 1)[1]
    assert main(["view", "--port", port, "--once"]) == 1
    assert f"port {port} is already in use" in capsys.readouterr().err
