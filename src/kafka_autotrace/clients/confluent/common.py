"""What confluent-kafka's synchronous and asyncio classes share: reading its messages and
configurations, naming its errors, and putting traced subclasses in place of its classes.

confluent-kafka's Producer and Consumer are C types whose methods cannot be patched. So
``instrument()`` replaces module attributes (``confluent_kafka.Producer`` and the rest) with
subclasses of the originals that trace, and ``uninstrument()`` puts the very same original
objects back. ``isinstance`` and ``issubclass`` against the module attributes answer as they
did for the originals, user subclasses work, and every method other than the traced ones is
the original's. A module that bound a class before ``instrument()`` (``from confluent_kafka
import Producer`` run earlier) keeps the untraced original: ``instrument()`` names such
modules in one warning.
"""

from __future__ import annotations

import logging
import sys
import types
from collections.abc import Iterable, Mapping, Sequence
from functools import partial
from types import ModuleType
from typing import Any

from kafka_autotrace.clients.confluent.figures import StatisticsFigures
from kafka_autotrace.clients.confluent.group_callbacks import noting_callbacks
from kafka_autotrace.clients.confluent.positions import (
    ConsumerView,
    lag_of,
    read_idle,
    read_view,
)
from kafka_autotrace.clients.confluent.statistics import StatisticsTap, tap_statistics
from kafka_autotrace.clients.registry import CONFLUENT_KAFKA
from kafka_autotrace.core.adapter import ReceiveAdapter, SendAdapter
from kafka_autotrace.core.calls import Arguments
from kafka_autotrace.core.client import ClientInfo, ClientState, keep_state, state_of
from kafka_autotrace.core.gaps import Found, Partition, run_in_background
from kafka_autotrace.core.lag import Lag
from kafka_autotrace.core.listeners import Note
from kafka_autotrace.core.telemetry import TelemetrySlot

_logger = logging.getLogger(__name__)

_ORIGINAL_ATTR = "_kafka_autotrace_original"
_TIMESTAMP_NOT_AVAILABLE = 0
_TRUE = frozenset({"true", "t", "1"})  # what librdkafka reads as a true boolean property
_EARLIEST = frozenset({"smallest", "earliest", "beginning"})

_LOOK_UP_TIMEOUT_S = 1.0
"""The longest a look-up of ours about a consumer that may have lost records takes: closing
the consumer waits for it."""

TELEMETRY = TelemetrySlot()
"""Shared by the synchronous and asyncio classes: one instrumentor traces both."""
_replaced: list[tuple[ModuleType, str, type, type]] = []
_traced_classes: dict[type, type] = {}


class MessageGetter:
    """Reads ``confluent_kafka.Message`` (a C type with getter methods)."""

    def topic(self, record: Any) -> str:
        return record.topic()  # type: ignore[no-any-return]

    def partition(self, record: Any) -> int | None:
        return record.partition()  # type: ignore[no-any-return]

    def offset(self, record: Any) -> int | None:
        return record.offset()  # type: ignore[no-any-return]

    def key(self, record: Any) -> object:
        return record.key()

    def value(self, record: Any) -> object:
        return record.value()

    def headers(self, record: Any) -> object:
        return record.headers()

    def timestamp_ms(self, record: Any) -> int | None:
        kind, timestamp = record.timestamp()
        if kind == _TIMESTAMP_NOT_AVAILABLE or not isinstance(timestamp, int) or timestamp <= 0:
            return None
        return timestamp


def acknowledged(message: Any) -> tuple[int | None, int | None]:
    """The partition and offset of a delivered message."""
    return message.partition(), message.offset()


class ConfluentState(ClientState):
    """A client's state, with what its configuration says about delivery reports, which
    confluent-kafka does not expose after construction."""

    __slots__ = (
        "assignment",
        "default_callback",
        "delivery_errors",
        "follows_delivery",
        "idle_read",
        "starts_at_earliest",
        "statistics",
        "view",
    )

    def __init__(
        self,
        info: ClientInfo,
        default_callback: object = None,
        follows_delivery: bool = True,
        starts_at_earliest: bool = False,
        statistics: StatisticsTap | None = None,
    ) -> None:
        super().__init__(info)
        self.default_callback = default_callback
        """The config-level ``on_delivery``: what librdkafka calls without a per-message one."""
        self.follows_delivery = follows_delivery
        """False with ``delivery.report.only.error``: successes are never reported."""
        self.starts_at_earliest = starts_at_earliest
        """Where ``auto.offset.reset`` puts a partition with no committed offset."""
        self.statistics = statistics
        """librdkafka's latest statistics for this client, None when they are not tapped."""
        self.view = ConsumerView()
        """What the lag gauge reads of a consumer."""
        self.delivery_errors = 0
        """Messages whose delivery report was an error (counted by our delivery callback)."""


