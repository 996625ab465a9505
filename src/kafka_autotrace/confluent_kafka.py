"""The confluent-kafka adapter: traced subclasses put in place of the library's classes.

confluent-kafka's Producer and Consumer are C types whose methods cannot be patched. So
``instrument()`` replaces the module attributes ``confluent_kafka.Producer``, ``.Consumer``,
``.SerializingProducer`` and ``.DeserializingConsumer`` (and, once ``confluent_kafka.aio`` is
imported, its classes: see :mod:`kafka_autotrace.confluent_aio`) with subclasses of the originals
that trace, and ``uninstrument()`` puts the very same original objects back. ``isinstance`` and
``issubclass`` against the module attributes answer as they did for the originals, user
subclasses work, and every method other than those below is the original's. A module that bound
a class before ``instrument()`` (``from confluent_kafka import Producer`` run earlier) keeps the
untraced original: ``instrument()`` names such modules in one warning.

What is traced:

- ``produce()``: a ``send`` span whose context is injected into the headers, ended by the
  delivery report with partition and offset, or with ERROR and the KafkaError name. To see that
  report we pass our own per-message callback, which then calls the callback librdkafka would
  have called without us, once and with the same arguments: the per-message ``callback`` (which
  wins over its alias ``on_delivery`` whenever it is passed, even as None, as in the C code),
  else ``on_delivery``, else the producer's config-level ``on_delivery``. Its exceptions leave
  ``poll()``/``flush()`` as before. Delivery reports are served by the application's own
  ``poll()``/``flush()``, which are not wrapped. Should ``produce()`` reject the call with our
  headers and callback in it (a TypeError naming another argument count; a message our
  headers push over ``message.max.bytes``), it is made again exactly as the application made
  it, so the outcome is always the application's; that send span ends when it returns.
- A producer destroyed with messages still queued never calls their delivery callbacks, and
  confluent-kafka never frees them (the application's own included): their send spans never
  end, and count towards ``KAFKA_AUTOTRACE_MAX_INFLIGHT_SPANS``. ``flush()`` before dropping a
  producer.
- Producers configured with ``delivery.report.only.error=true`` never get a report for a
  delivered message, so a span waiting for one would never end (and, held by librdkafka, never
  be freed). Their send spans end when ``produce()`` returns, that is once the message is
  queued, without partition or offset, and we pass no callback of ours: failures reach the
  application's callback exactly as before but are not on the span. The same holds for a
  callback that is not callable, which we leave for confluent-kafka to deal with as before.
- ``poll()``: a ``process`` span per message (not for None or error events), current until the
  next ``poll()``/``consume()``/``close()`` of that consumer.
- ``consume()``: a ``poll`` span with one link per message, then a ``process`` span per message
  as the application iterates the returned list.
- ``close()`` and leaving a ``with`` block end the open ``process`` span.

The serializing classes are traced at their outermost call, so spans see keys and values as the
application does. Their own calls into the C base go through ``super(SerializingProducer,
self)``, past our subclass, so they never make a second span; nor is anything else suppressed,
so a message a serializer or rebalance callback produces gets its own span.
"""

from __future__ import annotations

import logging
import sys
import time
import types
from collections.abc import Iterable, Mapping
from functools import partial
from types import ModuleType
from typing import Any, ClassVar

from opentelemetry.instrumentation.utils import is_instrumentation_enabled
from wrapt import register_post_import_hook

from kafka_autotrace.batch import TracedRecords
from kafka_autotrace.calls import CallShape, call_as_made
from kafka_autotrace.instrumentor import KafkaClientInstrumentor, Upstream
from kafka_autotrace.model import ClientInfo, parse_bootstrap
from kafka_autotrace.scope import ConsumerScopes, is_suppressed
from kafka_autotrace.telemetry import KafkaTelemetry, PendingSend

_logger = logging.getLogger(__name__)

STATE_ATTR = "_kafka_autotrace"
_ORIGINAL_ATTR = "_kafka_autotrace_original"
# confluent-kafka 2.12 shipped the asyncio classes as experimental.aio; 2.13 made them aio.
_AIO_MODULES = ("confluent_kafka.aio", "confluent_kafka.experimental.aio")
_AIO_HOOK = "kafka_autotrace.confluent_aio:patch_aio"
_TIMESTAMP_NOT_AVAILABLE = 0
_TRUE = frozenset({"true", "t", "1"})  # what librdkafka reads as a true boolean property
UPSTREAM = Upstream(
    "opentelemetry.instrumentation.confluent_kafka",
    "ConfluentKafkaInstrumentor",
    "confluent_kafka",
    "opentelemetry-instrumentation-confluent-kafka",
)


class ConfluentMessageAccessor:
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


