"""Apache Kafka, the broker users run, for the tests: one combined node, or a cluster to break.

The release comes from Maven Central (``support.maven``), so a fresh machine needs Java 17 and
Maven, no Docker. Every node runs in KRaft mode as a combined broker and controller on
loopback ports with a small heap; a cluster's nodes are its controller quorum too (static
voters), so killing one of three leaves a quorum. Settings are chosen for tests: groups join
at once, a dead broker is fenced within seconds, internal topics are small.

``PYTHONPATH=tests python -m support.kafka`` fetches the release up front, as .ci/run does.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka.admin import AdminClient

from support.maven import classpath
from support.processes import free_port, read_log_tail, terminate

KAFKA_RELEASE = "4.4.0"
_LOG4J = "2.24.3"
ARTIFACTS = (
    f"org.apache.kafka:kafka_2.13:{KAFKA_RELEASE}",
    f"org.apache.logging.log4j:log4j-core:{_LOG4J}",
    f"org.apache.logging.log4j:log4j-slf4j-impl:{_LOG4J}",
)
# A few hundred MB per node and the serial collector: three nodes and the test clients share
# two cores. C1 only, because the tests' load is light and start-up time is what they wait on.
JVM_OPTIONS = (
    "-Xms64m",
    "-Xmx384m",
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-Djava.awt.headless=true",
)
_LOG_CONFIG = """\
rootLogger.level=WARN
rootLogger.appenderRef.stdout.ref=STDOUT
appender.stdout.type=Console
appender.stdout.name=STDOUT
appender.stdout.layout.type=PatternLayout
appender.stdout.layout.pattern=[%d] %p %m (%c)%n
logger.started.name=kafka.server.KafkaRaftServer
logger.started.level=INFO
"""


def kafka_classpath() -> str:
    return classpath(f"kafka-{KAFKA_RELEASE}", ARTIFACTS)


@dataclass
class KafkaNode:
    """One combined broker/controller process; it can be killed and started again on the
    same ports and data, as a crashed and restarted broker would be."""

    node_id: int
    port: int
    controller_port: int
    folder: Path
    log_path: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        if self.process is not None and self.process.poll() is None:
            return
        with self.log_path.open("ab") as output:
            self.process = subprocess.Popen(
                _java(self.folder, "kafka.Kafka", str(self.folder / "server.properties")),
                stdout=output,
                stderr=subprocess.STDOUT,
            )

    def kill(self) -> None:
        """SIGKILL: no controlled shutdown, no leadership handed over first."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM (a controlled shutdown), then SIGKILL after ``timeout``."""
        if self.process is not None:
            terminate(self.process, timeout)


@dataclass
class KafkaCluster:
    """Running Apache Kafka nodes: a ``support.broker.Broker``."""

    nodes: list[KafkaNode]
    folder: Path

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(node.address for node in self.nodes)

    @property
    def log_path(self) -> Path:
        return self.nodes[0].log_path

    def node(self, node_id: int) -> KafkaNode:
        return next(node for node in self.nodes if node.node_id == node_id)

    def leader(self, topic: str, partition: int = 0) -> KafkaNode:
        """The node that leads ``partition`` of ``topic`` now."""
        admin = AdminClient({"bootstrap.servers": self.bootstrap_servers})
        metadata = admin.list_topics(topic=topic, timeout=10).topics[topic]
        return self.node(metadata.partitions[partition].leader)

    def log_tail(self, lines: int = 100) -> str:
        return "\n".join(
            f"--- node {node.node_id} ---\n{read_log_tail(node.log_path, lines)}"
            for node in self.nodes
        )

    def wait_until_ready(self, timeout: float = 60.0) -> None:
        """Until every running node is listed in metadata served by each of them."""
        running = [node for node in self.nodes if node.process and node.process.poll() is None]
        deadline = time.monotonic() + timeout
        last_error = "no attempt made"
        while time.monotonic() < deadline:
            for node in running:
                if node.process is not None and node.process.poll() is not None:
                    raise RuntimeError(self._with_logs(f"node {node.node_id} exited"))
            try:
                # A silent TCP probe first: librdkafka logs every refused connection.
                for node in running:
                    socket.create_connection(("127.0.0.1", node.port), timeout=1.0).close()
                admin = AdminClient({"bootstrap.servers": self.bootstrap_servers})
                listed = admin.list_topics(timeout=5).brokers
                if {node.node_id for node in running} <= set(listed):
                    return
                last_error = f"metadata lists brokers {sorted(listed)}"
            except Exception as exc:  # not ready yet
                last_error = f"{type(exc).__name__}: {exc}"
            time.sleep(0.2)
        raise RuntimeError(self._with_logs(f"Kafka not ready in {timeout:g} s: {last_error}"))

    def stop(self) -> None:
        """Stop every node and delete the data; safe to call more than once."""
        for node in self.nodes:
            node.kill()
        shutil.rmtree(self.folder, ignore_errors=True)

    def _with_logs(self, message: str) -> str:
        return f"{message}\n{self.log_tail(40)}"


