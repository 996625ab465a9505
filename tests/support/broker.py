"""A real Kafka-protocol broker for the tests, without Docker or a JVM.

Why a real broker: the instrumentation's value is that context survives the actual wire (record
headers through a broker, consumer-group assignment, rebalances), which mocks cannot show. The
``noida-db`` wheel ships a single native binary speaking the Kafka protocol that starts in well
under a second, so every test session gets its own private broker with a throwaway data dir.

Set ``KAFKA_AUTOTRACE_TEST_BOOTSTRAP=host:port`` to run against an existing cluster instead
(e.g. a real Apache Kafka in CI); then nothing is started or stopped.
"""

from __future__ import annotations

import contextlib
import importlib.resources
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import confluent_kafka
from confluent_kafka.admin import AdminClient, NewTopic

BOOTSTRAP_ENV = "KAFKA_AUTOTRACE_TEST_BOOTSTRAP"

_T = TypeVar("_T")


@dataclass
class Broker:
    """A broker the tests can reach at ``bootstrap_servers``.

    ``log_path`` is None for an external cluster (its logs are not ours to read); ``stop`` is
    then a no-op.
    """

    bootstrap_servers: str
    log_path: Path | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    data_dir: Path | None = None

    def log_tail(self, lines: int = 100) -> str:
        return read_log_tail(self.log_path, lines) if self.log_path else ""

    def stop(self, timeout: float = 10.0) -> None:
        """Terminate the broker and delete its data; safe to call more than once."""
        if self.process is not None:
            terminate(self.process, timeout)
            self.process = None
        if self.data_dir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            self.data_dir = None


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


def read_log_tail(path: Path, lines: int = 100) -> str:
    """The last ``lines`` lines of a log file, or a note saying why there are none.

    Used in failure reports, so it must never raise itself.
    """
    try:
        with path.open(encoding="utf-8", errors="replace") as log:
            return "".join(deque(log, maxlen=lines))
    except OSError as exc:
        return f"<cannot read {path}: {exc}>"


def start_broker(log_path: Path, ready_timeout: float = 20.0) -> Broker:
    """Start a private noida-db Kafka broker (or attach to ``$KAFKA_AUTOTRACE_TEST_BOOTSTRAP``).

    Returns only once a metadata request has succeeded, so the first test never races broker
    start-up. Raises RuntimeError with the broker log if it exits or never becomes ready.
    """
    external = os.environ.get(BOOTSTRAP_ENV)
    if external:
        broker = Broker(bootstrap_servers=external)
        _wait_until_ready(broker, ready_timeout)
        return broker
    return start_private_broker(log_path, ready_timeout)


def start_private_broker(log_path: Path, ready_timeout: float = 20.0) -> Broker:
    """Start a noida-db broker owned by the caller, even when an external cluster is set:
    for tests that must stop the broker under a client's feet."""
    binary = importlib.resources.files("noida_db") / "noida-db"
    port = free_port()
    data_dir = Path(tempfile.mkdtemp(prefix="kafka-autotrace-broker-"))
    log_path.parent.mkdir(parents=True, exist_ok=True)
    command = [
        str(binary),
        "start",
        "--only",
        "kafka",
        "--kafka-port",
        str(port),
        "--data-dir",
        str(data_dir),
    ]
    with log_path.open("wb") as log:
        log.write(f"$ {' '.join(command)}\n".encode())
        log.flush()
        # The binary warns about a GLIBC "weak version" on stderr at every start; it is harmless,
        # and keeping stderr in the log keeps real errors next to it in context.
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    broker = Broker(f"127.0.0.1:{port}", log_path, process, data_dir)
    try:
        _wait_until_ready(broker, ready_timeout)
    except BaseException:
        broker.stop()
        raise
    return broker