def tapped(
    args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any], StatisticsTap | None]:
    """The arguments to construct a client with: with our statistics tap when the clients'
    statistics are bridged, else (or when tapping fails) the application's own."""
    telemetry = TELEMETRY.telemetry
    try:
        if telemetry is not None and telemetry.bridges_client_metrics():
            return tap_statistics(args, kwargs)
    except Exception:
        _logger.debug("kafka-autotrace: tapping librdkafka statistics failed", exc_info=True)
    return args, kwargs, None


def statistics_of(client: object) -> dict[str, Any] | None:
    """The latest librdkafka statistics of a traced client, parsed; None when not tapped or
    none emitted yet."""
    state = state_of(client)
    if isinstance(state, ConfluentState) and state.statistics is not None:
        return state.statistics.latest()
    return None


def remember(
    client: object,
    args: tuple[Any, ...],
    kwargs: Mapping[str, Any],
    statistics: StatisticsTap | None = None,
) -> None:
    """Keep what tracing needs from the configuration a client was constructed with (a dict
    and/or keyword properties, merged as confluent-kafka merges them), and its statistics
    tap (whose figures are reported from now on)."""
    try:
        config: dict[str, Any] = dict(args[0]) if args and isinstance(args[0], Mapping) else {}
        config.update(kwargs)
        info = ClientInfo.from_config(
            config.get("client.id"),
            config.get("bootstrap.servers") or config.get("metadata.broker.list"),
            config.get("group.id"),
        )
        only_errors = str(config.get("delivery.report.only.error", "")).strip().lower()
        reset = str(config.get("auto.offset.reset", "")).strip().lower()
        state = ConfluentState(
            info,
            config.get("on_delivery"),
            follows_delivery=only_errors not in _TRUE,
            starts_at_earliest=reset in _EARLIEST,
            statistics=statistics,
        )
        keep_state(client, state)
        telemetry = TELEMETRY.telemetry
        if statistics is not None and telemetry is not None:
            telemetry.report_client(client, StatisticsFigures(statistics, info.client_id, state))
    except Exception:
        _logger.debug("kafka-autotrace: reading a client configuration failed", exc_info=True)


class ClusterIdOfClient:
    """Mixed in ahead of the adapters of the classes that call librdkafka themselves (not the
    asyncio ones, whose client runs on executor threads a call from the event loop could wait
    for): ``cluster_id(0)`` reads the id librdkafka cached from its last metadata response,
    without a request or a wait, and raises while there is none (in the releases that have the
    method: 2.16 has it, 2.0 has not). Not ``list_topics()``, a broker round trip that can
    crash a consumer (librdkafka#4214)."""

    tells_cluster_id = True

    def cluster_id(self, client: Any) -> str | None:
        from confluent_kafka import KafkaException

        read = getattr(client, "cluster_id", None)
        if read is None:
            return None
        try:
            return read(0)  # type: ignore[no-any-return]
        except KafkaException:
            return None  # its answer while it has no metadata yet: no failure of ours


class _KafkaErrorNames:
    """Names a failure as confluent-kafka does: a KafkaException (or subclass) carrying a
    KafkaError gives that error's name as error.type, e.g. ``_MSG_TIMED_OUT``."""

    def error_type(self, exception: BaseException) -> tuple[str, str]:
        from confluent_kafka import KafkaError  # imported already: we run inside its classes

        error = exception.args[0] if exception.args else None
        if isinstance(error, KafkaError):
            return error.name(), error.str()
        return super().error_type(exception)  # type: ignore[misc, no-any-return]


class ConfluentSends(_KafkaErrorNames, SendAdapter):
    """A producer method of confluent-kafka."""


