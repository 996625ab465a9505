"""A real Prometheus server for tests, scraping apps that run the Prometheus exporter.

Why a real one: what users type is PromQL over the *exported* names (unit suffixes, ``_total``,
dots turned into underscores, ``le`` buckets), and that translation is where documentation and
exporters drift apart. Only Prometheus itself evaluates a query the way users' dashboards and
alerts will. The Debian package provides the binaries; they are installed on first use when
missing (as root) with the package's system service kept from starting, and every server here
has its own free port and storage, so nothing depends on, or collides with, a Prometheus on 9090.

``PYTHONPATH=tests python -m support.prometheus`` installs the package up front, as .ci/run does.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from support.processes import ServerProcess, free_port, poll_until, wait_until_serving

PACKAGE = "prometheus"
BINARY = Path("/usr/bin/prometheus")
PROMTOOL = Path("/usr/bin/promtool")
# Debian's hook for "may a package's maintainer scripts start services?": exit 101 means no.
POLICY_RC = Path("/usr/sbin/policy-rc.d")

_T = TypeVar("_T")


@dataclass(frozen=True)
class Sample:
    """One series of an instant-query result."""

    labels: dict[str, str]
    value: float


def exporter_env(port: int) -> dict[str, str]:
    """The environment of an app under ``opentelemetry-instrument`` that serves its metrics to
    Prometheus on ``port`` and exports nothing over OTLP."""
    return {
        "OTEL_METRICS_EXPORTER": "prometheus",
        "OTEL_EXPORTER_PROMETHEUS_HOST": "127.0.0.1",
        "OTEL_EXPORTER_PROMETHEUS_PORT": str(port),
        "OTEL_TRACES_EXPORTER": "none",
    }


def firing(rule: dict[str, Any], **labels: str) -> dict[str, Any]:
    """One alert of ``rule`` (as the rules file has it) as promtool expects it to fire with
    ``labels``: the rule's own labels added, its annotations rendered."""
    annotations = rule.get("annotations", {})
    return {
        "exp_labels": {**rule.get("labels", {}), **labels},
        "exp_annotations": {key: render(value, labels) for key, value in annotations.items()},
    }


def render(template: str, labels: dict[str, str]) -> str:
    """An alert annotation as Prometheus renders it; only ``{{ $labels.NAME }}`` is supported."""
    rendered = re.sub(r"\{\{\s*\$labels\.(\w+)\s*\}\}", lambda m: labels[m[1]], template)
    assert "{{" not in rendered, f"a template this test cannot render: {template}"
    return rendered


def wait_for_series(prometheus: Prometheus, names: Sequence[str], timeout: float = 20.0) -> None:
    """Wait until ``prometheus`` has scraped each of the series ``names``, and only those of
    the names matched."""
    query = f'count by (__name__) ({{__name__=~"{"|".join(names)}"}})'
    prometheus.wait_for(
        query, lambda got: {sample.labels["__name__"] for sample in got} == set(names), timeout
    )


def check_alerts(
    directory: Path, rules: str, *alert_tests: dict[str, Any], evaluation_interval: str = "1m"
) -> None:
    """promtool's rule unit tests: each of ``alert_tests`` (an entry of its ``tests``; its
    ``interval`` 1m unless given) run on the rules of the YAML text ``rules``, in
    ``directory``; raises AssertionError with promtool's output when one fails."""
    ensure_installed()
    (directory / "rules.yml").write_text(rules + "\n")
    unit_tests = {
        "rule_files": ["rules.yml"],
        "evaluation_interval": evaluation_interval,
        "tests": [{"interval": "1m", **tests} for tests in alert_tests],
    }
    (directory / "tests.yml").write_text(json.dumps(unit_tests, indent=2))  # JSON is YAML too
    done = subprocess.run(
        [str(PROMTOOL), "test", "rules", "tests.yml"],
        cwd=directory,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def ensure_installed() -> Path:
    """The Prometheus binary, installing the Debian package first when it is missing.

    Installing needs root; otherwise this raises RuntimeError saying what to install.
    """
    if BINARY.exists() and PROMTOOL.exists():
        return BINARY
    if os.geteuid() != 0:
        raise RuntimeError(f"{BINARY} is missing: install it as root (apt-get install {PACKAGE})")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    with _services_kept_down():
        # Recommends would add prometheus-node-exporter: another service, which no test uses.
        for command in (
            ["apt-get", "update"],
            ["apt-get", "install", "-y", "--no-install-recommends", PACKAGE],
        ):
            done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}")
    if Path("/run/systemd/system").exists():
        # policy-rc.d kept it from starting, but the package also enables it for the next boot.
        subprocess.run(
            ["systemctl", "disable", "--now", f"{PACKAGE}.service"],
            capture_output=True,
            check=False,
        )
    return BINARY


