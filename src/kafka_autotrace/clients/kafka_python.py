"""The kafka-python adapter: ``KafkaProducer.send``, ``KafkaConsumer.__next__``, ``poll`` and
``close``, patched at class level (docs/design.md, "Code layout").
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from kafka_autotrace.clients.registry import KAFKA_PYTHON
from kafka_autotrace.core.adapter import (
    UNTOUCHED,
    AttributeRecordGetter,
    MappingBatches,
    ReceiveAdapter,
    SendAdapter,
)
from kafka_autotrace.core.calls import Arguments, CallShape
from kafka_autotrace.core.client import ClientInfo, ClientState, state_of
from kafka_autotrace.core.client_metrics import (
    CLIENT_ID,
    CONSUMER_COMMIT_LATENCY_AVG,
    CONSUMER_FETCH_LATENCY_AVG,
    CONSUMER_RECORDS_PER_REQUEST_AVG,
    CONSUMER_REQUEST_LATENCY_AVG,
    NODE_ID,
    PRODUCER_BATCH_SIZE_AVG,
    PRODUCER_RECORD_ERROR_RATE,
    PRODUCER_RECORD_QUEUE_TIME_AVG,
    PRODUCER_RECORD_RETRY_RATE,
    PRODUCER_REQUEST_LATENCY_AVG,
    TOPIC,
    Figure,
    FigureReader,
)
from kafka_autotrace.core.gaps import Found, GapWatch, Partition, run_in_background
from kafka_autotrace.core.instrumentor import MethodWrappingInstrumentor, Wrappers
from kafka_autotrace.core.lag import Lag
from kafka_autotrace.core.listeners import Note, listener_subscription, noting_listener
from kafka_autotrace.core.propagation import HEADERS_MIN_API
from kafka_autotrace.core.receive_flow import ReceiveFlow
from kafka_autotrace.core.scope import Suppressed
from kafka_autotrace.core.send_flow import SendFlow
from kafka_autotrace.core.sending import MeasuredSend
from kafka_autotrace.core.telemetry import TelemetrySlot
from kafka_autotrace.core.transactions import TransactionFlow

_logger = logging.getLogger(__name__)

# -- its own figures, from its metrics registry (``client.metrics(raw=True)``, the same in
# 2.0.2 and 3.x), read when metrics are exported. kafka-python ported the Java client's
# metrics, so names and meanings are the Java client's. A figure kept per client and per topic
# (``records-per-request-avg``) is reported per topic only, as the Java agent's bridge does, so
# that a sum over topics does not count twice. Per-broker figures live in groups named
# ``<kind>-node-metrics.node-<id>`` (no tag) in both versions. kafka-python keeps rates of
# retried and failed sends, not totals: they are reported as the Java client's rates. Its
# averages read 0 when their window (30 s by default) holds no sample. It records the queue
# time of a batch in seconds (though its description says ms): it is reported in ms.

_BRIDGED: Mapping[tuple[str, str], str] = {
    ("producer-metrics", "record-queue-time-avg"): PRODUCER_RECORD_QUEUE_TIME_AVG,
    ("producer-metrics", "batch-size-avg"): PRODUCER_BATCH_SIZE_AVG,
    ("producer-metrics", "record-retry-rate"): PRODUCER_RECORD_RETRY_RATE,
    ("producer-metrics", "record-error-rate"): PRODUCER_RECORD_ERROR_RATE,
    ("producer-node-metrics", "request-latency-avg"): PRODUCER_REQUEST_LATENCY_AVG,
    ("consumer-fetch-manager-metrics", "fetch-latency-avg"): CONSUMER_FETCH_LATENCY_AVG,
    ("consumer-fetch-manager-metrics", "records-per-request-avg"): (
        CONSUMER_RECORDS_PER_REQUEST_AVG
    ),
    ("consumer-coordinator-metrics", "commit-latency-avg"): CONSUMER_COMMIT_LATENCY_AVG,
    ("consumer-node-metrics", "request-latency-avg"): CONSUMER_REQUEST_LATENCY_AVG,
}
"""(group, metric name) of each figure bridged; node groups without their ``.node-<id>``."""
_SCALE: Mapping[str, float] = {PRODUCER_RECORD_QUEUE_TIME_AVG: 1000.0}
"""What a figure kept in another unit than the Java client's is multiplied by."""
_NODE = ".node-"


