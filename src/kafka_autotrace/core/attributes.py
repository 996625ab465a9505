"""The attributes of our spans and measurements, built once per client and topic, and the
measurements of a consumed record, which need them.

A span starts with the attributes its :class:`Destination` holds, shared by every message of
a client and topic and handed to the SDK as they are: what the conventions require and what a
sampler may decide on. What differs between messages (partition, offset, key, …) is built only
for a span that records (:meth:`AttributeBuilder.message`), and set in one call; a span the
sampler dropped costs none of it. Names come from the semantic-convention constants.
"""

from __future__ import annotations

import time
from typing import Final

from opentelemetry.semconv._incubating.attributes.messaging_attributes import (
    MESSAGING_CLIENT_ID,
    MESSAGING_CONSUMER_GROUP_NAME,
    MESSAGING_DESTINATION_NAME,
    MESSAGING_DESTINATION_PARTITION_ID,
    MESSAGING_KAFKA_MESSAGE_KEY,
    MESSAGING_KAFKA_MESSAGE_TOMBSTONE,
    MESSAGING_KAFKA_OFFSET,
    MESSAGING_MESSAGE_BODY_SIZE,
    MESSAGING_OPERATION_NAME,
    MESSAGING_OPERATION_TYPE,
    MESSAGING_SYSTEM,
    MessagingOperationTypeValues,
    MessagingSystemValues,
)
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.semconv.attributes.server_attributes import SERVER_ADDRESS, SERVER_PORT
from opentelemetry.util.types import AttributeValue

from kafka_autotrace.core.client import ClientInfo
from kafka_autotrace.core.memo import remember
from kafka_autotrace.core.metrics import MessagingInstruments
from kafka_autotrace.core.pipeline import Origin
from kafka_autotrace.core.propagation import decode_header_value, header_items
from kafka_autotrace.core.settings import Settings

try:
    from opentelemetry.semconv._incubating.attributes.messaging_attributes import (
        MESSAGING_KAFKA_CLUSTER_ID,
    )
except ImportError:  # semantic conventions before 1.44 (the package before 0.66b0)
    MESSAGING_KAFKA_CLUSTER_ID: Final = "messaging.kafka.cluster.id"  # type: ignore[misc]

Attributes = dict[str, AttributeValue]

PIPELINE_ORIGIN = "kafka_autotrace.pipeline.origin"
"""The topic of the first send of a message's pipeline: on ``kafka_autotrace.pipeline.age``
and on process spans."""
PIPELINE_AGE_ATTRIBUTE = "kafka_autotrace.pipeline.age"
"""On process spans: seconds since the first send of the message's pipeline, as measured."""
HEADER_ATTRIBUTE_PREFIX = "messaging.header."
"""Captured headers (``KAFKA_AUTOTRACE_CAPTURE_HEADERS``) become ``messaging.header.<key>``, the
key as it is, as the OpenTelemetry Java agent names them under the current conventions."""

KAFKA = MessagingSystemValues.KAFKA.value
SEND = MessagingOperationTypeValues.SEND.value
PROCESS = MessagingOperationTypeValues.PROCESS.value
RECEIVE = MessagingOperationTypeValues.RECEIVE.value
POLL = "poll"
"""The operation name of a Kafka receive (the conventions' Kafka example): spans and metrics."""


def client_attributes(client: ClientInfo, settings: Settings) -> Attributes:
    """What every span of ``client`` carries; its id and the server's port only when the
    settings ask for them (:attr:`Settings.capture_client`)."""
    attributes: Attributes = {MESSAGING_SYSTEM: KAFKA}
    if client.client_id and settings.capture_client:
        attributes[MESSAGING_CLIENT_ID] = client.client_id
    if client.consumer_group:
        attributes[MESSAGING_CONSUMER_GROUP_NAME] = client.consumer_group
    if client.server_address:
        attributes[SERVER_ADDRESS] = client.server_address
    if client.server_port is not None and settings.capture_client:
        attributes[SERVER_PORT] = client.server_port
    if client.cluster_id:
        attributes[MESSAGING_KAFKA_CLUSTER_ID] = client.cluster_id
    return attributes


