"""Run application scripts exactly as users will: under the real ``opentelemetry-instrument``.

Why a subprocess: zero-code instrumentation is activated by ``opentelemetry-instrument`` through
``sitecustomize``, entry points and environment variables before the application imports
anything. Only a fresh interpreter exercises that path; instrumenting inside the pytest process
would skip exactly the part users depend on. Exports go over real OTLP/HTTP to an
:class:`~support.receiving.WaitingReceiver`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from .broker import unique_topic

INSTRUMENT = Path(sys.executable).parent / "opentelemetry-instrument"


def app_env(service: str, endpoint: str, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for an instrumented app: ours, minus any ``OTEL_*`` it inherited.

    Inherited OTel settings are dropped so a developer's shell (say, a signal-specific
    ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) cannot silently redirect the test's data. The short
    batch delay and metric interval keep tests fast; unbuffered stdio keeps output that was
    printed before a SIGTERM.
    """
    merged = {key: value for key, value in os.environ.items() if not key.startswith("OTEL_")}
    merged.update(
        {
            "OTEL_SERVICE_NAME": service,
            "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_METRICS_EXPORTER": "otlp",
            "OTEL_LOGS_EXPORTER": "none",
            "OTEL_BSP_SCHEDULE_DELAY": "200",
            "OTEL_METRIC_EXPORT_INTERVAL": "500",
            "PYTHONUNBUFFERED": "1",
        }
    )
    merged.update(env or {})
    return merged


def _command(script: Path, *args: str) -> list[str]:
    return [str(INSTRUMENT), sys.executable, str(script), *args]


