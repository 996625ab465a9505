"""The ``kafka-autotrace`` command: ``view`` (a local trace viewer) and ``doctor``.

Kept free of heavy imports at module level: ``doctor`` must work in an environment that lacks
the optional ``view`` extra (opentelemetry-proto), and ``view`` must say how to get it rather
than fail with a traceback.
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
from collections.abc import Sequence
from typing import TextIO

from kafka_autotrace.tools.waterfall import ASCII, glyphs_for
from kafka_autotrace.version import __version__

_OTLP_HTTP_PORT = 4318


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if args.command == "view":
        return _view(args)
    return _doctor(args)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kafka-autotrace",
        description="Tools for kafka-autotrace: see Kafka traces locally, check an environment.",
    )
    parser.add_argument("--version", action="version", version=f"kafka-autotrace {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    view = commands.add_parser(
        "view",
        help="receive OTLP/HTTP and print each trace as a waterfall",
        description=(
            "Receive OTLP/HTTP (protobuf) like a collector and print each trace as a waterfall "
            "once no span arrived for it for the quiet period: every hop with its duration, "
            "the time each message waited in Kafka, sends never processed (MISSING) and "
            "errors. Point an instrumented app's OTEL_EXPORTER_OTLP_ENDPOINT at it."
        ),
    )
    view.add_argument("--host", default="127.0.0.1", help="address to listen on (%(default)s)")
    view.add_argument(
        "--port", type=int, default=_OTLP_HTTP_PORT, help="port, 0 for any free (%(default)s)"
    )
    view.add_argument(
        "--quiet-period",
        type=float,
        default=6.0,
        metavar="SECONDS",
        help=(
            "print a trace once it got no span for this long (%(default)s s; apps export "
            "every OTEL_BSP_SCHEDULE_DELAY, 5 s by default)"
        ),
    )
    stop = view.add_mutually_exclusive_group()
    stop.add_argument("--once", action="store_true", help="exit after the first traces")
    stop.add_argument(
        "--duration", type=float, metavar="SECONDS", help="exit after this long (default: Ctrl-C)"
    )
    view.add_argument("--ascii", action="store_true", help="draw with ASCII characters only")

    doctor = commands.add_parser(
        "doctor",
        help="check that this environment will trace Kafka messages",
        description=(
            "Check the installed Kafka clients, the kafka-autotrace instrumentors, upstream "
            "instrumentors that would trace twice, the SDK and exporter, and the effective "
            "configuration from the environment; with --bootstrap-servers, also that the broker "
            "is reachable and supports record headers. Exits 1 when something would stop "
            "tracing."
        ),
    )
    doctor.add_argument(
        "--bootstrap-servers", metavar="HOST:PORT[,...]", help="a broker to check (plaintext)"
    )
    doctor.add_argument(
        "--timeout", type=float, default=5.0, metavar="SECONDS", help="broker timeout (%(default)s)"
    )
    return parser


def _view(args: argparse.Namespace) -> int:
    try:
        from kafka_autotrace.tools.receiver import OtlpReceiver
        from kafka_autotrace.tools.view import TraceAssembler, watch
    except ModuleNotFoundError as exc:
        if not (exc.name or "").startswith(("opentelemetry.proto", "google")):
            raise
        print(
            "kafka-autotrace view needs the OTLP protobuf definitions, which are optional: "
            "pip install 'kafka-autotrace[view]'",
            file=sys.stderr,
        )
        return 1
    receiver = OtlpReceiver(args.host, args.port)
    try:
        receiver.start()
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        print(
            f"port {args.port} is already in use (a collector, or another viewer?); "
            "choose another with --port",
            file=sys.stderr,
        )
        return 1
    out = sys.stdout
    try:
        endpoint = receiver.endpoint
        print(
            f"Receiving OTLP/HTTP on {endpoint}; run instrumented apps with\n"
            f"  OTEL_EXPORTER_OTLP_ENDPOINT={endpoint} OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf\n"
            f"A trace is printed {args.quiet_period:g} s after its last span arrived"
            f"{'' if args.duration or args.once else '; Ctrl-C to stop'}.\n",
            file=out,
            flush=True,
        )
        printed = watch(
            receiver,
            lambda text: _write(out, text),
            TraceAssembler(args.quiet_period),
            duration=args.duration,
            once=args.once,
            glyphs=ASCII if args.ascii else glyphs_for(out),
        )
    finally:
        receiver.stop()
    print(f"{printed} trace{'s' if printed != 1 else ''} shown.", file=out)
    return 0


def _doctor(args: argparse.Namespace) -> int:
    from kafka_autotrace.tools.doctor import diagnose

    report = diagnose(os.environ, args.bootstrap_servers, args.timeout)
    print(report.render())
    return 0 if report.healthy else 1


def _write(out: TextIO, text: str) -> None:
    out.write(text)
    out.flush()
