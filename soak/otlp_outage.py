"""Application throughput and exit time when the OTLP collector is down or hung.

    python soak/otlp_outage.py                 # both clients, 5 rounds (about 5 minutes)
    python soak/otlp_outage.py --rounds 1 --clients kafka-python

An unmodified app (``e2e/apps/throughput.py``: produce COUNT messages, flush, consume them
back) runs under the real ``opentelemetry-instrument`` with the real OTLP/HTTP exporter
pointed at, in turn:

- ``sink``: a healthy collector that answers every export at once without decoding it (as a
  collector on another host would, so it takes no CPU from the app): the reference rate;
- ``closed``: a port nothing listens on, so every export is refused at once;
- ``black-hole``: a server that accepts connections and never answers, so every export waits
  for the exporter's full timeout (``OTEL_EXPORTER_OTLP_TIMEOUT``).

The SDK keeps its default batching (5 s schedule, 2048-span queue, 512-span batches), as a
service would. Cases alternate within each round, in a rotated order, and figures are
medians over rounds, because the machine is shared. "exit" is the time from the app's last
line of work to its process ending: the SDK flushing (or giving up on) what it still holds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from support.apps import run_app_timing_exit  # noqa: E402
from support.broker import create_topic, start_private_broker, unique_topic  # noqa: E402
from support.network import BlackHole, OtlpSink, closed_port  # noqa: E402

APP = ROOT / "e2e" / "apps" / "throughput.py"
ENDPOINTS = ("sink", "closed", "black-hole")
SDK_DEFAULTS = {"OTEL_BSP_SCHEDULE_DELAY": "5000", "OTEL_METRIC_EXPORT_INTERVAL": "60000"}


def run_once(
    client: str, bootstrap: str, endpoint: str, messages: int, timeout_s: int
) -> dict[str, float]:
    """One app run: its two rates, and how long it took to exit after its work was done."""
    topic = create_topic(bootstrap, unique_topic("outage"))
    stdout, exit_s = run_app_timing_exit(
        APP,
        client,
        bootstrap,
        topic,
        str(messages),
        done_text="consume_msg_per_s",
        service="outage",
        endpoint=endpoint,
        env={**SDK_DEFAULTS, "OTEL_EXPORTER_OTLP_TIMEOUT": str(timeout_s)},
        timeout=300,
    )
    rates: dict[str, float] = json.loads(stdout.strip().splitlines()[-1])
    return {**rates, "exit_s": exit_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--clients", default="kafka-python,confluent-kafka")
    parser.add_argument("--exporter-timeout", type=int, default=2, help="seconds")
    args = parser.parse_args()
    clients = args.clients.split(",")

    broker = start_private_broker(Path(tempfile.mkdtemp()) / "broker.log")
    runs: dict[tuple[str, str], list[dict[str, float]]] = {}
    try:
        with OtlpSink() as sink, BlackHole() as hole:
            urls = {
                "sink": sink.endpoint,
                "closed": f"http://127.0.0.1:{closed_port()}",
                "black-hole": hole.endpoint,
            }
            for round_index in range(args.rounds):
                for client in clients:
                    shift = round_index % len(ENDPOINTS)
                    for endpoint in ENDPOINTS[shift:] + ENDPOINTS[:shift]:
                        result = run_once(
                            client,
                            broker.bootstrap_servers,
                            urls[endpoint],
                            args.messages,
                            args.exporter_timeout,
                        )
                        runs.setdefault((client, endpoint), []).append(result)
                        print(f"round {round_index + 1} {client:16} {endpoint:10} {result}")
    finally:
        broker.stop()

    print(
        f"\n{args.messages} messages per run, {args.rounds} rounds, "
        f"OTEL_EXPORTER_OTLP_TIMEOUT={args.exporter_timeout}, medians"
    )
    print(
        f"{'client':16} {'collector':10} {'produce/s':>10} {'vs sink':>8} "
        f"{'consume/s':>10} {'vs sink':>8} {'exit s':>7} {'max exit s':>10}"
    )
    for client in clients:
        reference = runs[(client, "sink")]
        for endpoint in ENDPOINTS:
            cases = runs[(client, endpoint)]
            row = [f"{client:16} {endpoint:10}"]
            for rate in ("produce_msg_per_s", "consume_msg_per_s"):
                median = statistics.median(case[rate] for case in cases)
                base = statistics.median(case[rate] for case in reference)
                row.append(f"{median:10.0f} {median / base:8.1%}")
            exits = [case["exit_s"] for case in cases]
            row.append(f"{statistics.median(exits):7.1f} {max(exits):10.1f}")
            print(" ".join(row))


if __name__ == "__main__":
    main()
