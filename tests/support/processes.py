"""Processes the tests start: free ports for them, waiting until they serve, their logs'
tails, stopping them."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

_T = TypeVar("_T")


def free_port() -> int:
    """A local port nothing listens on right now."""
    # Small race: the port could be taken before the broker binds it. The broker would then exit,
    # and the readiness check reports that with the log, so the failure is at least explicit.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def read_log_tail(path: Path, lines: int = 100) -> str:
    """The last ``lines`` lines of a log file, or a note saying why there are none.

    Used in failure reports, so it must never raise itself.
    """
    try:
        with path.open(encoding="utf-8", errors="replace") as log:
            return "".join(deque(log, maxlen=lines))
    except OSError as exc:
        return f"<cannot read {path}: {exc}>"


def terminate(process: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM, then SIGKILL if ``process`` has not exited within ``timeout``."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class ServerProcess(contextlib.AbstractContextManager[Any]):
    """A server the tests started, whose configuration, data and log (``LOG``) live in
    ``workdir``; use it as a context manager so it is always stopped."""

    LOG: ClassVar[str]
    process: subprocess.Popen[bytes]
    workdir: Path

    @property
    def log_path(self) -> Path:
        return self.workdir / self.LOG

    def log_tail(self, lines: int = 50) -> str:
        return read_log_tail(self.log_path, lines)

    def stop(self, timeout: float = 10.0) -> None:
        """Terminate it and delete its files (data included); safe to call more than once."""
        terminate(self.process, timeout)
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def poll_until(
    fetch: Callable[[], _T],
    predicate: Callable[[_T], bool],
    timeout: float,
    failure: Callable[[_T], str],
) -> _T:
    """``fetch()`` every quarter second until ``predicate`` holds for its result, which is
    returned: servers that ingest in batches are waited for, not slept on. After ``timeout``
    raises TimeoutError with ``failure(last result)``."""
    deadline = time.monotonic() + timeout
    while True:
        got = fetch()
        if predicate(got):
            return got
        if time.monotonic() > deadline:
            raise TimeoutError(failure(got))
        time.sleep(0.25)


def wait_until_serving(
    process: subprocess.Popen[bytes],
    serving: Callable[[], object],
    timeout: float,
    name: str,
    log_tail: Callable[[], str],
) -> None:
    """Call ``serving()`` until it returns without an OSError or ValueError: a server we
    started is ready. Raises RuntimeError with ``log_tail()`` if ``process`` exits first or
    ``timeout`` passes; ``name`` says which server in that error."""
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            reason = f"exited with code {process.returncode}"
        elif time.monotonic() > deadline:
            reason = f"not ready after {timeout:g} s"
        else:
            try:
                serving()
            except (OSError, ValueError):
                time.sleep(0.1)
                continue
            return
        raise RuntimeError(f"{name} {reason}\n{log_tail()}")
