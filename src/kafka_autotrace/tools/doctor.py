"""``kafka-autotrace doctor``: will this environment trace its Kafka messages, and if not, why?

Zero-code instrumentation fails silently: a client version out of range, an instrumentor
switched off in ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS``, a missing exporter or SDK, a broker
too old for record headers each just mean "no traces", with at most a debug log line. The
doctor reads the same things ``opentelemetry-instrument`` reads (installed distributions, entry
points, environment) and says, finding by finding, what it sees and what to change.

Every check is a plain function of its inputs (an environment mapping, a requirement string,
entry points, bootstrap servers), so each outcome is testable against the real installation and
a real broker, with no mocks. Findings are data; :meth:`Report.render` is the only formatting.
"""

from __future__ import annotations

import enum
import importlib.metadata
import platform
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from opentelemetry.instrumentation.dependencies import get_dependency_conflicts

from kafka_autotrace.clients.registry import CLIENTS, KAFKA_PYTHON
from kafka_autotrace.clients.spec import ClientSpec
from kafka_autotrace.core.disabled import DisabledInstrumentations
from kafka_autotrace.core.propagation import HEADERS_MIN_API
from kafka_autotrace.core.settings import VARIABLES, Settings
from kafka_autotrace.version import __version__

__all__ = [
    "Finding",
    "Report",
    "Section",
    "Status",
    "check_broker",
    "check_client_version",
    "check_header_support",
    "diagnose",
]

_INSTRUMENTOR_GROUP = "opentelemetry_instrumentor"
_DISABLED = "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS"
_OTLP_BY_PROTOCOL = {"grpc": "otlp_proto_grpc", "http/protobuf": "otlp_proto_http"}
_OTLP_PACKAGES = {
    "otlp_proto_grpc": "opentelemetry-exporter-otlp-proto-grpc",
    "otlp_proto_http": "opentelemetry-exporter-otlp-proto-http",
}
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
"""The distribution name at the start of a requirement string (PEP 508)."""


class Status(enum.Enum):
    OK = "ok"
    INFO = "info"
    """Neither good nor bad: a value shown for reference."""
    WARN = "warn"
    """Tracing works, but probably not as intended."""
    FAIL = "FAIL"
    """Something here stops messages from being traced."""


@dataclass(frozen=True)
class Finding:
    status: Status
    text: str
    fix: str = ""


@dataclass(frozen=True)
class Section:
    title: str
    findings: tuple[Finding, ...]


@dataclass(frozen=True)
class Report:
    sections: tuple[Section, ...]

    @property
    def failures(self) -> list[Finding]:
        return [f for section in self.sections for f in section.findings if f.status is Status.FAIL]

    @property
    def healthy(self) -> bool:
        return not self.failures

    def render(self) -> str:
        lines = [
            f"kafka-autotrace doctor (kafka-autotrace {__version__}, "
            f"Python {platform.python_version()})"
        ]
        for section in self.sections:
            lines += ["", section.title]
            for finding in section.findings:
                lines.append(f"  {finding.status.value:<5} {finding.text}")
                if finding.fix:
                    lines.append(f"        fix: {finding.fix}")
        failures = len(self.failures)
        lines.append("")
        if failures:
            lines.append(f"{failures} problem{'s' if failures > 1 else ''} would stop tracing.")
        else:
            lines.append("No problem found: Kafka messages will be traced.")
        return "\n".join(lines)


