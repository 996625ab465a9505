"""The kafka-python adapter: where its calls are and how to read its objects.

Patched at class level, so producers and consumers created before instrumentation are traced
too:

- ``KafkaProducer.send``: a ``send`` span, ended by the returned future's callbacks when the
  broker acknowledges (partition, offset) or fails the message. Should kafka-python reject the
  call with our headers in it where it might accept (or reject differently) the application's
  own (a TypeError; a record our headers push over ``max_request_size``), the call is made
  again exactly as the application made it, so the outcome is always the application's.
- ``KafkaConsumer.__next__``: a ``process`` span per record, current until the next call.
- ``KafkaConsumer.poll``: a ``poll`` span per non-empty batch; the returned lists then start a
  ``process`` span per record as the application iterates them.
- ``KafkaConsumer.close``: ends the open ``process`` span.

In kafka-python iteration is built on ``poll()``; the inner call is suppressed so that a
record gets one span, not two.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable

from opentelemetry.instrumentation.utils import is_instrumentation_enabled, unwrap
from wrapt import wrap_function_wrapper

from kafka_autotrace.batch import TracedRecords
from kafka_autotrace.calls import CallShape, call_as_made
from kafka_autotrace.instrumentor import KafkaClientInstrumentor, Upstream
from kafka_autotrace.model import ClientInfo, parse_bootstrap
from kafka_autotrace.scope import ConsumerScopes, is_suppressed, suppressed
from kafka_autotrace.telemetry import KafkaTelemetry, PendingSend

_logger = logging.getLogger(__name__)

_SEND = CallShape("topic", "value", "key", "headers", "partition", "timestamp_ms")
_TRACED_ARGUMENTS = ("topic", "value", "key", "headers", "partition")
_ABSENT = (None,) * len(_TRACED_ARGUMENTS)
_CLIENT_ATTR = "_kafka_autotrace_client"
_SCOPES_ATTR = "_kafka_autotrace_scopes"
_HEADERS_MIN_API = (0, 11)

Wrapper = Callable[[Callable[..., Any], Any, tuple[Any, ...], dict[str, Any]], Any]


class KafkaPythonRecordAccessor:
    """Reads ``kafka.consumer.fetcher.ConsumerRecord`` (a namedtuple in every 2.x/3.x)."""

    def topic(self, record: Any) -> str:
        return record.topic  # type: ignore[no-any-return]

    def partition(self, record: Any) -> int | None:
        return record.partition  # type: ignore[no-any-return]

    def offset(self, record: Any) -> int | None:
        return record.offset  # type: ignore[no-any-return]

    def key(self, record: Any) -> object:
        return record.key

    def value(self, record: Any) -> object:
        return record.value

    def headers(self, record: Any) -> object:
        return record.headers

    def timestamp_ms(self, record: Any) -> int | None:
        timestamp = record.timestamp
        return timestamp if isinstance(timestamp, int) and timestamp >= 0 else None


ACCESSOR = KafkaPythonRecordAccessor()


def client_info(client: Any) -> ClientInfo:
    """Attributes of a KafkaProducer/KafkaConsumer, read from its config once and cached."""
    info: ClientInfo | None = client.__dict__.get(_CLIENT_ATTR)
    if info is None:
        config = getattr(client, "config", {})
        address, port = parse_bootstrap(config.get("bootstrap_servers"))
        group = config.get("group_id")
        info = ClientInfo(
            client_id=config.get("client_id") or None,
            server_address=address,
            server_port=port,
            consumer_group=group if isinstance(group, str) else None,
        )
        client.__dict__[_CLIENT_ATTR] = info
    return info


def _scopes(consumer: Any) -> ConsumerScopes:
    scopes: ConsumerScopes | None = consumer.__dict__.get(_SCOPES_ATTR)
    if scopes is None:
        scopes = consumer.__dict__[_SCOPES_ATTR] = ConsumerScopes()
    return scopes


def _can_inject(producer: Any, headers: object) -> bool:
    """Whether kafka-python would accept headers we add, so that adding them never turns a
    valid call into a failing one (nor a failing one into a valid one: a tuple or a list
    subclass is left for kafka-python to reject exactly as it would without us)."""
    if headers is not None and type(headers) is not list:
        return False
    api_version = producer.config.get("api_version")
    return api_version is None or tuple(api_version) >= _HEADERS_MIN_API


def _send_arguments(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    """``_TRACED_ARGUMENTS`` of a send() call. Runs per message, so the usual all-positional
    call is read in one slice."""
    if not kwargs:
        return (args + _ABSENT)[: len(_TRACED_ARGUMENTS)]
    return tuple(_SEND.get(args, kwargs, name) for name in _TRACED_ARGUMENTS)


def _on_ack(pending: PendingSend, metadata: Any) -> None:
    pending.succeed(getattr(metadata, "partition", None), getattr(metadata, "offset", None))


def _on_error(pending: PendingSend, exception: BaseException) -> None:
    pending.fail_with(exception)


def _rejected(error: object) -> bool:
    """An error kafka-python raises while checking a send's arguments, before queueing."""
    from kafka.errors import MessageSizeTooLargeError

    return isinstance(error, (TypeError, MessageSizeTooLargeError))