class RegistryFigures:
    """Reads a kafka-python producer's or consumer's figures from its metrics registry."""

    def figures(self, client: Any) -> Iterable[Figure]:
        if getattr(client, "_closed", False):
            return ()
        registry = client.metrics(raw=True)  # None with metrics_enabled=False (3.x)
        if not registry:
            return ()
        config = getattr(client, "config", {})
        own_id = str(config.get("client_id", ""))
        # Per instrument, the figures with the most attributes (per topic over per client).
        found: dict[str, list[Figure]] = {}
        for metric_name, metric in registry.items():
            group, node = _split_node(str(metric_name.group))
            name = _BRIDGED.get((group, metric_name.name))
            if name is None:
                continue
            tags = metric_name.tags or {}
            attributes = {CLIENT_ID: str(tags.get("client-id", own_id))}
            if "topic" in tags:
                attributes[TOPIC] = str(tags["topic"])
            if node is not None:
                attributes[NODE_ID] = node
            value = metric.value()
            if not isinstance(value, (int, float)):
                continue
            same = found.setdefault(name, [])
            if same and len(same[0][2]) < len(attributes):
                same.clear()
            if not same or len(same[0][2]) == len(attributes):
                same.append((name, value * _SCALE.get(name, 1.0), attributes))
        return [figure for figures in found.values() for figure in figures]


def _split_node(group: str) -> tuple[str, str | None]:
    """``producer-node-metrics.node-1`` as ``("producer-node-metrics", "node-1")``; None for
    a bootstrap connection (a negative id) and groups of no broker."""
    base, separator, node = group.partition(_NODE)
    if not separator:
        return group, None
    return base, f"node-{node}" if node.isdigit() else None


class _Clients:
    figures: FigureReader | None = RegistryFigures()

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


def _acknowledged(pending: MeasuredSend, metadata: Any) -> None:
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

    def follow(self, pending: MeasuredSend, result: Any) -> bool:
        result.add_callback(_acknowledged, pending)
        result.add_errback(self.failed, pending)
        return True


class _Receive(_Clients, MappingBatches, ReceiveAdapter):
    """``poll()`` returns ``{TopicPartition: [records]}``. The listener runs on the consumer's
    IO thread (kafka-python 3) while the application waits in ``poll()``."""

    getter = AttributeRecordGetter()
    rebalances_elsewhere = True

    def assigned_partitions(self, consumer: Any) -> Iterable[Any]:
        return list(consumer._subscription.assignment)

    def noting_subscription(self, arguments: Arguments, note: Note) -> Arguments | None:
        return listener_subscription(arguments, _listener_bases(), note)

    def note_constructed_subscription(self, consumer: Any, note: Note) -> None:
        subscription = consumer._subscription
        if subscription.rebalance_listener is None:
            subscription.rebalance_listener = noting_listener(None, _listener_bases(), note)

    def partition_lag(self, consumer: Any, partition: Any) -> Lag | None:
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

    def look_up(self, consumer: Any, partition: Partition, committed: bool, found: Found) -> None:
        """kafka-python keeps no log start offset (its fetcher drops it with the fetch
        response, 2.0 to 3.x): both offsets are asked for by a client of ours."""
        _look_up(consumer, partition, committed, found)


def _listener_bases() -> list[type]:
    """The listener classes kafka-python accepts (the asynchronous one from 3.0 on)."""
    from kafka.consumer import subscription_state

    names = ("ConsumerRebalanceListener", "AsyncConsumerRebalanceListener")
    return [
        getattr(subscription_state, name) for name in names if hasattr(subscription_state, name)
    ]


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


# -- what the gap check asks the broker (docs/design.md, "Records a consumer never got")

_CONNECTION_KEYS = ("bootstrap_servers", "security_protocol", "api_version", "socks5_proxy")
"""The consumer settings a client of ours shares, besides every ``ssl_*`` and ``sasl_*``."""
_CLIENT_ID_SUFFIX = "-kafka-autotrace"
"""Tells our client apart from the application's in the broker's logs and quotas."""

Asked = tuple[Partition, bool, Found]
"""A look-up: the partition, whether the committed offset is wanted, who gets the answer."""


def _look_up(consumer: Any, partition: Partition, committed: bool, found: Found) -> None:
    """Answer ``found`` from a thread of ours, unless the consumer closes first: a KafkaConsumer
    is not thread-safe, so the application's is never used for a request of ours. A short-lived
    consumer of the same group, built from its connection settings, never subscribes, asks for
    the beginning offsets (and committed offsets where asked) and closes. Look-ups asked while
    one is under way wait for it and share its client."""
    state = state_of(consumer)
    if state is None:
        return
    look_ups = _LOOK_UPS.get(consumer)
    if look_ups is None:
        look_ups = _LOOK_UPS[consumer] = _LookUps(_settings(consumer.config))
    look_ups.ask(state.gaps, (partition, committed, found))


