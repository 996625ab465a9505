"""``make demo`` end to end: the orchestrator, its four unmodified apps under the real
``opentelemetry-instrument``, and the waterfall it prints; and that it leaves nothing running."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

DEMO = Path(__file__).resolve().parent.parent / "demo"


def running_commands() -> list[str]:
    """Command lines of every process still alive (read from /proc)."""
    commands = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            commands.append(cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except OSError:  # the process ended while we looked
            continue
    return commands


@pytest.mark.parametrize("own_broker", [True, False], ids=["embedded-broker", "given-broker"])
def test_demo_prints_linked_traces_and_cleans_up(bootstrap: str, own_broker: bool) -> None:
    args = [] if own_broker else ["--bootstrap-servers", bootstrap]
    result = subprocess.run(
        [sys.executable, str(DEMO / "run.py"), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout

    headers = [line for line in out.splitlines() if line.startswith("trace ")]
    assert len(headers) == 5
    for number, header in enumerate(headers[:4], start=1):
        assert f" · key order-{number} · orders-api → shipping → invoicing → billing · " in header
    assert headers[4].endswith(" · 1 MISSING")
    missing = [line for line in out.splitlines() if "✗ MISSING" in line]
    assert len(missing) == 1 and "send invoices" in missing[0]
    waits = re.findall(r"waited (?:≤ )?[\d.]+ (?:µs|ms|s) in Kafka", out)
    assert len(waits) == 14, "one per process span: 5 of orders and shipments, 4 of invoices"
    ages = re.findall(r"[\d.]+ (?:µs|ms|s) since orders[\w-]*(?:\n| )", out)
    assert len(ages) >= 14, "each process span's pipeline age, since the first send to orders"
    assert "5 traces, 29 spans from 4 services; 1 message MISSING; 0 spans with ERROR" in out
    assert "shipping   | shipped order-5" in out, "app output is relayed as progress"

    leftovers = [command for command in running_commands() if str(DEMO / "apps") in command]
    if own_broker:
        started = re.search(r"embedded Kafka broker at 127\.0\.0\.1:(\d+)", out)
        assert started is not None
        port = started.group(1)
        leftovers += [c for c in running_commands() if f"--kafka-port {port} " in c]
    assert leftovers == []