@contextlib.contextmanager
def _services_kept_down() -> Iterator[None]:
    """While installing, no package may start its service (it would take port 9090). An
    existing policy-rc.d is the machine's own and is left as it is."""
    if POLICY_RC.exists():
        yield
        return
    POLICY_RC.write_text(
        "#!/bin/sh\n# Written by kafka-autotrace's tests during apt-get.\nexit 101\n"
    )
    POLICY_RC.chmod(0o755)
    try:
        yield
    finally:
        POLICY_RC.unlink()


@dataclass
class Prometheus(ServerProcess):
    """A running server at :attr:`url`; use it as a context manager so it is always stopped."""

    LOG = "prometheus.log"
    url: str

    def query(self, promql: str) -> list[Sample]:
        """An instant query's result (a vector), evaluated now; raises on a query error."""
        data = self._get("/api/v1/query", query=promql)
        if data["resultType"] != "vector":
            raise AssertionError(f"{promql!r} gave a {data['resultType']}, not a vector")
        return [
            Sample(labels=item["metric"], value=float(item["value"][1])) for item in data["result"]
        ]

    def wait_for(
        self,
        promql: str,
        predicate: Callable[[list[Sample]], bool] = bool,
        timeout: float = 20.0,
    ) -> list[Sample]:
        """Query until ``predicate(result)`` holds (by default: until there is a result).

        Scrapes come once an interval, so tests wait for a condition rather than sleep. On
        timeout the error carries the last result and the scrape targets' health.
        """
        return self._wait(lambda: self.query(promql), predicate, timeout, repr(promql))

    def wait_for_rules(
        self, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float = 20.0
    ) -> list[dict[str, Any]]:
        """Like :meth:`wait_for`, for the loaded rules (see :meth:`rules`)."""
        return self._wait(self.rules, predicate, timeout, "the rules")

    def _wait(
        self, fetch: Callable[[], _T], predicate: Callable[[_T], bool], timeout: float, what: str
    ) -> _T:
        return poll_until(
            fetch,
            predicate,
            timeout,
            lambda got: (
                f"{what} did not give the expected result within {timeout:g} s; "
                f"last result: {got}\ntargets: {self.targets()}"
            ),
        )

    def targets(self) -> list[dict[str, Any]]:
        """The scrape targets as Prometheus sees them: address, health, last error."""
        active = self._get("/api/v1/targets")["activeTargets"]
        return [
            {key: target.get(key) for key in ("scrapeUrl", "health", "lastError")}
            for target in active
        ]

    def rules(self) -> list[dict[str, Any]]:
        """Every loaded recording and alerting rule, with its health and last error."""
        groups = self._get("/api/v1/rules")["groups"]
        return [rule for group in groups for rule in group["rules"]]

    def _get(self, path: str, **params: str) -> Any:
        url = f"{self.url}{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                body = json.load(response)
        except urllib.error.HTTPError as exc:  # a bad query answers 400 with a JSON error
            body = json.load(exc)
        if body.get("status") != "success":
            raise AssertionError(f"{url}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]


def start_prometheus(
    targets: Sequence[str],
    rule_files: Sequence[Path] = (),
    interval: str = "1s",
    ready_timeout: float = 30.0,
) -> Prometheus:
    """Start a private Prometheus scraping ``targets`` ("host:port") every ``interval`` and
    evaluating ``rule_files`` as often; returns once it reports ready.

    Raises RuntimeError with its log if it exits or never becomes ready.
    """
    binary = ensure_installed()
    workdir = Path(tempfile.mkdtemp(prefix="kafka-autotrace-prometheus-"))
    config = {
        "global": {
            "scrape_interval": interval,
            "scrape_timeout": interval,
            "evaluation_interval": interval,
        },
        "scrape_configs": [{"job_name": "apps", "static_configs": [{"targets": list(targets)}]}],
        "rule_files": [str(path) for path in rule_files],
    }
    config_path = workdir / "prometheus.yml"
    config_path.write_text(json.dumps(config, indent=2))  # JSON is YAML too
    address = f"127.0.0.1:{free_port()}"
    with (workdir / Prometheus.LOG).open("wb") as log:
        process = subprocess.Popen(
            [
                str(binary),
                f"--config.file={config_path}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address={address}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = Prometheus(process, workdir, f"http://{address}")
    try:
        _wait_until_ready(server, ready_timeout)
    except BaseException:
        server.stop()
        raise
    return server


def _wait_until_ready(server: Prometheus, timeout: float) -> None:
    def ready() -> None:
        # Any answer but 200 raises HTTPError, an OSError.
        urllib.request.urlopen(f"{server.url}/-/ready", timeout=1).close()

    wait_until_serving(
        server.process, ready, timeout, f"Prometheus at {server.url}", server.log_tail
    )


if __name__ == "__main__":
    print(ensure_installed())