def _send_traced(
    wrapped: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    traced_args: tuple[Any, ...],
    traced_kwargs: dict[str, Any],
) -> Any:
    """``send`` with our headers, or as the application made it when they alone would make
    kafka-python reject it (see :func:`~kafka_autotrace.calls.call_as_made`). kafka-python
    2.0.x reports a record over ``max_request_size`` with an already-failed future instead of
    raising."""
    future, as_made = call_as_made(wrapped, (args, kwargs), (traced_args, traced_kwargs), _rejected)
    if not as_made and getattr(future, "is_done", False) and _rejected(future.exception):
        return wrapped(*args, **kwargs)
    return future


def _send_wrapper(telemetry: KafkaTelemetry) -> Wrapper:
    def send(
        wrapped: Callable[..., Any], producer: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        if is_suppressed() or not is_instrumentation_enabled() or telemetry.sends_untouched():
            return wrapped(*args, **kwargs)
        pending = None
        call_args, call_kwargs = args, kwargs
        try:
            topic, value, key, headers, partition = _send_arguments(args, kwargs)
            pending = telemetry.start_send(
                client_info(producer), topic, key, value, partition, headers
            )
            if pending is not None and _can_inject(producer, headers):
                traced = telemetry.headers_for(pending, headers)
                call_args, call_kwargs = _SEND.replace(args, kwargs, "headers", traced)
        except Exception:
            _logger.debug("kafka-autotrace: preparing a send span failed", exc_info=True)
        if pending is None:
            return wrapped(*call_args, **call_kwargs)
        try:
            future = _send_traced(wrapped, args, kwargs, call_args, call_kwargs)
        except BaseException as exception:
            pending.fail_with(exception)
            raise
        if not pending.tracked:
            return future
        try:
            future.add_callback(_on_ack, pending)
            future.add_errback(_on_error, pending)
        except Exception:
            _logger.debug("kafka-autotrace: cannot follow a send future", exc_info=True)
            pending.succeed(None, None)
        return future

    return send


def _enter_process(telemetry: KafkaTelemetry, consumer: Any, record: Any) -> None:
    try:
        scope = telemetry.start_process(record, ACCESSOR, client_info(consumer))
        if scope is not None:
            _scopes(consumer).enter(scope)
    except Exception:
        _logger.debug("kafka-autotrace: starting a process span failed", exc_info=True)


def _next_wrapper(telemetry: KafkaTelemetry) -> Wrapper:
    def next_(
        wrapped: Callable[..., Any], consumer: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        if is_suppressed():
            return wrapped(*args, **kwargs)
        _scopes(consumer).finish()
        with suppressed():
            record = wrapped(*args, **kwargs)
        if is_instrumentation_enabled():
            _enter_process(telemetry, consumer, record)
        return record

    return next_


def _poll_wrapper(telemetry: KafkaTelemetry) -> Wrapper:
    def poll(
        wrapped: Callable[..., Any], consumer: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        if is_suppressed():
            return wrapped(*args, **kwargs)
        _scopes(consumer).finish()
        started_ns, started = time.time_ns(), time.perf_counter()
        batches = wrapped(*args, **kwargs)
        if not batches or not is_instrumentation_enabled():
            return batches
        try:
            _trace_batches(telemetry, consumer, batches, started_ns, started)
        except Exception:
            _logger.debug("kafka-autotrace: tracing a poll() batch failed", exc_info=True)
        return batches

    return poll


def _trace_batches(
    telemetry: KafkaTelemetry, consumer: Any, batches: Any, started_ns: int, started: float
) -> None:
    """Emit the poll span and, in place, make each partition's list start process spans."""
    records = [record for partition_records in batches.values() for record in partition_records]
    client = client_info(consumer)
    incoming = telemetry.record_poll(records, ACCESSOR, client, started_ns, started)
    if not telemetry.settings.batch_process_spans:
        return
    scopes = _scopes(consumer)
    offset = 0
    for partition, partition_records in batches.items():
        count = len(partition_records)
        batches[partition] = TracedRecords(
            partition_records,
            incoming[offset : offset + count],
            telemetry,
            ACCESSOR,
            client,
            scopes,
        )
        offset += count


def _close_wrapper(
    wrapped: Callable[..., Any], consumer: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    _scopes(consumer).finish()
    return wrapped(*args, **kwargs)


class KafkaPythonInstrumentor(KafkaClientInstrumentor):
    """Traces kafka-python producers and consumers (entry point
    ``kafka_autotrace_kafka_python``)."""

    requirement = "kafka-python >= 2.0.2, < 4"
    entry_point = "kafka_autotrace_kafka_python"
    upstream = Upstream(
        "opentelemetry.instrumentation.kafka",
        "KafkaInstrumentor",
        "kafka",
        "opentelemetry-instrumentation-kafka-python",
    )

    def _patch(self, telemetry: KafkaTelemetry) -> None:
        import kafka

        wrap_function_wrapper(kafka.KafkaProducer, "send", _send_wrapper(telemetry))
        wrap_function_wrapper(kafka.KafkaConsumer, "__next__", _next_wrapper(telemetry))
        wrap_function_wrapper(kafka.KafkaConsumer, "poll", _poll_wrapper(telemetry))
        wrap_function_wrapper(kafka.KafkaConsumer, "close", _close_wrapper)

    def _unpatch(self) -> None:
        try:
            import kafka
        except ImportError:
            return
        unwrap(kafka.KafkaProducer, "send")
        for method in ("__next__", "poll", "close"):
            unwrap(kafka.KafkaConsumer, method)
