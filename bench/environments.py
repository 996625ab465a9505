"""The virtualenvs the benchmark's cases run in: upstream contrib's (it pins
``opentelemetry-instrumentation`` exactly) and one with the API but no SDK."""

from __future__ import annotations

import hashlib
import importlib.metadata
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
VENVS = ROOT / ".venvs"
RESULTS = BENCH / "results"
UPSTREAM_RELEASE = "0.66b1"
UPSTREAM_SDK = "1.45.1"  # the SDK release that opentelemetry-instrumentation 0.66b1 goes with
CASE_TIMEOUT_S = 300.0


def _version(distribution: str) -> str:
    return importlib.metadata.version(distribution)


def environments() -> dict[str, list[str]]:
    """Requirements of the extra virtualenvs, with the clients pinned to this one's releases."""
    clients = [
        f"kafka-python=={_version('kafka-python')}",
        f"confluent-kafka=={_version('confluent-kafka')}",
    ]
    return {
        "upstream": [
            f"opentelemetry-instrumentation-kafka-python=={UPSTREAM_RELEASE}",
            f"opentelemetry-instrumentation-confluent-kafka=={UPSTREAM_RELEASE}",
            f"opentelemetry-sdk=={UPSTREAM_SDK}",
            f"opentelemetry-exporter-otlp-proto-http=={UPSTREAM_SDK}",
            *clients,
        ],
        # Editable, so the benchmark always measures the working tree.
        "nosdk": ["-e", str(ROOT), *clients],
    }


def ensure_venv(name: str, requirements: list[str]) -> Path:
    """The python of ``.venvs/<name>``, (re)created when its requirements changed, or, as it
    installs this project, when the project's own requirements did."""
    venv = VENVS / name
    python = venv / "bin" / "python"
    stamp = venv / "bench-requirements.txt"
    project = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()[:16]
    wanted = (
        "\n".join(requirements)
        + (f"\n# pyproject.toml {project}" if "-e" in requirements else "")
        + "\n"
    )
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    print(f"== preparing {venv.relative_to(ROOT)} ({' '.join(requirements)})", flush=True)
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            *requirements,
        ],
        check=True,
    )
    stamp.write_text(wanted)
    return python


def check_nosdk(python: Path) -> None:
    """The no-SDK environment must really lack the SDK, or its figures would mean nothing."""
    probe = subprocess.run(
        [str(python), "-c", "import opentelemetry.sdk"], capture_output=True, check=False
    )
    if probe.returncode == 0:
        raise SystemExit(f"{python} can import opentelemetry.sdk; the no-SDK case needs it absent")