def diagnose(
    environ: Mapping[str, str],
    bootstrap_servers: str | None = None,
    timeout: float = 5.0,
) -> Report:
    """Every check, for the environment ``environ`` and, given bootstrap servers, a broker."""
    instrumentors = _entry_points(_INSTRUMENTOR_GROUP)
    disabled = DisabledInstrumentations.from_env(environ)
    installed = [client for client in CLIENTS if _installed_version(client.distribution)]
    client_findings = []
    instrumentation = []
    for client in CLIENTS:
        entry_point = _ours(instrumentors, client)
        try:
            requirement = _requirement(entry_point) if entry_point else client.distribution
        except Exception as exc:
            requirement = client.distribution
            instrumentation.append(
                Finding(Status.FAIL, f"{client.entry_point} cannot be loaded ({exc!r})")
            )
        client_findings.append(check_client_version(requirement))
        if client in installed:
            registered = check_registered(client, entry_point, disabled)
            instrumentation.append(registered)
            active = registered.status is Status.OK
            instrumentation.append(check_upstream(client, instrumentors, disabled, active))
    if not installed:
        names = " or ".join(client.distribution for client in CLIENTS)
        client_findings.append(
            Finding(Status.FAIL, "no Kafka client is installed", f"pip install {names}")
        )
    instrumentation += [check_sdk(), check_exporter(environ)]
    sections = [
        Section("Kafka clients", tuple(client_findings)),
        Section("Instrumentation under opentelemetry-instrument", tuple(instrumentation)),
        Section("Configuration", tuple(check_configuration(environ))),
    ]
    if bootstrap_servers:
        broker = check_broker(bootstrap_servers, timeout, installed)
        sections.append(Section(f"Broker {bootstrap_servers}", tuple(broker)))
    return Report(tuple(sections))


def check_client_version(requirement: str) -> Finding:
    """Whether the client named in ``requirement`` (e.g. ``"kafka-python >= 2.0.2, < 4"``) is
    installed in a version the instrumentation supports: the same test the instrumentor
    makes before patching anything. A bare name only reports the installed version."""
    match = _NAME.match(requirement)
    name = match.group(0) if match else requirement
    found = _installed_version(name)
    if found is None:
        return Finding(Status.INFO, f"{name} is not installed")
    if requirement.strip() == name:
        return Finding(Status.INFO, f"{name} {found} is installed")
    if get_dependency_conflicts([requirement]) is not None:
        return Finding(
            Status.FAIL,
            f"{name} {found} is not supported ({requirement}): its messages are not traced",
            f"pip install '{requirement}'",
        )
    return Finding(Status.OK, f"{name} {found} is supported ({requirement})")


def check_registered(
    client: ClientSpec,
    entry_point: importlib.metadata.EntryPoint | None,
    disabled: DisabledInstrumentations,
) -> Finding:
    """Whether ``opentelemetry-instrument`` will load our instrumentor for ``client``."""
    name = client.entry_point
    if entry_point is None:
        return Finding(
            Status.FAIL,
            f"{name} is not registered, so {client.distribution} is not instrumented",
            "install kafka-autotrace into the environment the application runs in",
        )
    disabling = disabled.disabling(name)
    if disabling is not None:
        return Finding(
            Status.FAIL,
            f"{name} is disabled by {_DISABLED}: {client.distribution} messages are not traced",
            f"remove {disabling} from {_DISABLED}",
        )
    return Finding(Status.OK, f"{name} is registered and enabled")


def check_upstream(
    client: ClientSpec,
    instrumentors: Sequence[importlib.metadata.EntryPoint],
    disabled: DisabledInstrumentations,
    ours_active: bool,
) -> Finding:
    """Whether an upstream contrib instrumentor is enabled beside ours, which then takes over
    from it (see :mod:`kafka_autotrace.core.instrumentor`)."""
    upstream = [ep for ep in instrumentors if ep.value.split(":")[0] == client.upstream.module]
    enabled = [ep for ep in upstream if not disabled.disables(ep.name)]
    if not upstream:
        return Finding(Status.OK, f"{client.upstream.distribution} (upstream) is not installed")
    if not enabled:
        return Finding(Status.OK, f"{client.upstream.distribution} is installed but disabled")
    if not ours_active:
        return Finding(
            Status.INFO, f"{client.upstream.distribution} traces {client.distribution} instead"
        )
    names = ",".join(ep.name for ep in enabled)
    return Finding(
        Status.WARN,
        f"{client.upstream.distribution} is installed and enabled too: kafka-autotrace takes "
        f"over from it at start-up, so each {client.distribution} message is traced once, and "
        "says so in a warning",
        f"to make that choice explicit and silence the warning, add {names} to {_DISABLED} "
        f"(or pip uninstall {client.upstream.distribution})",
    )