class ConfluentReceives(_KafkaErrorNames, ReceiveAdapter):
    """How a confluent-kafka consumer hands out messages: ``poll()`` returns one message, an
    error event or None; ``consume()`` a list of messages and error events. Its lag is read
    from what its calls left in its :class:`ConsumerView`."""

    getter = MessageGetter()
    awaits_keyword_callbacks = False
    """Whether the consumer awaits the rebalance callbacks given by keyword (the asyncio
    consumer's)."""

    def is_record(self, entry: Any) -> bool:
        return entry.error() is None

    def failure(self, entry: Any) -> BaseException | None:
        """An error event, as the KafkaException it stands for; the end of a partition
        (``enable.partition.eof``) tells of no failure."""
        from confluent_kafka import KafkaError, KafkaException

        error = entry.error()
        if error is None or error.code() == KafkaError._PARTITION_EOF:
            return None
        return KafkaException(error)

    def batch_lists(self, result: Any) -> Sequence[list[Any]]:
        return (result,) if isinstance(result, list) else ()

    def with_lists(self, result: Any, lists: Sequence[list[Any]]) -> Any:
        return lists[0] if type(result) is list else result

    def librdkafka_consumer(self, consumer: Any) -> Any:
        """The C consumer behind ``consumer``, whose figures are read."""
        return consumer

    def assigned_partitions(self, consumer: Any) -> Iterable[Any]:
        state = state_of(consumer)
        if not isinstance(state, ConfluentState):
            return ()
        read_idle(self.librdkafka_consumer(consumer), state.view, state.activity)
        return state.view.assignment

    def partition_lag(self, consumer: Any, partition: Any) -> Lag | None:
        state = state_of(consumer)
        if not isinstance(state, ConfluentState):
            return None
        statistics = statistics_of(self.librdkafka_consumer(consumer))
        committed = partial(_committed, statistics or {})
        return lag_of(state.view, state.activity, partition, committed, state.starts_at_earliest)

    def after_call(self, consumer: Any, state: ClientState) -> None:
        if isinstance(state, ConfluentState):
            read_view(self.librdkafka_consumer(consumer), state.view, state.activity)

    def noting_subscription(self, arguments: Arguments, note: Note) -> Arguments | None:
        return noting_callbacks(arguments, note, self.awaits_keyword_callbacks)

    def log_start(self, consumer: Any, partition: Partition) -> int | None:
        return log_start_of(consumer, partition)

    def look_up(self, consumer: Any, partition: Partition, committed: bool, found: Found) -> None:
        look_up_committed(consumer, consumer, partition, found)


def log_start_of(consumer: Any, partition: Partition) -> int | None:
    """The low watermark librdkafka keeps from its fetch responses (no request)."""
    from confluent_kafka import TopicPartition

    low, _ = consumer.get_watermark_offsets(TopicPartition(*partition), cached=True)
    return low if isinstance(low, int) and low >= 0 else None


def look_up_committed(traced: Any, consumer: Any, partition: Partition, found: Found) -> None:
    """Ask the broker for the committed offset of ``consumer``'s group in ``partition`` from
    a thread of ours, unless ``traced`` (the consumer, or the aio consumer that wraps it)
    closes first; ``found`` gets it with the cached log start offset."""
    from confluent_kafka import TopicPartition

    state = state_of(traced)
    if state is None:
        return

    def look() -> None:
        [committed] = consumer.committed([TopicPartition(*partition)], timeout=_LOOK_UP_TIMEOUT_S)
        found(committed.offset, log_start_of(consumer, partition))

    run_in_background("committed offset look-up", lambda: state.gaps.look_up(look))


def _committed(statistics: dict[str, Any], partition: tuple[str, int]) -> int:
    """The partition's committed offset in a consumer's statistics, -1 when unknown."""
    topic, partition_id = partition
    figures = statistics.get("topics", {}).get(topic, {}).get("partitions", {})
    committed = figures.get(str(partition_id), {}).get("committed_offset", -1)
    return committed if isinstance(committed, int) else -1


# -- class replacement ------------------------------------------------------------------------