ACCESSOR = ConfluentMessageAccessor()


class _Instrumentation:
    """What the traced classes consult on every call.

    Clients outlive ``instrument()``/``uninstrument()``, so they look the telemetry up here
    instead of capturing it: after ``uninstrument()`` a client of a traced class behaves exactly
    like one of the original class.
    """

    def __init__(self) -> None:
        self.telemetry: KafkaTelemetry | None = None
        self.replaced: list[tuple[ModuleType, str, type, type]] = []
        self.traced_classes: dict[type, type] = {}
        self.aio_hooks_waiting: set[str] = set()


ACTIVE = _Instrumentation()


class ClientState:
    """What a traced client needs from its configuration, which confluent-kafka does not
    expose after construction."""

    __slots__ = ("default_callback", "delegated", "follows_delivery", "info", "scopes")

    def __init__(
        self, info: ClientInfo, default_callback: object = None, follows_delivery: bool = True
    ) -> None:
        self.info = info
        self.default_callback = default_callback
        """The config-level ``on_delivery``: what librdkafka calls without a per-message one."""
        self.follows_delivery = follows_delivery
        """False with ``delivery.report.only.error``: successes are never reported."""
        self.scopes = ConsumerScopes()
        self.delegated = False
        """True for the client inside an aio wrapper, which traces on its behalf."""


def state_of(client: object) -> ClientState | None:
    """The state a traced client remembered at construction; None for a client whose
    construction we did not see, which is then left entirely alone."""
    state: ClientState | None = getattr(client, "__dict__", {}).get(STATE_ATTR)
    return state