def check_sdk() -> Finding:
    """``opentelemetry-instrument`` patches libraries itself, but only a configurator (normally
    opentelemetry-distro's) creates the SDK that exports; without one, spans go nowhere."""
    configurators = _entry_points("opentelemetry_configurator")
    if not configurators:
        return Finding(
            Status.FAIL,
            "no OpenTelemetry SDK configurator is installed: spans are created but never exported",
            "pip install opentelemetry-distro",
        )
    names = ", ".join(ep.value.split(":")[0] for ep in configurators)
    return Finding(Status.OK, f"the SDK is configured by {names}")


def check_exporter(environ: Mapping[str, str]) -> Finding:
    """Whether every exporter in ``OTEL_TRACES_EXPORTER`` is installed, resolving ``otlp`` with
    the protocol exactly as the SDK does (gRPC unless ``OTEL_EXPORTER_OTLP_PROTOCOL`` says
    otherwise: the most common reason for traces that never leave the process)."""
    names = [n.strip() for n in environ.get("OTEL_TRACES_EXPORTER", "otlp").split(",") if n.strip()]
    if not names or names == ["none"]:
        return Finding(
            Status.WARN,
            "OTEL_TRACES_EXPORTER=none: spans are not exported",
            "set OTEL_TRACES_EXPORTER=otlp",
        )
    protocol = environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or environ.get(
        "OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"
    )
    available = {ep.name for ep in _entry_points("opentelemetry_traces_exporter")}
    resolved = []
    for name in names:
        entry = _OTLP_BY_PROTOCOL.get(protocol.strip(), "") if name == "otlp" else name
        if entry not in available:
            package = _OTLP_PACKAGES.get(entry, f"the package providing the {name!r} exporter")
            hint = f"pip install {package}"
            if name == "otlp":
                hint += ", or set OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf or grpc to match"
            return Finding(
                Status.FAIL,
                f"traces exporter {name!r} (protocol {protocol}) is not installed: "
                "opentelemetry-instrument cannot export spans",
                hint,
            )
        resolved.append(name if entry == name else f"{name} ({entry})")
    return Finding(Status.OK, f"traces are exported with {', '.join(resolved)}")


def check_configuration(environ: Mapping[str, str]) -> list[Finding]:
    """The effective ``KAFKA_AUTOTRACE_*`` settings and the OpenTelemetry variables that decide
    where spans go; values the instrumentation would reject are warnings."""
    effective, problems = Settings.read(environ)
    findings = []
    for name, variable in VARIABLES.items():
        value = _show(getattr(effective, name))
        origin = "" if variable in environ else " (default)"
        problem = problems.get(variable)
        if problem is not None:
            text = f"{variable} = {value}, because {problem}"
            findings.append(Finding(Status.WARN, text, "correct the value or unset the variable"))
        else:
            findings.append(Finding(Status.INFO, f"{variable} = {value}{origin}"))
    if not effective.propagate:
        findings.append(Finding(Status.WARN, "trace context is not written into produced messages"))
    service = environ.get("OTEL_SERVICE_NAME")
    if service or "service.name=" in environ.get("OTEL_RESOURCE_ATTRIBUTES", ""):
        findings.append(Finding(Status.INFO, f"OTEL_SERVICE_NAME = {service or '(from resource)'}"))
    else:
        findings.append(
            Finding(
                Status.WARN,
                "OTEL_SERVICE_NAME is not set: spans show up as unknown_service",
                "set OTEL_SERVICE_NAME to the name of the application",
            )
        )
    endpoint = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT", "(default: localhost, port 4317 gRPC / 4318 HTTP)"
    )
    findings.append(Finding(Status.INFO, f"OTLP endpoint = {endpoint}"))
    propagators = environ.get("OTEL_PROPAGATORS", "tracecontext,baggage (default)")
    if propagators.strip() == "none":
        findings.append(
            Finding(
                Status.WARN,
                "OTEL_PROPAGATORS=none: no trace context travels with messages",
                "unset OTEL_PROPAGATORS or include tracecontext",
            )
        )
    else:
        findings.append(Finding(Status.INFO, f"OTEL_PROPAGATORS = {propagators}"))
    return findings