def metric_attributes(
    client: ClientInfo,
    operation: str,
    topic: str | None,
    partition: int | None = None,
    operation_type: str | None = None,
) -> Attributes:
    """Low-cardinality attributes for metrics: no client id or key, and the partition only
    when asked for (:attr:`Settings.metric_partitions`); ``operation_type`` for
    ``messaging.client.operation.duration``, the one metric the conventions give it."""
    attributes: Attributes = {MESSAGING_SYSTEM: KAFKA, MESSAGING_OPERATION_NAME: operation}
    if operation_type is not None:
        attributes[MESSAGING_OPERATION_TYPE] = operation_type
    if topic is not None:
        attributes[MESSAGING_DESTINATION_NAME] = topic
    if partition is not None:
        attributes[MESSAGING_DESTINATION_PARTITION_ID] = str(partition)
    if client.consumer_group:
        attributes[MESSAGING_CONSUMER_GROUP_NAME] = client.consumer_group
    if client.server_address:
        attributes[SERVER_ADDRESS] = client.server_address
    if client.server_port is not None:
        attributes[SERVER_PORT] = client.server_port
    return attributes


_PIPELINE_METRIC_KEYS = frozenset(
    (MESSAGING_SYSTEM, MESSAGING_DESTINATION_NAME, MESSAGING_CONSUMER_GROUP_NAME)
)


def _operation_attributes(shared: Attributes, operation: str, topic: str) -> Attributes:
    return {
        **shared,
        MESSAGING_OPERATION_NAME: operation,
        MESSAGING_OPERATION_TYPE: operation,
        MESSAGING_DESTINATION_NAME: topic,
    }