def _remember(client: object, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    """Keep what tracing needs from the configuration a client was constructed with (a dict
    and/or keyword properties, merged as confluent-kafka merges them)."""
    try:
        config: dict[str, Any] = dict(args[0]) if args and isinstance(args[0], Mapping) else {}
        config.update(kwargs)
        address, port = parse_bootstrap(
            config.get("bootstrap.servers") or config.get("metadata.broker.list")
        )
        client_id, group = config.get("client.id"), config.get("group.id")
        info = ClientInfo(
            client_id=client_id if isinstance(client_id, str) and client_id else None,
            server_address=address,
            server_port=port,
            consumer_group=group if isinstance(group, str) and group else None,
        )
        only_errors = str(config.get("delivery.report.only.error", "")).strip().lower()
        client.__dict__[STATE_ATTR] = ClientState(
            info, config.get("on_delivery"), follows_delivery=only_errors not in _TRUE
        )
    except Exception:
        _logger.debug("kafka-autotrace: reading a client configuration failed", exc_info=True)


# -- producer ---------------------------------------------------------------------------------


def fail_send(pending: PendingSend, exception: BaseException) -> None:
    """End a send span for an exception; one carrying a KafkaError (KafkaException and its
    subclasses) gives that error's name as error.type, e.g. ``_MSG_TIMED_OUT``."""
    from confluent_kafka import KafkaError  # imported already: we run inside its classes

    try:
        error = exception.args[0] if exception.args else None
        if isinstance(error, KafkaError):
            pending.fail(error.name(), exception, error.str())
        else:
            pending.fail_with(exception)
    except Exception:
        _logger.debug("kafka-autotrace: ending a failed send span failed", exc_info=True)


def end_send(pending: PendingSend, error: Any, message: Any) -> None:
    """End a send span from a delivery report: ``error`` is a KafkaError or None."""
    try:
        if error is None:
            pending.succeed(message.partition(), message.offset())
        else:
            from confluent_kafka import KafkaException

            fail_send(pending, KafkaException(error))
    except Exception:
        _logger.debug("kafka-autotrace: reading a delivery report failed", exc_info=True)


def rejected_produce(error: Exception) -> bool:
    """An error produce() raises while checking its arguments, before queueing: a TypeError,
    or a message over ``message.max.bytes``."""
    from confluent_kafka import KafkaError

    if isinstance(error, TypeError):
        return True
    reason = error.args[0] if error.args else None
    return isinstance(reason, KafkaError) and reason.code() == KafkaError.MSG_SIZE_TOO_LARGE


def _delivered(pending: PendingSend, callback: Any, error: Any, message: Any) -> Any:
    """Our per-message delivery callback: end the span, then call the application's."""
    end_send(pending, error, message)
    if callback is not None:
        return callback(error, message)
    return None


def start_send(
    state: ClientState, shape: CallShape, args: tuple[Any, ...], kwargs: Mapping[str, Any]
) -> PendingSend | None:
    """Start the send span of a produce call; None when it is not to be traced."""
    telemetry = ACTIVE.telemetry
    if telemetry is None or state.delegated or is_suppressed():
        return None
    if not is_instrumentation_enabled() or telemetry.sends_untouched():
        return None
    return telemetry.start_send(
        state.info,
        shape.get(args, kwargs, "topic"),
        shape.get(args, kwargs, "key"),
        shape.get(args, kwargs, "value"),
        shape.get(args, kwargs, "partition"),
        shape.get(args, kwargs, "headers"),
    )


def _traced_call(
    pending: PendingSend,
    state: ClientState,
    shape: CallShape,
    callbacks: tuple[str, ...],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> tuple[tuple[Any, ...], dict[str, Any], bool]:
    """The produce arguments with trace headers and our delivery callback, and whether that
    callback will end the span."""
    telemetry = ACTIVE.telemetry
    if telemetry is not None and telemetry.settings.propagate:
        headers = shape.get(args, kwargs, "headers")
        args, kwargs = shape.replace(
            args, kwargs, "headers", telemetry.headers_for(pending, headers)
        )
    if not state.follows_delivery or not pending.tracked:
        return args, kwargs, False
    # The first callback argument the caller passed decides, as in the C code.
    name = next((name for name in callbacks if shape.given(args, kwargs, name)), callbacks[-1])
    callback = shape.get(args, kwargs, name)
    if callback is None:
        callback = state.default_callback
    if callback is not None and not callable(callback):
        return args, kwargs, False
    args, kwargs = shape.replace(args, kwargs, name, partial(_delivered, pending, callback))
    return args, kwargs, True


class _TracedProducer:
    """Mixed in ahead of ``Producer``: ``produce(topic, value, key, partition, callback,
    on_delivery, timestamp, headers)``."""

    __slots__ = ()
    _produce_shape: ClassVar[CallShape] = CallShape(
        "topic", "value", "key", "partition", "callback", "on_delivery", "timestamp", "headers"
    )
    _callbacks: ClassVar[tuple[str, ...]] = ("callback", "on_delivery")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _remember(self, args, kwargs)

    def produce(self, *args: Any, **kwargs: Any) -> Any:
        produce = super().produce  # type: ignore[misc]
        state = state_of(self)
        pending = None
        try:
            if state is not None:
                pending = start_send(state, self._produce_shape, args, kwargs)
        except Exception:
            _logger.debug("kafka-autotrace: starting a send span failed", exc_info=True)
        if pending is None or state is None:
            return produce(*args, **kwargs)
        try:
            call_args, call_kwargs, follows = _traced_call(
                pending, state, self._produce_shape, self._callbacks, args, kwargs
            )
        except Exception:
            _logger.debug("kafka-autotrace: preparing a produce call failed", exc_info=True)
            call_args, call_kwargs, follows = args, kwargs, False
        try:
            result, as_made = call_as_made(
                produce, (args, kwargs), (call_args, call_kwargs), rejected_produce
            )
        except BaseException as exception:
            fail_send(pending, exception)
            raise
        if as_made or not follows:
            pending.succeed(None, None)
        return result


class _TracedSerializingProducer(_TracedProducer):
    """Mixed in ahead of ``SerializingProducer``, whose ``produce`` has its own argument order
    and no ``callback`` alias."""

    __slots__ = ()
    _produce_shape = CallShape(
        "topic", "key", "value", "partition", "on_delivery", "timestamp", "headers"
    )
    _callbacks = ("on_delivery",)


# -- consumer ---------------------------------------------------------------------------------


def consuming_state(client: object) -> ClientState | None:
    """The state of a consumer whose next call is to be traced, after ending the process span
    of the message it returned before."""
    state = state_of(client)
    if state is None or state.delegated or is_suppressed():
        return None
    state.scopes.finish()
    return state


def enter_message(state: ClientState, message: Any) -> None:
    """Start the process span of a message ``poll()`` returned and make it current."""
    telemetry = ACTIVE.telemetry
    if message is None or telemetry is None or not is_instrumentation_enabled():
        return
    try:
        if message.error() is None:
            scope = telemetry.start_process(message, ACCESSOR, state.info)
            if scope is not None:
                state.scopes.enter(scope)
    except Exception:
        _logger.debug("kafka-autotrace: starting a process span failed", exc_info=True)


class TracedMessages(TracedRecords):
    """A ``consume()`` result: messages mixed with error events, which get no span."""

    __slots__ = ()

    def _traced(self, record: Any) -> bool:
        return record.error() is None


def traced_batch(state: ClientState, messages: Any, started_ns: int, started: float) -> Any:
    """Emit the poll span of a ``consume()`` and return its list, tracing each message as the
    application iterates it."""
    telemetry = ACTIVE.telemetry
    if not messages or telemetry is None or not is_instrumentation_enabled():
        return messages
    try:
        valid = [message.error() is None for message in messages]
        records = [message for message, ok in zip(messages, valid) if ok]
        if not records:
            return messages
        incoming = iter(telemetry.record_poll(records, ACCESSOR, state.info, started_ns, started))
        if not telemetry.settings.batch_process_spans or type(messages) is not list:
            return messages
        aligned = [next(incoming) if ok else None for ok in valid]
        return TracedMessages(messages, aligned, telemetry, ACCESSOR, state.info, state.scopes)
    except Exception:
        _logger.debug("kafka-autotrace: tracing a consume() batch failed", exc_info=True)
        return messages


class _TracedConsumer:
    """Mixed in ahead of ``Consumer`` and ``DeserializingConsumer``."""

    __slots__ = ()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _remember(self, args, kwargs)

    def poll(self, *args: Any, **kwargs: Any) -> Any:
        state = consuming_state(self)
        message = super().poll(*args, **kwargs)  # type: ignore[misc]
        if state is not None:
            enter_message(state, message)
        return message

    def consume(self, *args: Any, **kwargs: Any) -> Any:
        state = consuming_state(self)
        started_ns, started = time.time_ns(), time.perf_counter()
        messages = super().consume(*args, **kwargs)  # type: ignore[misc]
        if state is None:
            return messages
        return traced_batch(state, messages, started_ns, started)

    def close(self, *args: Any, **kwargs: Any) -> Any:
        consuming_state(self)
        return super().close(*args, **kwargs)  # type: ignore[misc]

    def __exit__(self, *args: Any) -> Any:
        consuming_state(self)
        return super().__exit__(*args)  # type: ignore[misc]


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
    traced = ACTIVE.traced_classes.get(original)
    if traced is None:
        # A generic original (SerializingProducer[K, V]) stays subscriptable.
        parameters = getattr(original, "__parameters__", ())
        base = original[parameters] if parameters else original  # type: ignore[index]
        namespace = {
            "__module__": __name__,
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
        ACTIVE.traced_classes[original] = traced
    return traced


def replace_classes(targets: Iterable[tuple[ModuleType, str, type]]) -> None:
    """Put the traced subclass in place of each ``module.name`` (skipping names this version of
    confluent-kafka lacks), then warn about modules that bound an original earlier."""
    originals: dict[str, type] = {}
    for module, name, mixin in targets:
        original = module.__dict__.get(name)
        if not isinstance(original, type) or original in ACTIVE.traced_classes.values():
            continue
        traced = _traced_class(original, mixin)
        setattr(module, name, traced)
        ACTIVE.replaced.append((module, name, original, traced))
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
            if not _is_own(subclass.__module__) and subclass not in ACTIVE.traced_classes.values():
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
    return module_name.split(".", 1)[0] in ("confluent_kafka", "kafka_autotrace") or (
        module_name == UPSTREAM.module or module_name.startswith(f"{UPSTREAM.module}.")
    )


def restore_classes() -> None:
    """Put every replaced original back, unless someone replaced our class in turn."""
    while ACTIVE.replaced:
        module, name, original, traced = ACTIVE.replaced.pop()
        if module.__dict__.get(name) is traced:
            setattr(module, name, original)
        else:
            _logger.debug("kafka-autotrace: %s.%s was replaced again; left as is", module, name)


class ConfluentKafkaInstrumentor(KafkaClientInstrumentor):
    """Traces confluent-kafka producers and consumers, including the serializing and asyncio
    classes (entry point ``kafka_autotrace_confluent_kafka``)."""

    requirement = "confluent-kafka >= 2.0.2, < 3"
    entry_point = "kafka_autotrace_confluent_kafka"
    upstream = UPSTREAM

    def _patch(self, telemetry: KafkaTelemetry) -> None:
        import confluent_kafka

        ACTIVE.telemetry = telemetry
        replace_classes(
            (confluent_kafka, name, mixin)
            for name, mixin in (
                ("Producer", _TracedProducer),
                ("SerializingProducer", _TracedSerializingProducer),
                ("Consumer", _TracedConsumer),
                ("DeserializingConsumer", _TracedConsumer),
            )
        )
        # The asyncio classes are patched when their module is imported (now, if it is), so
        # applications that never use them do not pay for importing asyncio support. A hook
        # fires once; one still waiting from an earlier instrument() will do.
        for module in _AIO_MODULES:
            imported = module in sys.modules
            if imported or module not in ACTIVE.aio_hooks_waiting:
                if not imported:
                    ACTIVE.aio_hooks_waiting.add(module)
                register_post_import_hook(_AIO_HOOK, module)

    def _unpatch(self) -> None:
        ACTIVE.telemetry = None
        restore_classes()
