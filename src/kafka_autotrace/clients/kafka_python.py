"""The kafka-python adapter: ``KafkaProducer.send``, ``KafkaConsumer.__next__``, ``poll`` and
``close``, patched at class level (docs/design.md, "Code layout").
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

from kafka_autotrace.clients.registry import KAFKA_PYTHON
from kafka_autotrace.core.adapter import (
    UNTOUCHED,
    AttributeRecordGetter,
    MappingBatches,
    ReceiveAdapter,
    SendAdapter,
)
from kafka_autotrace.core.calls import CallShape
from kafka_autotrace.core.client import ClientInfo, ClientState
from kafka_autotrace.core.flows import ReceiveFlow, SendFlow
from kafka_autotrace.core.instrumentor import MethodWrappingInstrumentor, Wrappers
from kafka_autotrace.core.lag import Lag, LagState
from kafka_autotrace.core.propagation import HEADERS_MIN_API
from kafka_autotrace.core.sending import PendingSend
from kafka_autotrace.core.telemetry import TelemetrySlot


class _Clients:
    tells_cluster_id = True

    def cluster_id(self, client: Any) -> str | None:
        """From the cluster metadata of the last metadata response (kafka-python 2.0 keeps
        no id: None)."""
        metadata = getattr(client, "_metadata", None)
        if metadata is None:
            metadata = client._client.cluster
        return getattr(metadata, "cluster_id", None)

    def describe(self, client: Any) -> ClientState:
        """A KafkaProducer's or KafkaConsumer's state, from the config it keeps."""
        config = getattr(client, "config", {})
        return ClientState(
            ClientInfo.from_config(
                config.get("client_id"), config.get("bootstrap_servers"), config.get("group_id")
            )
        )


def _acknowledged(pending: PendingSend, metadata: Any) -> None:
    pending.succeed(getattr(metadata, "partition", None), getattr(metadata, "offset", None))


class _Send(_Clients, SendAdapter):
    shape = CallShape("topic", "value", "key", "headers", "partition", "timestamp_ms")

    def extendable(self, client: Any, headers: object) -> object:
        """kafka-python takes headers as a list only, and only for brokers of Kafka 0.11 on;
        a tuple or a list subclass is left for it to reject exactly as without us."""
        if headers is not None and type(headers) is not list:
            return UNTOUCHED
        api_version = client.config.get("api_version")
        if api_version is None or tuple(api_version) >= HEADERS_MIN_API:
            return headers
        return UNTOUCHED

    def rejected(self, error: Exception) -> bool:
        from kafka.errors import MessageSizeTooLargeError

        return isinstance(error, (TypeError, MessageSizeTooLargeError))

    def rejected_result(self, result: Any) -> bool:
        return bool(getattr(result, "is_done", False)) and self.rejected(result.exception)

    def follow(self, pending: PendingSend, result: Any) -> bool:
        result.add_callback(_acknowledged, pending)
        result.add_errback(self.failed, pending)
        return True


class _Receive(_Clients, MappingBatches, ReceiveAdapter):
    """``poll()`` returns ``{TopicPartition: [records]}``."""

    getter = AttributeRecordGetter()

    def assigned_partitions(self, consumer: Any) -> Iterable[Any]:
        return list(consumer._subscription.assignment)

    def partition_lag(self, consumer: Any, lag: LagState, partition: Any) -> Lag | None:
        """From the position (an int in 2.0, an OffsetAndMetadata later) and the high watermark;
        for a partition whose fetched records are not parsed yet, kafka-python knows the
        latter only from the fetch response waiting in its fetcher."""
        position = consumer._subscription.assignment[partition].position
        position = getattr(position, "offset", position)
        highwater = consumer._subscription.assignment[partition].highwater
        if highwater is None:
            highwater = _unparsed_highwater(consumer._fetcher, partition)
        if not isinstance(position, int) or highwater is None or highwater < 0:
            return None
        return partition.topic, partition.partition, highwater - position


def _unparsed_highwater(fetcher: Any, partition: Any) -> int | None:
    waiting = [
        *fetcher._completed_fetches,
        *getattr(fetcher, "_paused_completed_fetches", {}).values(),  # 2.1 on
    ]
    marks = [
        _highwater_of(fetch.partition_data)
        for fetch in waiting
        if fetch.topic_partition == partition
    ]
    known = [mark for mark in marks if isinstance(mark, int)]
    return max(known) if known else None


def _highwater_of(partition_data: Any) -> object:
    """A fetch response's high watermark: an attribute from 2.1 on, the second field of
    ``(error_code, highwater, …)`` in 2.0."""
    if hasattr(partition_data, "high_watermark"):
        return partition_data.high_watermark
    return partition_data[1]


TELEMETRY = TelemetrySlot()
_SEND = SendFlow(TELEMETRY, _Send())
_RECEIVE = ReceiveFlow(TELEMETRY, _Receive(), suppress_nested=True)


class KafkaPythonInstrumentor(MethodWrappingInstrumentor):
    """Traces kafka-python producers and consumers (entry point
    ``kafka_autotrace_kafka_python``)."""

    client = KAFKA_PYTHON
    telemetry_slot = TELEMETRY
    module = "kafka"
    wrappers: ClassVar[Wrappers] = {
        "KafkaProducer": {"send": _SEND.call},
        "KafkaConsumer": {
            "__next__": _RECEIVE.one,
            "poll": _RECEIVE.batch,
            "close": _RECEIVE.close,
        },
    }