class Destination:
    """Everything the spans and measurements of one client and topic share, and the
    measurements of its consumed records. With :attr:`Settings.metric_partitions` each
    partition has one of its own (:meth:`in_partition`), whose metric attributes name it."""

    __slots__ = (
        "_consumed_messages",
        "_instruments",
        "_operation_duration",
        "_partitioned",
        "_partitions",
        "_pipeline_age",
        "_pipeline_metrics",
        "_process_duration",
        "_process_partitions",
        "_record_age",
        "_send_partitions",
        "_sent_messages",
        "_shared",
        "client",
        "process_attributes",
        "process_metrics",
        "process_name",
        "receive_duration_metrics",
        "receive_metrics",
        "send_attributes",
        "send_duration_metrics",
        "send_metrics",
        "send_name",
        "topic",
    )

    def __init__(
        self,
        client: ClientInfo,
        topic: str,
        shared: Attributes,
        instruments: MessagingInstruments,
        partitioned: bool = False,
        partition: int | None = None,
    ) -> None:
        self.client = client
        self.topic = topic
        self.send_name = f"send {topic}"
        self.send_attributes = _operation_attributes(shared, SEND, topic)
        self.send_metrics = metric_attributes(client, SEND, topic, partition)
        self.send_duration_metrics = metric_attributes(client, SEND, topic, partition, SEND)
        self.process_name = f"process {topic}"
        self.process_attributes = _operation_attributes(shared, PROCESS, topic)
        self.process_metrics = metric_attributes(client, PROCESS, topic, partition)
        self.receive_metrics = metric_attributes(client, POLL, topic, partition)
        self.receive_duration_metrics = metric_attributes(client, POLL, topic, partition, RECEIVE)
        self._shared = shared
        self._instruments = instruments
        self._partitioned = partitioned
        self._partitions: dict[int, Destination] = {}
        self._operation_duration = instruments.operation_duration
        self._sent_messages = instruments.sent_messages
        self._consumed_messages = instruments.consumed_messages
        self._record_age = instruments.record_age
        self._pipeline_age = instruments.pipeline_age
        self._process_duration = instruments.process_duration
        self._pipeline_metrics: dict[str, Attributes] = {}
        self._send_partitions: dict[object, Attributes] = {}
        self._process_partitions: dict[object, Attributes] = {}

    def send_start(self, partition: object) -> Attributes:
        """A send span's start attributes, with the partition when the application chose it."""
        return _at_partition(self._send_partitions, self.send_attributes, partition)

    def process_start(self, partition: object) -> Attributes:
        """A process span's start attributes, with its record's partition."""
        attributes = self._process_partitions.get(partition)  # inlined: once per message
        if attributes is None:
            attributes = _at_partition(self._process_partitions, self.process_attributes, partition)
        return attributes

    def in_partition(self, partition: int | None) -> Destination:
        """The destination whose measurements name ``partition``, when the settings ask for
        partitions on the metrics; else this one."""
        if not self._partitioned or partition is None or partition < 0:
            return self
        found = self._partitions.get(partition)
        if found is None:
            made = Destination(
                self.client, self.topic, self._shared, self._instruments, False, partition
            )
            found = remember(self._partitions, partition, made)
        return found

    def sent(self, partition: int | None, started: float, error_type: str | None) -> None:
        """Count a send the broker answered (in ``partition`` when known) and record how long
        that took since ``started`` (a perf counter)."""
        elapsed = time.perf_counter() - started
        target = self.in_partition(partition) if self._partitioned else self
        counted, timed = target.send_metrics, target.send_duration_metrics
        if error_type is not None:
            counted = {**counted, ERROR_TYPE: error_type}
            timed = {**timed, ERROR_TYPE: error_type}
        self._operation_duration.record(elapsed, timed)
        self._sent_messages.add(1, counted)

    def received(self, count: int, elapsed: float, error_type: str | None = None) -> None:
        """Count the ``count`` records of this destination a receive call returned, and
        record how long the call took (with the ``error_type`` of an error it returned beside
        them)."""
        self._consumed_messages.add(count, self.receive_metrics)
        timed = self.receive_duration_metrics
        if error_type is not None:
            timed = {**timed, ERROR_TYPE: error_type}
        self._operation_duration.record(elapsed, timed)

    def _pipeline_attributes(self, origin: str) -> Attributes:
        """The attributes of a pipeline age measured here for a pipeline begun on ``origin``,
        made on first use (the lookup is inlined where they are used, per message)."""
        attributes = {
            key: value
            for key, value in self.process_metrics.items()
            if key in _PIPELINE_METRIC_KEYS
        }
        attributes[PIPELINE_ORIGIN] = origin
        return remember(self._pipeline_metrics, origin, attributes)

    def consumed(
        self, timestamp_ms: int | None, carried: Origin | None, counted: bool
    ) -> tuple[Origin, float]:
        """Measure a record of this destination whose processing starts now: its age (from
        its timestamp in epoch ms, None when it has none) and its pipeline's, begun at
        ``carried`` (the origin the record carried on) or else at the record itself; count it
        unless ``counted`` already. Returns the pipeline's origin and age (s)."""
        now_ms = time.time_ns() // 1_000_000
        if timestamp_ms is not None and timestamp_ms > 0:
            self._record_age.record(max(0, now_ms - timestamp_ms) / 1000.0, self.process_metrics)
        else:
            timestamp_ms = now_ms
        origin = carried or Origin(timestamp_ms, self.topic)
        pipeline_age = max(0, now_ms - origin.ms) / 1000.0
        if not counted:
            self._consumed_messages.add(1, self.receive_metrics)
        pipeline_attributes = self._pipeline_metrics.get(origin.topic)
        if pipeline_attributes is None:
            pipeline_attributes = self._pipeline_attributes(origin.topic)
        self._pipeline_age.record(pipeline_age, pipeline_attributes)
        return origin, pipeline_age

    def processed(self, elapsed: float) -> None:
        """Record how long a record of this destination was being processed."""
        self._process_duration.record(elapsed, self.process_metrics)


def _at_partition(
    memo: dict[object, Attributes], start: Attributes, partition: object
) -> Attributes:
    """``start`` with ``messaging.destination.partition.id``, which a sampler may decide on,
    when the partition is known: made once per partition (in ``memo``), so that a message
    costs a lookup."""
    if not isinstance(partition, int) or partition < 0:
        return start
    attributes = memo.get(partition)
    if attributes is None:
        attributes = remember(
            memo, partition, {**start, MESSAGING_DESTINATION_PARTITION_ID: str(partition)}
        )
    return attributes


