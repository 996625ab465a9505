"""Java Kafka services traced by the OpenTelemetry Java agent, beside our Python ones.

Why: the other side of a topic is often a JVM service under the Java agent, the reference
implementation of Kafka tracing; only the real agent on the real Java client shows that its
traces and ours join into one. The agent, the Java client and the OpenTelemetry API (for
baggage) come from Maven Central through :mod:`support.maven`; ``e2e/java/KafkaHops.java`` is
compiled once per source into the same cache. One JVM runs every Java hop a test module needs,
taking commands on stdin (see that file), because starting one with the agent costs seconds.

``PYTHONPATH=tests python -m support.java_agent`` fetches and compiles everything up front, as
.ci/run does.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import subprocess
import tempfile
from pathlib import Path

from support.apps import RunningApp, app_env
from support.maven import cache_dir, classpath, jars

AGENT_VERSION = "2.33.1"
AGENT = f"io.opentelemetry.javaagent:opentelemetry-javaagent:{AGENT_VERSION}"
KAFKA_CLIENTS = "org.apache.kafka:kafka-clients:4.4.0"
# The newest API release the agent bridges (it carries bridges up to v1_65).
OPENTELEMETRY_API = "io.opentelemetry:opentelemetry-api:1.65.0"
SOURCE = Path(__file__).resolve().parents[2] / "e2e" / "java" / "KafkaHops.java"
MAIN_CLASS = SOURCE.stem


def agent_jar() -> Path:
    (jar,) = jars(f"otel-javaagent-{AGENT_VERSION}", [AGENT])
    return jar


def libraries() -> str:
    return classpath("kafka-hops-libraries", [KAFKA_CLIENTS, OPENTELEMETRY_API])


def compiled() -> Path:
    """The folder holding ``KafkaHops.class``, compiled once per version of the source."""
    digest = hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:12]
    folder = cache_dir() / "java" / f"kafka-hops-{digest}"
    folder.parent.mkdir(parents=True, exist_ok=True)
    with (folder.parent / "kafka-hops.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (folder / f"{MAIN_CLASS}.class").exists():
            done = subprocess.run(
                ["javac", "-cp", libraries(), "-d", str(folder), str(SOURCE)],
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode != 0:
                raise RuntimeError(f"javac failed on {SOURCE}:\n{done.stdout}{done.stderr}")
    return folder


def start_java_hops(service: str, endpoint: str) -> RunningApp:
    """The JVM of Java hops as service ``service``, its agent exporting spans and metrics over
    OTLP/HTTP to ``endpoint`` with the same settings as our apps; send it commands with
    :func:`command`. Returns once it reads commands."""
    env = app_env(service, endpoint)
    env["OTEL_JAVAAGENT_LOGGING"] = "application"  # the agent's own chatter only on failure
    output_dir = Path(tempfile.mkdtemp(prefix="kafka-autotrace-java-"))
    with (
        (output_dir / "stdout.txt").open("ab") as out,
        (output_dir / "stderr.txt").open("ab") as err,
    ):
        process = subprocess.Popen(
            [
                "java",
                "-Xmx256m",
                f"-javaagent:{agent_jar()}",
                "-cp",
                os.pathsep.join([str(compiled()), libraries()]),
                MAIN_CLASS,
            ],
            env=env,
            stdin=subprocess.PIPE,
            stdout=out,
            stderr=err,
        )
    hops = RunningApp(SOURCE, process, output_dir)
    hops.wait_for_output("started", timeout=60)
    return hops


def command(hops: RunningApp, *words: str) -> None:
    """Start one job in the JVM (see KafkaHops.java for the commands)."""
    assert hops.process.stdin is not None
    hops.process.stdin.write((" ".join(words) + "\n").encode())
    hops.process.stdin.flush()


if __name__ == "__main__":
    print(agent_jar(), compiled(), sep="\n")