def run_app(
    script: Path,
    *args: str,
    service: str,
    endpoint: str,
    env: Mapping[str, str] | None = None,
    timeout: float = 60.0,
) -> subprocess.CompletedProcess[str]:
    """Run ``script`` to completion under ``opentelemetry-instrument``.

    Raises AssertionError carrying stdout and stderr if it exits non-zero or overruns
    ``timeout``, because a bare exit code says nothing about why an app failed.
    """
    try:
        result = subprocess.run(
            _command(script, *args),
            env=app_env(service, endpoint, env),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(
            _describe(script, f"did not finish within {timeout:g} s", exc.stdout, exc.stderr)
        ) from None
    if result.returncode != 0:
        raise AssertionError(
            _describe(script, f"exited with code {result.returncode}", result.stdout, result.stderr)
        )
    return result


def run_producer_app(
    script: Path,
    bootstrap: str,
    topic: str,
    count: int,
    *args: str,
    endpoint: str,
    env: Mapping[str, str] | None = None,
) -> str:
    """Run a producer app (``SCRIPT BOOTSTRAP TOPIC COUNT ARGS...``, printing ``sent N``) as
    service "orders-api" and return its stdout; AssertionError unless it sent all ``count``."""
    args = (bootstrap, topic, str(count), *args)
    stdout = run_app(script, *args, service="orders-api", endpoint=endpoint, env=env).stdout
    assert f"sent {count}" in stdout, stdout
    return stdout


def run_consumer_app(
    script: Path,
    bootstrap: str,
    topic: str,
    count: int,
    mode: str,
    *,
    endpoint: str,
    env: Mapping[str, str] | None = None,
) -> str:
    """Run a consumer app (``SCRIPT BOOTSTRAP TOPIC COUNT MODE GROUP``, printing
    ``consumed N``) as service "orders-consumer", in a group of its own so it reads ``topic``
    from the start; return its stdout, AssertionError unless it consumed all ``count``."""
    args = (bootstrap, topic, str(count), mode, unique_topic("group"))
    stdout = run_app(script, *args, service="orders-consumer", endpoint=endpoint, env=env).stdout
    assert f"consumed {count}" in stdout, stdout
    return stdout


@dataclass
class RunningApp:
    """A long-running app (typically a consumer) started by :func:`start_app`.

    Output goes to files rather than pipes: a pipe nobody reads fills up at 64 KiB and then
    blocks a chatty app mid-test. The files can also be read while the app runs, which is how
    :meth:`wait_for_output` detects readiness. Use it as a context manager so the process is
    stopped even when the test fails.
    """

    script: Path
    process: subprocess.Popen[bytes]
    output_dir: Path
    result: subprocess.CompletedProcess[str] | None = field(default=None, repr=False)

    def stdout(self) -> str:
        return self.result.stdout if self.result else _read(self.output_dir / "stdout.txt")

    def stderr(self) -> str:
        return self.result.stderr if self.result else _read(self.output_dir / "stderr.txt")

    def wait_for_output(self, text: str, timeout: float = 30.0) -> str:
        """Wait until ``text`` appears on stdout, e.g. a "ready" line printed after the group
        join; returns stdout. Raises AssertionError with the output if the app exits first or
        the timeout passes."""
        deadline = time.monotonic() + timeout
        while True:
            stdout = self.stdout()
            if text in stdout:
                return stdout
            exit_code = self.process.poll()
            if exit_code is not None:
                reason = f"exited with code {exit_code} before printing {text!r}"
            elif time.monotonic() > deadline:
                reason = f"did not print {text!r} within {timeout:g} s"
            else:
                time.sleep(0.05)
                continue
            raise AssertionError(_describe(self.script, reason, self.stdout(), self.stderr()))

    def __enter__(self) -> RunningApp:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.result is None:
            try:
                stop_app(self)
            except AssertionError:
                # Never mask the test's own failure with a complaint about how the app ended.
                if exc is None:
                    raise


def start_app(
    script: Path,
    *args: str,
    service: str,
    endpoint: str,
    env: Mapping[str, str] | None = None,
) -> RunningApp:
    """Start ``script`` under ``opentelemetry-instrument`` and return without waiting."""
    output_dir = Path(tempfile.mkdtemp(prefix="kafka-autotrace-app-"))
    stdout_path, stderr_path = output_dir / "stdout.txt", output_dir / "stderr.txt"
    # Append mode: the child's writes always land at the end even while we read the same files.
    with stdout_path.open("ab") as out, stderr_path.open("ab") as err:
        process = subprocess.Popen(
            _command(script, *args),
            env=app_env(service, endpoint, env),
            stdout=out,
            stderr=err,
        )
    return RunningApp(script, process, output_dir)


def run_app_timing_exit(
    script: Path,
    *args: str,
    done_text: str,
    service: str,
    endpoint: str,
    env: Mapping[str, str] | None = None,
    timeout: float = 120.0,
) -> tuple[str, float]:
    """Run ``script`` to completion; return its stdout and the seconds it took to exit after
    printing ``done_text``: what shutting down the SDK (exporters included) cost it.

    Raises AssertionError with the output if it fails, or does not exit within ``timeout``
    of printing ``done_text``.
    """
    with start_app(script, *args, service=service, endpoint=endpoint, env=env) as app:
        app.wait_for_output(done_text, timeout=timeout)
        done = time.monotonic()
        result, exited = _finish(app, timeout)
    return result.stdout, exited - done


def finish_app(app: RunningApp, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    """Wait for ``app`` to exit by itself and collect its output.

    An app that exits by itself runs ``atexit``, so its SDK has flushed every span and metric
    it recorded; use this, not :func:`stop_app`, when the test reads what it exported last.
    Raises AssertionError with the output if it is still running after ``timeout`` (it is
    then stopped) or exited with a non-zero code.
    """
    return _finish(app, timeout)[0]


def _finish(app: RunningApp, timeout: float) -> tuple[subprocess.CompletedProcess[str], float]:
    """:func:`finish_app`, also returning when (``time.monotonic()``) the app had exited."""
    with contextlib.suppress(subprocess.TimeoutExpired):  # still running: reported below
        app.process.wait(timeout)
    exited = time.monotonic()
    hung = app.process.poll() is None
    result = stop_app(app)  # raises if the app failed
    if hung:
        reason = f"did not exit within {timeout:g} s of its work"
        raise AssertionError(_describe(app.script, reason, result.stdout, result.stderr))
    return result, exited


def stop_app(app: RunningApp, timeout: float = 15.0) -> subprocess.CompletedProcess[str]:
    """Send SIGTERM (SIGKILL after ``timeout``) and collect the app's output.

    SIGTERM ends a Python app without running ``atexit``, so spans still queued in its batch
    processor are lost: wait for the spans you need (``wait_for_spans``) before stopping.

    A SIGTERM exit is the expected outcome and is not an error. An app that had already exited
    with a non-zero code before being stopped has crashed, though, and raises AssertionError
    with its output. Calling it again returns the same result.
    """
    if app.result is not None:
        return app.result
    crashed = app.process.poll() not in (None, 0)
    if app.process.poll() is None:
        app.process.send_signal(signal.SIGTERM)
        try:
            app.process.wait(timeout)
        except subprocess.TimeoutExpired:
            app.process.kill()
            app.process.wait()
    result = _collect(app)
    if crashed:
        reason = f"had already exited with code {result.returncode}"
        raise AssertionError(_describe(app.script, reason, result.stdout, result.stderr))
    return result


def kill_app(app: RunningApp) -> subprocess.CompletedProcess[str]:
    """SIGKILL the app, as a crash or the OOM killer would: nothing of it runs afterwards (no
    export at exit). Collects its output as ``stop_app`` does; a later ``stop_app`` returns it."""
    app.process.kill()
    app.process.wait()
    return _collect(app)


def _collect(app: RunningApp) -> subprocess.CompletedProcess[str]:
    """The exited app's result, kept on it; its output files are deleted."""
    app.result = subprocess.CompletedProcess(
        app.process.args,
        app.process.returncode,
        _read(app.output_dir / "stdout.txt"),
        _read(app.output_dir / "stderr.txt"),
    )
    shutil.rmtree(app.output_dir, ignore_errors=True)
    return app.result


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace")


def _describe(
    script: Path, what: str, stdout: str | bytes | None, stderr: str | bytes | None
) -> str:
    def text(output: str | bytes | None) -> str:
        if isinstance(output, bytes):
            return output.decode("utf-8", errors="replace")
        return output or ""

    return f"{script.name} {what}\n--- stdout ---\n{text(stdout)}\n--- stderr ---\n{text(stderr)}"