class AttributeBuilder:
    """Builds and caches the attributes of one instrumentor's clients and topics."""

    __slots__ = ("_clients", "_destinations", "_instruments", "_settings")

    def __init__(self, settings: Settings, instruments: MessagingInstruments) -> None:
        self._settings = settings
        self._instruments = instruments
        self._clients: dict[ClientInfo, Attributes] = {}
        self._destinations: dict[tuple[int, str], Destination] = {}

    def destination(self, client: ClientInfo, topic: str) -> Destination:
        """The cached :class:`Destination` of ``client`` and ``topic``.

        Keyed by the client's identity: adapters keep one ClientInfo per client, and hashing
        the dataclass itself would cost more than the lookup saves. The entry holds the
        ClientInfo, so the identity cannot be reused by another object while cached.
        """
        key = (id(client), topic)
        destination = self._destinations.get(key)
        if destination is None or destination.client is not client:
            destination = remember(
                self._destinations,
                key,
                Destination(
                    client,
                    topic,
                    self.of_client(client),
                    self._instruments,
                    self._settings.metric_partitions,
                ),
            )
        return destination

    def of_client(self, client: ClientInfo) -> Attributes:
        attributes = self._clients.get(client)
        if attributes is None:
            attributes = remember(self._clients, client, client_attributes(client, self._settings))
        return attributes

    def message(self, key: object, value: object, headers: object) -> Attributes:
        """What the settings capture of one message, for a span that records."""
        attributes: Attributes = {}
        settings = self._settings
        if settings.capture_key and key is not None:
            text = key_attribute(key)
            if text is not None:
                attributes[MESSAGING_KAFKA_MESSAGE_KEY] = text
        if value is None:
            attributes[MESSAGING_KAFKA_MESSAGE_TOMBSTONE] = True
        elif settings.capture_body_size:
            size = _body_size(value)
            if size is not None:
                attributes[MESSAGING_MESSAGE_BODY_SIZE] = size
        if settings.capture_headers and headers is not None:
            self._add_headers(attributes, headers)
        return attributes

    def link(self, partition: object, offset: object, key: object, topic: str | None) -> Attributes:
        """What a batch span's link to one record's producer carries of that record."""
        attributes: Attributes = {}
        if topic is not None:
            attributes[MESSAGING_DESTINATION_NAME] = topic
        if isinstance(partition, int):
            attributes[MESSAGING_DESTINATION_PARTITION_ID] = str(partition)
        if isinstance(offset, int):
            attributes[MESSAGING_KAFKA_OFFSET] = offset
        if self._settings.capture_key and key is not None:
            text = key_attribute(key)
            if text is not None:
                attributes[MESSAGING_KAFKA_MESSAGE_KEY] = text
        return attributes

    def _add_headers(self, attributes: Attributes, headers: object) -> None:
        captures = self._settings.captures_header
        captured: dict[str, list[str]] = {}
        for key, value in header_items(headers):
            if captures(key):
                text = decode_header_value(value)
                if text is not None:
                    captured.setdefault(key, []).append(text)
        for key, values in captured.items():
            attributes[HEADER_ATTRIBUTE_PREFIX + key] = values


def key_attribute(key: object) -> str | None:
    """The key as the ``messaging.kafka.message.key`` string, None for keys with no canonical
    text form: bytes that are not UTF-8, and arbitrary objects (not ``str()``-ed: that can be
    slow or raise)."""
    if isinstance(key, str):
        return key
    if isinstance(key, (bytes, bytearray, memoryview)):
        try:
            return bytes(key).decode("utf-8")
        except UnicodeDecodeError:
            return None  # no canonical text: left out, as the conventions ask
    if isinstance(key, (int, float)) and not isinstance(key, bool):
        return str(key)
    return None


def _body_size(value: object) -> int | None:
    if isinstance(value, (bytes, bytearray)):
        return len(value)
    if isinstance(value, memoryview):
        return value.nbytes
    return None