def _settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """The settings of a consumer of ours that reaches the same cluster as ``config``'s, as the
    same group, and never commits."""
    settings = {
        key: value
        for key, value in config.items()
        if key in _CONNECTION_KEYS or key.startswith(("ssl_", "sasl_"))
    }
    settings["client_id"] = f"{config.get('client_id') or 'kafka-python'}{_CLIENT_ID_SUFFIX}"
    settings["group_id"] = config.get("group_id")
    settings["enable_auto_commit"] = False
    return settings


class _LookUps:
    """The look-ups asked about one consumer, answered one client at a time."""

    __slots__ = ("_asked", "_lock", "_running", "_settings")

    def __init__(self, settings: dict[str, Any]) -> None:
        self._settings = settings
        self._asked: list[Asked] = []
        self._lock = threading.Lock()
        self._running = False

    def ask(self, gaps: GapWatch, asked: Asked) -> None:
        with self._lock:
            self._asked.append(asked)
            if self._running:
                return
            self._running = True
        run_in_background("gap look-up", lambda: self._run(gaps))

    def _run(self, gaps: GapWatch) -> None:
        answered: list[bool] = []

        def answer_all() -> None:
            self._answer_all()
            answered.append(True)

        try:
            gaps.look_up(answer_all)
        finally:
            if not answered:  # the consumer is closing, or our client failed
                with self._lock:
                    self._asked.clear()
                    self._running = False

    def _take(self) -> list[Asked]:
        """What was asked and not answered yet; when nothing, a later look-up starts over."""
        with self._lock:
            asked, self._asked = self._asked, []
            self._running = bool(asked)
            return asked

    def _answer_all(self) -> None:
        """Answer what was asked, and what is asked meanwhile, with one client."""
        from kafka import KafkaConsumer

        with Suppressed():  # our client is not traced
            client = KafkaConsumer(**self._settings)
            try:
                while asked := self._take():
                    _answer(client, asked)
            finally:
                try:
                    client.close(autocommit=False)
                except Exception:
                    _logger.debug("kafka-autotrace: closing a look-up client failed", exc_info=True)


def _answer(client: Any, asked: list[Asked]) -> None:
    from kafka import TopicPartition

    starts = client.beginning_offsets([TopicPartition(*partition) for partition, _, _ in asked])
    for partition, committed, found in asked:
        topic_partition = TopicPartition(*partition)
        try:
            in_group = committed and client.config.get("group_id") is not None
            offset = client.committed(topic_partition) if in_group else None
            found(offset, starts.get(topic_partition))
        except Exception:
            _logger.debug("kafka-autotrace: a look-up for a gap failed", exc_info=True)


_LOOK_UPS: weakref.WeakKeyDictionary[Any, _LookUps] = weakref.WeakKeyDictionary()
"""Per application consumer, its look-ups."""


TELEMETRY = TelemetrySlot()
_SEND = SendFlow(TELEMETRY, _Send())
_TRANSACTIONS = TransactionFlow(TELEMETRY, _Send())
_RECEIVE = ReceiveFlow(TELEMETRY, _Receive(), suppress_nested=True)


class KafkaPythonInstrumentor(MethodWrappingInstrumentor):
    """Traces kafka-python producers and consumers (entry point
    ``kafka_autotrace_kafka_python``)."""

    client = KAFKA_PYTHON
    telemetry_slot = TELEMETRY
    module = "kafka"
    wrappers: ClassVar[Wrappers] = {
        "KafkaProducer": {
            "send": _SEND.call,
            "begin_transaction": _TRANSACTIONS.begin,
            "commit_transaction": _TRANSACTIONS.commit,
            "abort_transaction": _TRANSACTIONS.abort,
        },
        "KafkaConsumer": {
            "__init__": _RECEIVE.construct,
            "subscribe": _RECEIVE.subscribe,
            "__next__": _RECEIVE.one,
            "poll": _RECEIVE.batch,
            "close": _RECEIVE.close,
            "seek": _RECEIVE.seek,
            "seek_to_beginning": _RECEIVE.seek,
            "seek_to_end": _RECEIVE.seek,
        },
    }
