"""The README's pictures of the demo in Jaeger: ``docs/jaeger-trace.png``, the first order's
trace view (the waterfall across all four services), and ``docs/jaeger-dependencies.png``, the
service graph.

It runs ``demo/run.py --jaeger``, takes each page it links to with headless Chromium, then
stops the demo with Ctrl-C (SIGINT), as a user would. Chromium is for this script only, not a
test dependency: ``apt-get install -y chromium``.

Usage: .venv/bin/python demo/screenshot_jaeger.py [--chromium PATH]
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import itertools
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

DEMO = Path(__file__).resolve().parent / "run.py"
DOCS = Path(__file__).resolve().parent.parent / "docs"
PAGES = {
    "jaeger-trace.png": r"the first order's trace: (\S+)",
    "jaeger-dependencies.png": r"the service graph: +(\S+)",
}
# Quiet and self-contained: no GPU, no first-run or sync traffic, a profile of its own.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--remote-debugging-pipe",
]
WIDTH, HEIGHT = 1600, 900
SETTLE = 10.0
"""Seconds a page gets to fetch and lay out before the picture: the service graph is laid out
in a web worker, which Chromium's virtual time (``--virtual-time-budget``) does not wait for,
so the pictures are taken over the DevTools protocol after a real wait."""


def links(demo: subprocess.Popen[str]) -> str:
    """The demo's output up to its "Press Ctrl-C" line (which follows the links)."""
    assert demo.stdout is not None
    printed = ""
    for line in demo.stdout:
        print(line, end="", flush=True)
        printed += line
        if line.startswith("Press Ctrl-C"):
            return printed
    raise SystemExit(f"the demo ended without showing Jaeger:\n{printed}")


class DevTools:
    """Chromium driven over ``--remote-debugging-pipe``: JSON messages ending in a NUL byte,
    commands on its fd 3, answers and events on its fd 4."""

    def __init__(self, chromium: str, profile: str) -> None:
        commands, self._to_chromium = os.pipe()
        self._from_chromium, answers = os.pipe()
        self.process = subprocess.Popen(
            [
                "sh",
                "-c",
                f'exec "$0" "$@" 3<&{commands} 4>&{answers}',
                chromium,
                *CHROMIUM_FLAGS,
                f"--user-data-dir={profile}",
            ],
            pass_fds=(commands, answers),
            stderr=subprocess.DEVNULL,
        )
        os.close(commands)
        os.close(answers)
        self._ids = itertools.count(1)
        self._pending = b""

    def call(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        """Send one command and return its result, skipping the events that come between."""
        number = next(self._ids)
        message: dict[str, Any] = {"id": number, "method": method, "params": params}
        if session is not None:
            message["sessionId"] = session
        os.write(self._to_chromium, json.dumps(message).encode() + b"\0")
        while True:
            while b"\0" not in self._pending:
                chunk = os.read(self._from_chromium, 1 << 20)
                if not chunk:
                    raise RuntimeError(f"Chromium closed the pipe during {method}")
                self._pending += chunk
            raw, self._pending = self._pending.split(b"\0", 1)
            answer = json.loads(raw)
            if answer.get("id") == number:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                result: dict[str, Any] = answer["result"]
                return result

    def screenshot(self, url: str, png: Path) -> None:
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.call(
            "Emulation.setDeviceMetricsOverride",
            session,
            width=WIDTH,
            height=HEIGHT,
            deviceScaleFactor=1,
            mobile=False,
        )
        self.call("Page.navigate", session, url=url)
        time.sleep(SETTLE)
        picture = self.call("Page.captureScreenshot", session, format="png")["data"]
        png.write_bytes(base64.b64decode(picture))
        self.call("Target.closeTarget", targetId=target)
        print(f"wrote {png} ({url})")

    def close(self) -> None:
        with contextlib.suppress(RuntimeError, OSError):
            self.call("Browser.close")
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        os.close(self._to_chromium)
        os.close(self._from_chromium)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    demo = subprocess.Popen(
        [sys.executable, str(DEMO), "--jaeger"], stdout=subprocess.PIPE, text=True
    )
    try:
        printed = links(demo)
        with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
            chromium = DevTools(args.chromium, profile)
            try:
                for name, pattern in PAGES.items():
                    found = re.search(pattern, printed)
                    assert found is not None, f"no link matching {pattern!r}"
                    chromium.screenshot(found.group(1), DOCS / name)
            finally:
                chromium.close()
    finally:
        demo.send_signal(signal.SIGINT)
        demo.communicate(timeout=60)
    return 0


if __name__ == "__main__":
    sys.exit(main())
