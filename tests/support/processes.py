"""Processes the tests start: free ports for them, their logs' tails, stopping them."""

from __future__ import annotations

import socket
import subprocess
from collections import deque
from pathlib import Path


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
