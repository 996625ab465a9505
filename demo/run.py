"""``make demo``: a real four-stage Kafka pipeline, traced with no code changes, as waterfalls.

What it does, in order:

1. starts a private Kafka-protocol broker (the ``noida-db`` wheel; or uses ``--bootstrap-servers``);
2. starts an in-process OTLP/HTTP receiver, the same one as ``kafka-autotrace view``;
3. runs the four unmodified apps in ``demo/apps`` (no OpenTelemetry code in them), each as its
   own service under ``opentelemetry-instrument`` with the real OTLP/HTTP exporter:
   orders-api (kafka-python producer) → shipping (confluent-kafka consumer that produces)
   → invoicing (aiokafka, asyncio, consumes and produces) → billing (kafka-python consumer),
   relaying their output as progress;
4. billing stops one message early, like a crashed consumer, so one invoice is sent but never
   processed;
5. once every app has exited (and so flushed its spans), prints one waterfall per order and
   stops the broker.

With ``--jaeger`` (``make demo-jaeger``) the apps export to a local Jaeger instead (built from
the Go module proxy on first use), and the demo prints links to its UI, keeping it up until
Ctrl-C.

The broker start-up and the instrumented-app environment are the test suite's own
(``tests/support``), so the demo shows exactly what the end-to-end tests check.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APPS = Path(__file__).resolve().parent / "apps"
sys.path.insert(0, str(ROOT / "tests"))

from support.apps import INSTRUMENT, app_env  # noqa: E402
from support.broker import NoidaBroker, create_topic, start_private_broker  # noqa: E402
from support.jaeger import binary as jaeger_binary  # noqa: E402
from support.jaeger import start_jaeger  # noqa: E402
from support.receiving import WaitingReceiver  # noqa: E402

from kafka_autotrace.tools.receiver import ReceivedSpan  # noqa: E402
from kafka_autotrace.tools.waterfall import glyphs_for, render_traces, summarize  # noqa: E402

ORDERS = 5
SPANS = 6 * ORDERS - 1
"""One per hop for every order, except the invoice billing never processed."""
TIMEOUT = 60.0


class DemoError(Exception):
    """A step failed; the message says which and carries the relevant output."""


class App:
    """One instrumented app: its output relayed line by line as progress, stderr kept for
    failure reports (a pipe nobody reads would block a chatty app, so it goes to a file)."""

    def __init__(self, service: str, command: list[str], endpoint: str, work: Path) -> None:
        self.service = service
        self.stderr_path = work / f"{service}.stderr"
        self._lines: list[str] = []
        self._ended = False
        self._changed = threading.Condition()
        with self.stderr_path.open("wb") as stderr:
            self.process = subprocess.Popen(
                [str(INSTRUMENT), sys.executable, *command],
                env=app_env(service, endpoint),
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
            )
        self._relay = threading.Thread(target=self._read, name=f"relay-{service}", daemon=True)
        self._relay.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            progress(f"  {self.service:<10} | {line.rstrip()}")
            with self._changed:
                self._lines.append(line)
                self._changed.notify_all()
        with self._changed:
            self._ended = True
            self._changed.notify_all()

    def wait_for_line(self, prefix: str, timeout: float = TIMEOUT) -> None:
        def printed() -> bool:
            return any(line.startswith(prefix) for line in self._lines)

        with self._changed:
            ended = self._changed.wait_for(lambda: printed() or self._ended, timeout)
            if not printed():
                reason = "it exited" if ended else f"nothing came within {timeout:g} s"
                raise DemoError(self._failure(f"was waiting for {prefix!r} but {reason}"))

    def wait(self, timeout: float = TIMEOUT) -> None:
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise DemoError(self._failure(f"did not finish within {timeout:g} s")) from None
        self._relay.join()
        if code != 0:
            raise DemoError(self._failure(f"exited with code {code}"))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._relay.join(5)

    def _failure(self, what: str) -> str:
        stderr = self.stderr_path.read_text(encoding="utf-8", errors="replace")
        return f"{self.service} {what}\n--- {self.service} stderr ---\n{stderr}"


def progress(line: str) -> None:
    print(line, flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--bootstrap-servers", help="use this Kafka instead of starting the embedded broker"
    )
    parser.add_argument(
        "--jaeger",
        action="store_true",
        help="export to a local Jaeger (built on first use) and leave its UI up until Ctrl-C",
    )
    args = parser.parse_args()
    # Ctrl-C, and a plain kill too, stop everything the demo started, even when it was started
    # with SIGINT ignored (in the background of a script).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    work = Path(tempfile.mkdtemp(prefix="kafka-autotrace-demo-"))
    broker: NoidaBroker | None = None
    try:
        progress(
            "kafka-autotrace demo: orders-api (kafka-python) → shipping (confluent-kafka) "
            "→ invoicing (aiokafka) → billing (kafka-python)\n"
        )
        if args.bootstrap_servers:
            bootstrap, suffix = args.bootstrap_servers, f"-{uuid.uuid4().hex[:6]}"
            progress(f"[1/5] using Kafka at {bootstrap}")
        else:
            started = time.monotonic()
            broker = start_private_broker(work / "broker.log")
            bootstrap, suffix = broker.bootstrap_servers, ""
            elapsed = time.monotonic() - started
            progress(f"[1/5] started the embedded Kafka broker at {bootstrap} ({elapsed:.1f} s)")
        if args.jaeger:
            return show_in_jaeger(bootstrap, suffix, work)
        spans = run_pipeline(bootstrap, suffix, work)
    except DemoError as exc:
        progress(f"\ndemo failed: {exc}")
        if broker is not None:
            progress(f"--- broker log ---\n{broker.log_tail(30)}")
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        if broker is not None:
            broker.stop()
        shutil.rmtree(work, ignore_errors=True)
    glyphs = glyphs_for(sys.stdout)
    progress(f"\n{render_traces(spans, glyphs)}\n\n{summarize(spans, glyphs)}")
    progress(
        "\nStopped the broker and every app. Next: `kafka-autotrace view` shows your own apps'"
        " traces like this;\n`kafka-autotrace doctor` checks an environment before you deploy."
    )
    return 0


def run_pipeline(bootstrap: str, suffix: str, work: Path) -> list[ReceivedSpan]:
    """The pipeline exporting to the built-in receiver; returns every span it made."""
    with WaitingReceiver() as receiver:
        progress(f"[2/5] receiving the apps' OTLP/HTTP exports at {receiver.endpoint}")
        run_apps(bootstrap, suffix, work, receiver.endpoint)
        try:
            return receiver.wait_for_spans(lambda spans: len(spans) >= SPANS, timeout=15)
        except TimeoutError as exc:
            raise DemoError(str(exc)) from None


def show_in_jaeger(bootstrap: str, suffix: str, work: Path) -> int:
    """The pipeline exporting to a local Jaeger, whose UI stays up until Ctrl-C."""
    if not jaeger_binary().exists():
        progress("      building Jaeger from the Go module proxy (first run only: minutes)")
    try:
        jaeger = start_jaeger()
    except RuntimeError as exc:
        raise DemoError(str(exc)) from None
    with jaeger:
        progress(f"[2/5] started Jaeger at {jaeger.url}; the apps export to its OTLP/HTTP receiver")
        run_apps(bootstrap, suffix, work, jaeger.otlp_endpoint)

        def stored() -> int:
            return sum(len(trace["spans"]) for trace in jaeger.traces("orders-api"))

        try:
            jaeger.wait_for(stored, lambda count: count >= SPANS, timeout=15)
        except TimeoutError as exc:
            raise DemoError(f"{exc}\n--- Jaeger log ---\n{jaeger.log_tail(30)}") from None
        first = min(
            jaeger.traces("orders-api"),
            key=lambda trace: min(span["startTime"] for span in trace["spans"]),
        )
        progress(
            f"\nJaeger UI: {jaeger.url}/search?service=orders-api\n"
            f"  the first order's trace: {jaeger.url}/trace/{first['traceID']}\n"
            f"  the service graph:       {jaeger.url}/dependencies\n"
            f"  (its query API, what the UI reads: {jaeger.url}/api/traces/{first['traceID']})\n"
            "Press Ctrl-C to stop Jaeger and the broker."
        )
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            progress("\nStopping Jaeger, the broker and every app.")
    return 0


def run_apps(bootstrap: str, suffix: str, work: Path, endpoint: str) -> None:
    """Run the four apps, exporting to ``endpoint``, until each has exited and so flushed."""
    orders = create_topic(bootstrap, f"orders{suffix}")
    shipments = create_topic(bootstrap, f"shipments{suffix}")
    invoices = create_topic(bootstrap, f"invoices{suffix}")
    with contextlib.ExitStack() as running:

        def start(service: str, script: str, *args: str) -> App:
            """Start an app; leaving the ``with`` block stops it if it still runs."""
            app = App(service, [str(APPS / script), *args], endpoint, work)
            running.callback(app.stop)
            return app

        progress("[3/5] starting shipping, invoicing and billing under opentelemetry-instrument")
        shipping = start(
            "shipping",
            "shipping.py",
            bootstrap,
            orders,
            shipments,
            f"shipping{suffix}",
            str(ORDERS),
        )
        invoicing = start(
            "invoicing",
            "invoicing.py",
            bootstrap,
            shipments,
            invoices,
            f"invoicing{suffix}",
            str(ORDERS),
        )
        billing = start(
            "billing", "billing.py", bootstrap, invoices, f"billing{suffix}", str(ORDERS - 1)
        )
        for stage in (shipping, invoicing, billing):
            stage.wait_for_line("ready")
        progress(f"[4/5] placing {ORDERS} orders; billing will stop after {ORDERS - 1} of them")
        orders_api = start("orders-api", "orders_api.py", bootstrap, orders, str(ORDERS))
        for app in (orders_api, shipping, invoicing, billing):
            app.wait()
        progress("[5/5] every app has exited and flushed its spans")


if __name__ == "__main__":
    sys.exit(main())
