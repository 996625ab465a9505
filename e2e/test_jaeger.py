"""``make demo-jaeger`` end to end: the demo's pipeline exporting to a real Jaeger, checked
through Jaeger's HTTP query API (what its UI shows), then stopped with Ctrl-C."""

from __future__ import annotations

import contextlib
import re
import signal
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from support.apps import RunningApp, stop_app
from support.jaeger import JaegerQuery

DEMO = Path(__file__).resolve().parent.parent / "demo" / "run.py"
HOPS = [
    ("orders-api", "send orders"),
    ("shipping", "process orders"),
    ("shipping", "send shipments"),
    ("invoicing", "process shipments"),
    ("invoicing", "send invoices"),
    ("billing", "process invoices"),
]


def hops_of(trace: dict[str, Any]) -> list[dict[str, Any]]:
    """The trace's spans in pipeline order, checking each one's service and that it is the
    child of the hop before; a trace may stop early (a message never processed)."""
    services = {key: process["serviceName"] for key, process in trace["processes"].items()}
    spans = sorted(trace["spans"], key=lambda span: span["startTime"])
    assert len(spans) <= len(HOPS), [span["operationName"] for span in spans]
    for span, (service, operation), previous in zip(spans, HOPS, [None, *spans]):
        # The demo's topics carry a suffix when it runs on a given broker.
        assert re.fullmatch(rf"{operation}(-\w+)?", span["operationName"]), span["operationName"]
        assert services[span["processID"]] == service, span["operationName"]
        parents = [ref["spanID"] for ref in span["references"] if ref["refType"] == "CHILD_OF"]
        assert parents == ([previous["spanID"]] if previous else []), span["operationName"]
    return spans


def key_of(span: dict[str, Any]) -> str:
    (key,) = [tag["value"] for tag in span["tags"] if tag["key"] == "messaging.kafka.message.key"]
    return str(key)


def test_demo_jaeger_shows_one_trace_per_order_and_the_service_graph(bootstrap: str) -> None:
    work = Path(tempfile.mkdtemp(prefix="kafka-autotrace-demo-jaeger-"))
    with (work / "stdout.txt").open("ab") as out, (work / "stderr.txt").open("ab") as err:
        process = subprocess.Popen(
            [sys.executable, str(DEMO), "--jaeger", "--bootstrap-servers", bootstrap],
            stdout=out,
            stderr=err,
        )
    demo = RunningApp(DEMO, process, work)
    try:
        printed = demo.wait_for_output("Press Ctrl-C", timeout=180)
        ui = re.search(r"Jaeger UI: (http://127\.0\.0\.1:\d+)/search\?service=orders-api", printed)
        assert ui is not None, printed
        jaeger = JaegerQuery(ui.group(1))

        traces = jaeger.traces("orders-api")
        assert len(traces) == 5, "one trace per order"
        by_key = {key_of(spans[0]): spans for spans in map(hops_of, traces)}
        assert sorted(by_key) == [f"order-{number}" for number in range(1, 6)]
        for number in range(1, 5):
            assert len(by_key[f"order-{number}"]) == len(HOPS)
        missing = by_key["order-5"]
        assert len(missing) == len(HOPS) - 1, "billing stopped before the last invoice"
        assert missing[-1]["operationName"].startswith("send invoices")

        edges = {
            (edge["parent"], edge["child"]): edge["callCount"] for edge in jaeger.dependencies()
        }
        # Jaeger counts a service's calls to itself too: a stage's process span parenting its
        # send span.
        assert edges == {
            ("orders-api", "shipping"): 5,
            ("shipping", "shipping"): 5,
            ("shipping", "invoicing"): 5,
            ("invoicing", "invoicing"): 5,
            ("invoicing", "billing"): 4,
        }
        first_order = by_key["order-1"][0]["traceID"]
        assert f"{jaeger.url}/trace/{first_order}" in printed
    finally:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(30)
        result = stop_app(demo)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Stopping Jaeger, the broker and every app." in result.stdout
    try:
        jaeger.api("/api/services")
    except urllib.error.URLError:
        pass
    else:
        raise AssertionError("Jaeger still answers after Ctrl-C")