def start_kafka(log_folder: Path, size: int = 1) -> KafkaCluster:
    """Format and start ``size`` nodes and wait until all serve metadata.

    One node is a test session's broker; three make a cluster with replication factor 3 and
    ``min.insync.replicas`` 2, so one node can die without losing an ``acks=all`` write. The
    nodes' logs go to ``log_folder`` (``node-N.log``), which outlives the data.
    """
    folder = Path(tempfile.mkdtemp(prefix="kafka-autotrace-kafka-"))
    log_folder.mkdir(parents=True, exist_ok=True)
    nodes = [
        KafkaNode(
            node_id,
            free_port(),
            free_port(),
            folder / f"node-{node_id}",
            log_folder / f"node-{node_id}.log",
        )
        for node_id in range(1, size + 1)
    ]
    cluster = KafkaCluster(nodes, folder)
    try:
        _format(nodes)
        for node in nodes:
            node.start()
        cluster.wait_until_ready()
    except BaseException:
        cluster.stop()
        raise
    return cluster


def _format(nodes: Sequence[KafkaNode]) -> None:
    """Write each node's configuration and format its storage, all at once (a JVM each)."""
    voters = ",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in nodes)
    replicas = min(len(nodes), 3)
    cluster_id = _java_output("kafka.tools.StorageTool", "random-uuid")
    formats = []
    for node in nodes:
        node.folder.mkdir(parents=True)
        (node.folder / "log4j2.properties").write_text(_LOG_CONFIG)
        (node.folder / "server.properties").write_text(_server_properties(node, voters, replicas))
        formats.append(
            subprocess.Popen(
                _java(
                    node.folder,
                    "kafka.tools.StorageTool",
                    "format",
                    "--cluster-id",
                    cluster_id,
                    "--config",
                    str(node.folder / "server.properties"),
                ),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
        )
    for node, formatting in zip(nodes, formats):
        output, _ = formatting.communicate(timeout=120)
        if formatting.returncode != 0:
            raise RuntimeError(f"formatting node {node.node_id} failed:\n{output.decode()}")


def _server_properties(node: KafkaNode, voters: str, replicas: int) -> str:
    settings = {
        "process.roles": "broker,controller",
        "node.id": node.node_id,
        "controller.quorum.voters": voters,
        "listeners": f"PLAINTEXT://127.0.0.1:{node.port},CONTROLLER://127.0.0.1:"
        f"{node.controller_port}",
        "advertised.listeners": f"PLAINTEXT://{node.address}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": node.folder / "data",
        "num.partitions": 1,
        "default.replication.factor": replicas,
        "min.insync.replicas": min(replicas, 2),
        "offsets.topic.replication.factor": replicas,
        "offsets.topic.num.partitions": 5,
        "transaction.state.log.replication.factor": replicas,
        "transaction.state.log.min.isr": min(replicas, 2),
        "transaction.state.log.num.partitions": 5,
        "share.coordinator.state.topic.replication.factor": replicas,
        "share.coordinator.state.topic.min.isr": min(replicas, 2),
        # A group forms as soon as its first member joins, not three seconds later.
        "group.initial.rebalance.delay.ms": 0,
        # Short client sessions, so a killed consumer's partitions move within seconds.
        "group.min.session.timeout.ms": 1000,
        # A killed broker is fenced, and its partitions' leadership moved, within two seconds.
        "broker.session.timeout.ms": 2000,
        "broker.heartbeat.interval.ms": 500,
        # Retention deletes segments within a second of their records expiring.
        "log.retention.check.interval.ms": 1000,
        "log.initial.task.delay.ms": 0,
    }
    return "".join(f"{key}={value}\n" for key, value in settings.items())


def wait_for_group_coordinator(bootstrap: str, timeout: float = 120.0) -> None:
    """Wait until a consumer group's committed offsets can be read: a new node creates its
    offsets topic on the first request, and until then librdkafka's assigned consumers fail
    their first offset fetch (NOT_COORDINATOR) and may never start fetching."""
    import confluent_kafka

    consumer = confluent_kafka.Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "coordinator-probe"}
    )
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                consumer.committed([confluent_kafka.TopicPartition("probe", 0)], timeout=5)
                return
            except confluent_kafka.KafkaException:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
    finally:
        consumer.close()


def _java(folder: Path | None, main_class: str, *arguments: str) -> list[str]:
    log_config = [f"-Dlog4j2.configurationFile={folder / 'log4j2.properties'}"] if folder else []
    return ["java", *JVM_OPTIONS, *log_config, "-cp", kafka_classpath(), main_class, *arguments]


def _java_output(main_class: str, *arguments: str) -> str:
    done = subprocess.run(
        _java(None, main_class, *arguments), capture_output=True, text=True, check=True
    )
    return done.stdout.strip().splitlines()[-1]


if __name__ == "__main__":
    print(kafka_classpath().count(":") + 1, "jars of Apache Kafka", KAFKA_RELEASE)