class _TracedType(type):
    """The metaclass of the traced classes: ``isinstance(x, confluent_kafka.Producer)`` keeps
    meaning "x is a Producer", also for clients created before instrumentation and for the
    library's own subclasses, which derive from the original class."""

    def __instancecheck__(cls, instance: Any) -> bool:
        original = cls.__dict__.get(_ORIGINAL_ATTR)
        if original is not None:
            return isinstance(instance, original)
        return super().__instancecheck__(instance)

    def __subclasscheck__(cls, subclass: type) -> bool:
        original = cls.__dict__.get(_ORIGINAL_ATTR)
        if original is not None:
            return issubclass(subclass, original)
        return super().__subclasscheck__(subclass)


def _traced_class(original: type, mixin: type) -> type:
    """The traced subclass of ``original``, made once per process so that clients created
    across several instrument() calls share one class."""
    traced = _traced_classes.get(original)
    if traced is None:
        # A generic original (SerializingProducer[K, V]) stays subscriptable.
        parameters = getattr(original, "__parameters__", ())
        base = original[parameters] if parameters else original  # type: ignore[index]
        namespace = {
            "__module__": mixin.__module__,
            "__qualname__": original.__qualname__,
            "__doc__": original.__doc__,
            _ORIGINAL_ATTR: original,
        }
        traced = types.new_class(
            original.__name__,
            (mixin, base),
            {"metaclass": _TracedType},
            lambda body: body.update(namespace),
        )
        _traced_classes[original] = traced
    return traced


def replace_classes(targets: Iterable[tuple[ModuleType, str, type]]) -> None:
    """Put the traced subclass in place of each ``module.name`` (skipping names this version of
    confluent-kafka lacks), then warn about modules that bound an original earlier."""
    originals: dict[str, type] = {}
    for module, name, mixin in targets:
        original = module.__dict__.get(name)
        if not isinstance(original, type) or original in _traced_classes.values():
            continue
        traced = _traced_class(original, mixin)
        setattr(module, name, traced)
        _replaced.append((module, name, original, traced))
        originals[f"{module.__name__}.{name}"] = original
    try:
        _warn_about_early_bindings(originals)
    except Exception:
        _logger.debug("kafka-autotrace: looking for early imports failed", exc_info=True)


def _warn_about_early_bindings(originals: Mapping[str, type]) -> None:
    """One warning naming the modules that hold an original class, or subclass one, and so
    create clients we cannot trace: the class was imported before instrumentation."""
    wanted = {id(original): name for name, original in originals.items()}
    holders: dict[str, set[str]] = {}
    for module_name, module in list(sys.modules.items()):
        if _is_own(module_name):
            continue
        try:
            values = list(vars(module).values())
        except Exception:  # not every entry of sys.modules is a module
            continue
        for value in values:
            name = wanted.get(id(value))
            if name is not None:
                holders.setdefault(name, set()).add(module_name)
    for name, original in originals.items():
        subclasses: list[type] = original.__subclasses__()
        for subclass in subclasses:
            if not _is_own(subclass.__module__) and subclass not in _traced_classes.values():
                holders.setdefault(name, set()).add(f"{subclass.__module__}.{subclass.__name__}")
    if holders:
        _logger.warning(
            "kafka-autotrace: %s took confluent-kafka classes before instrumentation, so the "
            "clients created through them are not traced. Instrument first (run the application "
            "under opentelemetry-instrument, or call ConfluentKafkaInstrumentor().instrument() "
            "before importing them), or refer to the classes through the module at call time.",
            "; ".join(
                f"{', '.join(sorted(users))} ({name})" for name, users in sorted(holders.items())
            ),
        )


def _is_own(module_name: str) -> bool:
    """Modules whose references to the original classes are the library's, ours, or those of
    the upstream instrumentor we took over from (which creates no clients while we trace)."""
    upstream = CONFLUENT_KAFKA.upstream.module
    return module_name.split(".", 1)[0] in ("confluent_kafka", "kafka_autotrace") or (
        module_name == upstream or module_name.startswith(f"{upstream}.")
    )


def restore_classes() -> None:
    """Put every replaced original back, unless someone replaced our class in turn."""
    while _replaced:
        module, name, original, traced = _replaced.pop()
        if module.__dict__.get(name) is traced:
            setattr(module, name, original)
        else:
            _logger.debug("kafka-autotrace: %s.%s was replaced again; left as is", module, name)