def check_broker(
    bootstrap_servers: str, timeout: float, clients: Sequence[ClientSpec]
) -> list[Finding]:
    """Reach the broker with each installed client (``clients``), as the application would,
    through the probe its registry entry names.

    Record headers need Kafka 0.11 (Produce API v3): without them the trace context cannot
    travel with a message. Only clients that negotiate the API version can tell; the others
    prove reachability only.
    """
    findings = []
    for client in CLIENTS:
        if client in clients:
            findings.append(_probe(client, bootstrap_servers, timeout))
        elif client.negotiates_api_version:
            findings.append(
                Finding(
                    Status.INFO,
                    f"record header support not checked: it needs {client.distribution}",
                )
            )
    return findings


def _probe(client: ClientSpec, bootstrap_servers: str, timeout: float) -> Finding:
    name = client.distribution
    try:
        reached = client.load_probe()(bootstrap_servers, timeout)
    except Exception as exc:
        return _unreachable(name, bootstrap_servers, timeout, exc)
    if reached.api_version is not None:
        return check_header_support(reached.api_version, name)
    count = reached.brokers or 0
    listed = f"{count} broker{'s' * (count > 1)}"
    return Finding(Status.OK, f"{name} reached it; metadata lists {listed}")


def check_header_support(
    api_version: tuple[int, ...], client: str = KAFKA_PYTHON.distribution
) -> Finding:
    """The verdict on the API version ``client`` negotiated with the broker (the same value
    its adapter consults before adding trace headers)."""
    shown = ".".join(map(str, api_version))
    if api_version < HEADERS_MIN_API:
        return Finding(
            Status.FAIL,
            f"{client} reached it; the broker only supports the Kafka {shown} API, older "
            "than 0.11: messages cannot carry headers, so no trace continues past a producer",
            "upgrade the broker to Kafka 0.11 or later",
        )
    return Finding(
        Status.OK,
        f"{client} reached it; the broker supports the Kafka {shown} API: record headers supported",
    )


def _unreachable(client: str, bootstrap_servers: str, timeout: float, exc: Exception) -> Finding:
    reason = str(exc)
    if not reason.startswith(type(exc).__name__):  # kafka-python's errors name themselves
        reason = f"{type(exc).__name__}: {reason}"
    return Finding(
        Status.FAIL,
        f"{client} cannot reach {bootstrap_servers} within {timeout:g} s ({reason})",
        "check the address, that the broker runs, and its advertised.listeners",
    )


def _entry_points(group: str) -> list[importlib.metadata.EntryPoint]:
    if sys.version_info >= (3, 10):
        found = importlib.metadata.entry_points(group=group)
    else:
        found = importlib.metadata.entry_points().get(group, ())
    # The same distribution on sys.path twice lists its entry points twice.
    return list({(ep.name, ep.value): ep for ep in found}.values())


def _ours(
    instrumentors: Sequence[importlib.metadata.EntryPoint], client: ClientSpec
) -> importlib.metadata.EntryPoint | None:
    for entry_point in instrumentors:
        if entry_point.name == client.entry_point and entry_point.value.startswith(
            "kafka_autotrace."
        ):
            return entry_point
    return None


def _requirement(entry_point: importlib.metadata.EntryPoint) -> str:
    """The supported range, as the instrumentor itself declares it."""
    requirement: str = entry_point.load().client.requirement
    return requirement


def _installed_version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple):
        return ",".join(value) or "(none)"
    if isinstance(value, enum.Enum):
        return str(value.value)
    return str(value)