def unique_topic(prefix: str = "test") -> str:
    """A fresh, Kafka-legal name, so tests never see each other's records or offsets.

    Also suitable for consumer group ids. Characters Kafka forbids in topic names (e.g. the
    brackets of parametrised pytest ids) are replaced, so a test's own name makes a good prefix.
    """
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", prefix).strip("-.")[:80] or "test"
    return f"{safe}-{uuid.uuid4().hex[:12]}"


def create_topic(
    bootstrap_servers: str,
    name: str,
    partitions: int = 1,
    replication_factor: int = 1,
    timeout: float = 20.0,
) -> str:
    """Create ``name`` and wait until every partition has a leader; returns the name.

    Waiting for leaders, not just for the CreateTopics response, matters: a producer or consumer
    started right after creation otherwise sees UNKNOWN_TOPIC_OR_PART and retries, adding seconds
    and spurious error spans to the test.
    """
    admin = AdminClient({"bootstrap.servers": bootstrap_servers})
    futures = admin.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=replication_factor)],
        operation_timeout=timeout,
        request_timeout=timeout,
    )
    futures[name].result(timeout=timeout)
    deadline = time.monotonic() + timeout
    while True:
        topic = admin.list_topics(topic=name, timeout=timeout).topics.get(name)
        if (
            topic is not None
            and topic.error is None
            and len(topic.partitions) == partitions
            and all(p.leader >= 0 for p in topic.partitions.values())
        ):
            return name
        if time.monotonic() > deadline:
            raise TimeoutError(f"topic {name} has no leader for all {partitions} partitions")
        time.sleep(0.05)


def read_record(
    bootstrap_servers: str, topic: str, offset: int = confluent_kafka.OFFSET_BEGINNING
) -> confluent_kafka.Message:
    """The record at ``offset`` (the first by default) of partition 0 of ``topic``.

    Read through ``confluent_kafka.Consumer`` as it is at call time, so with a traced consumer
    while confluent-kafka is instrumented. Fails the test if none arrives within 10 s.
    """
    consumer = confluent_kafka.Consumer({"bootstrap.servers": bootstrap_servers, "group.id": topic})
    consumer.assign([confluent_kafka.TopicPartition(topic, 0, offset)])
    message = consumer.poll(10)
    consumer.close()
    assert message is not None and message.error() is None, message and message.error()
    return message


def free_port() -> int:
    """A local port nothing listens on right now."""
    # Small race: the port could be taken before the broker binds it. The broker would then exit,
    # and the readiness check reports that with the log, so the failure is at least explicit.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_until_ready(broker: Broker, timeout: float) -> None:
    """Poll until a full metadata round trip succeeds.

    An open TCP port is not enough: the broker may accept connections before it can answer
    metadata. A TCP probe runs first only because it is silent, whereas librdkafka logs every
    refused connection to stderr.
    """
    deadline = time.monotonic() + timeout
    host, _, port = broker.bootstrap_servers.split(",")[0].rpartition(":")
    last_error = "no attempt made"
    while time.monotonic() < deadline:
        if broker.process is not None and broker.process.poll() is not None:
            raise RuntimeError(
                _with_log(broker, f"broker exited with code {broker.process.returncode} early")
            )
        try:
            with socket.create_connection((host, int(port)), timeout=1.0):
                pass
            admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
            metadata = admin.list_topics(timeout=min(5.0, max(deadline - time.monotonic(), 0.5)))
            if metadata.brokers:
                return
            last_error = "metadata response listed no brokers"
        except Exception as exc:  # any failure just means "not ready yet"
            last_error = f"{type(exc).__name__}: {exc}"
        time.sleep(0.1)
    raise RuntimeError(
        _with_log(
            broker,
            f"Kafka at {broker.bootstrap_servers} not ready after {timeout:g} s: {last_error}",
        )
    )


def _with_log(broker: Broker, message: str) -> str:
    if broker.log_path is None:
        return message
    return f"{message}\n--- last lines of {broker.log_path} ---\n{broker.log_tail()}"


def terminate(process: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM, then SIGKILL if ``process`` has not exited within ``timeout``."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


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
