"""One driver per client: each step of the contract suite, in that client's own API.

The contract tests say what every adapter must do; a driver only says how its client sends,
consumes and closes, so that the same assertions run for kafka-python, confluent-kafka and
``confluent_kafka.aio``. Where a client cannot do what a test needs, its driver names that in
``missing`` with the reason, and the test is skipped for it with that reason.

Records come back as :class:`Record`, the same for every client, and every call that hands
records to the application (``next_record``, ``batches``) runs where that application would
handle them: the calling thread for the synchronous clients, and for the aio client one
asyncio task that lives as long as the driver, as an application's consumer loop would. So
"the process span is current while handling" is checked in the task that awaited ``poll()``.
"""

from __future__ import annotations

import asyncio
import importlib
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Coroutine, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType, TracebackType
from typing import Any, Callable, ClassVar, TypeVar

import pytest
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.trace import Span, SpanContext
from support.broker import start_private_broker
from support.processes import free_port

from kafka_autotrace.aiokafka import AIOKafkaInstrumentor
from kafka_autotrace.confluent_kafka import ConfluentKafkaInstrumentor
from kafka_autotrace.kafka_python import KafkaPythonInstrumentor

T = TypeVar("T")
D = TypeVar("D", bound="Driver")

HEADERS = "headers"
"""Capability: the client's producer carries the caller's headers and adds ``traceparent``."""

CLIENT_ID = "contract-producer"
NOW_MS = int(time.time() * 1000)  # an old timestamp would let retention delete the message

HEADER_KINDS: Mapping[str, Any] = {
    "list": [("traceparent", b"stale"), ("app", b"1"), ("app", b"2")],
    "dict": {"app": b"1", "traceparent": b"stale"},
    "none": None,
}
"""Headers an application passes, by kind; a driver lists the kinds its client accepts."""

# kafka-python 2.0.x asserts on bad headers where 2.1+ raises TypeError.
BAD_HEADERS = (TypeError, AssertionError)


@dataclass(frozen=True)
class Ack:
    """Where the broker put an acknowledged message."""

    partition: int
    offset: int


@dataclass(frozen=True)
class Record:
    """A consumed record as every client's tests read it (no headers: ``[]``)."""

    value: Any
    key: Any
    headers: list[tuple[str, Any]]
    offset: int


@dataclass(frozen=True)
class Handled:
    """A record of a batch and the span that was current while the application handled it."""

    record: Record
    current: SpanContext


@dataclass(frozen=True)
class CallForm:
    """One way of calling the producer with headers: ``call(producer, topic, headers, ...)``
    sends ``value``."""

    id: str
    call: Callable[..., Any]
    value: bytes | None = b"v"


@dataclass(frozen=True)
class ConfluentCallForm(CallForm):
    """Also names the callback librdkafka reports the message to: the one passed in the call,
    or the producer's configured ``on_delivery``."""

    reported_to: str = "call"


@dataclass(frozen=True)
class InvalidCall:
    """A producer call the client rejects by raising: ``call(producer, topic)``."""

    id: str
    call: Callable[[Any, str], Any]
    raises: tuple[type[BaseException], ...] = (Exception,)
    config: Mapping[str, Any] = field(default_factory=dict)
    error_type: str | None = None
    """The span's error.type; None: the class name of what was raised."""
    sends: int = 1
    """Send spans the call makes, the rejected one included."""


@dataclass(frozen=True)
class Undelivered:
    """How the client told the application a message was lost (as error.type should name it),
    and how many sends the driver made to get there."""

    error_type: str
    sends: int


def write_untraced(bootstrap: str, topic: str, value: bytes, headers: list[Any]) -> None:
    """Put a record on the broker exactly as given, as another application's producer would.

    Written through ``confluent_kafka.Producer`` with instrumentation suppressed, whichever
    client is under test: it accepts every header value (kafka-python refuses None), and the
    record's headers are then only the hostile or forged ones a test chose.
    """
    import confluent_kafka

    producer = confluent_kafka.Producer({"bootstrap.servers": bootstrap})
    with suppress_instrumentation():
        producer.produce(topic, value, headers=headers)
    assert producer.flush(10) == 0


def current_span_context() -> SpanContext:
    """What the application sees as its current span, where this is called."""
    return trace.get_current_span().get_span_context()


class Driver(ABC):
    """The steps of the contract in one client's API; a context manager closing what it made."""

    name: ClassVar[str]
    instrumentor: ClassVar[type[Any]]
    entry_point: ClassVar[str]
    acks_on_flush: ClassVar[bool]
    """Whether acknowledgements reach the application only when it flushes, so that a send
    span can be seen still open before then."""
    call_forms: ClassVar[Sequence[CallForm]] = ()
    """Ways of calling the producer with headers, made by the driver's ``send_form(topic,
    form, headers) -> Ack``; none where HEADERS is missing."""
    header_kinds: ClassVar[Sequence[str]] = ()
    invalid_calls: ClassVar[Sequence[InvalidCall]] = ()
    missing: ClassVar[Mapping[str, str]] = {}
    """Capabilities the client lacks, with the reason: tests that need one skip with it."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.carrier: Driver = self
        """The traced driver whose producer propagates context: this one, unless its client's
        producer cannot carry headers."""
        self._shared: Any = None
        self._producers: list[Any] = []
        """The producers made, for ``shutdown`` to close where the client has them closed."""

    def _shared_producer(self) -> Any:
        """The producer sends use unless given one, made on first use."""
        if self._shared is None:
            self._shared = self.producer()
        return self._shared

    module: ClassVar[str]
    """The client's module, by name."""

    @classmethod
    def require(cls) -> ModuleType:
        """The client's module; ImportError where it is not installed here."""
        return importlib.import_module(cls.module)

    def __enter__(self: D) -> D:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.shutdown()

    @abstractmethod
    def shutdown(self) -> None:
        """Close the producers this driver made."""

    # -- producing ----------------------------------------------------------------------------

    @abstractmethod
    def producer(self, **config: Any) -> Any:
        """A new producer of the client; ``config`` in the client's own spelling."""

    @abstractmethod
    def produce(
        self, topic: str, value: bytes | None, key: bytes | None = None, producer: Any = None
    ) -> Callable[[], Ack]:
        """Send one message (with the driver's producer by default); returns what waits for
        its acknowledgement."""

    def send(
        self, topic: str, value: bytes | None, key: bytes | None = None, producer: Any = None
    ) -> Ack:
        """Send one message and wait until the broker acknowledged it."""
        return self.produce(topic, value, key, producer)()

    def attempt(self, invalid: InvalidCall, topic: str) -> BaseException:
        """Make ``invalid`` on a new producer; the exception it raised."""
        producer = self.producer(**invalid.config)
        with pytest.raises(invalid.raises) as raised:
            invalid.call(producer, topic)
        producer.flush(10)
        return raised.value

    @abstractmethod
    def undeliverable(self, tmp_path: Path) -> Undelivered:
        """Send a message no broker will ever acknowledge, checking the client reported it."""

    # -- consuming ----------------------------------------------------------------------------

    @abstractmethod
    def consumer(self, *topics: str, **config: Any) -> Any:
        """A consumer assigned to partition 0 of ``topics`` from the start: no group join, so
        tests stay fast. Its group is ``{first topic}-group``."""

    @abstractmethod
    def next_record(self, consumer: Any) -> Record:
        """The next record of the client's one-record call, as the application gets it."""

    @abstractmethod
    def poll_batch(self, consumer: Any, up_to: int, timeout: float) -> list[Handled]:
        """One call of the client's batch API, its records handled in turn."""

    def batches(self, consumer: Any, count: int) -> list[list[Handled]]:
        """Batch calls until ``count`` records came back: the batches that had records."""
        batches: list[list[Handled]] = []
        received = 0
        deadline = time.monotonic() + 10
        while received < count:
            assert time.monotonic() < deadline, f"only {received} of {count} records arrived"
            batch = self.poll_batch(consumer, count - received, 0.2)
            if batch:
                batches.append(batch)
                received += len(batch)
        return batches

    def close(self, consumer: Any) -> None:
        consumer.close()

    @abstractmethod
    def record(self, raw: Any) -> Record:
        """``raw``, a record as the client returns it (and hooks get it), read."""

    def read(self, topic: str, method: str = "next") -> Record:
        """The first record of ``topic``, taken by ``next_record`` or by ``batches``, by a
        consumer closed afterwards."""
        consumer = self.consumer(topic)
        try:
            if method == "next":
                return self.next_record(consumer)
            [[handled]] = self.batches(consumer, 1)
            return handled.record
        finally:
            self.close(consumer)

    # -- where the application runs -----------------------------------------------------------

    def in_app(self, function: Callable[[], T]) -> T:
        """``function`` run where the application handles records."""
        return function()

    def current(self) -> SpanContext:
        """The span current where the application handles records."""
        return self.in_app(current_span_context)

    @contextmanager
    def using(self, span: Span) -> Iterator[None]:
        """``span`` current where the application handles records, for the block."""
        token = self.in_app(lambda: otel_context.attach(trace.set_span_in_context(span)))
        try:
            yield
        finally:
            self.in_app(lambda: otel_context.detach(token))

    def elsewhere(self, operation: Callable[[], T]) -> T:
        """``operation``, calls of this driver, made away from where the application handles
        records: in another thread, whose context is its own."""
        with ThreadPoolExecutor(max_workers=1) as pool:
            return pool.submit(operation).result(timeout=30)

    @abstractmethod
    def patch_targets(self) -> tuple[list[Any], set[str]]:
        """The namespaces instrumentation patches, and the qualified names it replaces there."""


# -- kafka-python -----------------------------------------------------------------------------


def _producer_config(bootstrap: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """A kafka-python or aiokafka producer's configuration (the same spelling)."""
    return {"bootstrap_servers": bootstrap, "linger_ms": 0, "client_id": CLIENT_ID, **config}


def _consumer_config(bootstrap: str, topic: str) -> dict[str, Any]:
    """A kafka-python or aiokafka consumer's configuration: its group, read from the start,
    committing nothing."""
    return {
        "bootstrap_servers": bootstrap,
        "group_id": f"{topic}-group",
        "auto_offset_reset": "earliest",
        "enable_auto_commit": False,
    }


def _attribute_record(raw: Any) -> Record:
    """A kafka-python or aiokafka record, read: aiokafka gives its headers as a tuple."""
    return Record(raw.value, raw.key, list(raw.headers), raw.offset)


def _handled_by_partition(batches: Mapping[Any, list[Any]]) -> list[Handled]:
    """A ``{TopicPartition: [records]}`` batch iterated as an application would."""
    assert all(batches.values()), "a batch call leaves out partitions without records"
    return [
        Handled(_attribute_record(raw), current_span_context())
        for records in batches.values()
        for raw in records
    ]


def _kafka_python_ack(future: Any) -> Ack:
    metadata = future.get(timeout=10)
    return Ack(metadata.partition, metadata.offset)


class KafkaPython(Driver):
    """``KafkaProducer`` and ``KafkaConsumer``: one record by iteration, batches by poll()."""

    name = "kafka-python"
    module = "kafka"
    instrumentor = KafkaPythonInstrumentor
    entry_point = "kafka_autotrace_kafka_python"
    acks_on_flush = False  # its I/O thread acknowledges on its own, maybe before any check
    header_kinds = ("list", "none")  # kafka-python takes headers as a list only
    call_forms = (
        CallForm("positional", lambda p, t, h: p.send(t, b"v", b"k", h)),
        CallForm("keyword", lambda p, t, h: p.send(t, value=b"v", key=b"k", headers=h)),
        CallForm("tombstone", lambda p, t, h: p.send(t, None, b"k", h), value=None),
        CallForm("all-keyword", lambda p, t, h: p.send(topic=t, key=b"k", headers=h), value=None),
    )
    invalid_calls = (
        InvalidCall(
            "tuple-headers", lambda p, t: p.send(t, value=b"v", headers=(("a", b"1"),)), BAD_HEADERS
        ),
        InvalidCall(
            "str-header-value",
            lambda p, t: p.send(t, value=b"v", headers=[("a", "s")]),
            BAD_HEADERS,
        ),
        InvalidCall("no-key-no-value", lambda p, t: p.send(t), (ValueError, AssertionError)),
    )

    def __init__(self, bootstrap: str) -> None:
        super().__init__(bootstrap)
        self.kafka = self.require()

    def shutdown(self) -> None:
        for producer in self._producers:
            producer.close(timeout=5)

    def producer(self, **config: Any) -> Any:
        producer = self.kafka.KafkaProducer(**_producer_config(self.bootstrap, config))
        self._producers.append(producer)
        return producer

    def produce(
        self, topic: str, value: bytes | None, key: bytes | None = None, producer: Any = None
    ) -> Callable[[], Ack]:
        future = (producer or self._shared_producer()).send(topic, value, key=key)
        return lambda: _kafka_python_ack(future)

    def send_form(self, topic: str, form: CallForm, headers: Any) -> Ack:
        return _kafka_python_ack(form.call(self._shared_producer(), topic, headers))

    def undeliverable(self, tmp_path: Path) -> Undelivered:
        """To a broker stopped after the producer learned its metadata: without metadata,
        kafka-python would block in send() instead of queueing the message."""
        private = start_private_broker(tmp_path / "broker.log")
        timeouts = {"delivery_timeout_ms": 1500} if self.kafka.version.__version__ >= "2.1" else {}
        producer = self.producer(
            bootstrap_servers=private.bootstrap_servers,
            request_timeout_ms=1000,
            retry_backoff_ms=100,
            reconnect_backoff_max_ms=200,
            max_block_ms=2000,
            **timeouts,
        )
        try:
            producer.send("doomed", b"warm-up").get(timeout=10)
            private.stop()
            future = producer.send("doomed", b"lost")
            errors: list[BaseException] = []
            future.add_errback(errors.append)
            with pytest.raises(Exception) as raised:
                future.get(timeout=30)
        finally:
            private.stop()
            producer.close(timeout=1)
        assert errors == [raised.value], "the errback gets what get() raises"
        return Undelivered(type(raised.value).__qualname__, sends=2)

    def consumer(self, *topics: str, **config: Any) -> Any:
        consumer = self.kafka.KafkaConsumer(
            **_consumer_config(self.bootstrap, topics[0]), consumer_timeout_ms=10_000, **config
        )
        consumer.assign([self.kafka.TopicPartition(topic, 0) for topic in topics])
        return consumer

    def next_record(self, consumer: Any) -> Record:
        return self.record(next(consumer))

    def poll_batch(self, consumer: Any, up_to: int, timeout: float) -> list[Handled]:
        return _handled_by_partition(
            consumer.poll(timeout_ms=int(timeout * 1000), max_records=up_to)
        )

    def record(self, raw: Any) -> Record:
        return _attribute_record(raw)

    def patch_targets(self) -> tuple[list[Any], set[str]]:
        namespaces = [self.kafka.KafkaProducer, self.kafka.KafkaConsumer]
        return namespaces, {
            "KafkaProducer.send",
            "KafkaConsumer.__next__",
            "KafkaConsumer.poll",
            "KafkaConsumer.close",
        }


# -- confluent-kafka --------------------------------------------------------------------------


def _confluent_producer_config(bootstrap: str, config: Mapping[str, Any]) -> dict[str, Any]:
    return {"bootstrap.servers": bootstrap, "linger.ms": 0, "client.id": CLIENT_ID, **config}


def _confluent_consumer_config(
    bootstrap: str, topic: str, config: Mapping[str, Any]
) -> dict[str, Any]:
    return {
        "bootstrap.servers": bootstrap,
        "group.id": f"{topic}-group",
        "enable.auto.commit": False,
        **config,
    }


def _from_the_start(topics: Sequence[str]) -> list[Any]:
    import confluent_kafka

    return [confluent_kafka.TopicPartition(t, 0, confluent_kafka.OFFSET_BEGINNING) for t in topics]


def _confluent_record(message: Any) -> Record:
    return Record(message.value(), message.key(), message.headers() or [], message.offset())


def _handled(messages: list[Any]) -> list[Handled]:
    """``messages`` iterated as an application would, error events skipped."""
    return [
        Handled(_confluent_record(message), current_span_context())
        for message in messages
        if message.error() is None
    ]


def _next_message(poll: Callable[[float], Any]) -> Record:
    """The next message ``poll`` returns, error events skipped, as an application gets it."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        message = poll(0.5)
        if message is not None and message.error() is None:
            return _confluent_record(message)
    raise AssertionError("no message within 10 s")


def unreachable() -> dict[str, Any]:
    """A confluent-kafka producer configuration with nothing to reach, whose messages time out
    quickly."""
    return {"bootstrap.servers": f"127.0.0.1:{free_port()}", "message.timeout.ms": 300}


def _after_one_queued(value: bytes) -> Callable[[Any, str], Any]:
    """produce() of ``value`` behind a message already queued, as the queue-full case needs."""

    def call(producer: Any, topic: str) -> Any:
        producer.produce(topic, b"fills the queue")
        return producer.produce(topic, value)

    return call


class ConfluentKafka(Driver):
    """``Producer`` and ``Consumer``: one message by poll(), batches by consume(n)."""

    name = "confluent-kafka"
    module = "confluent_kafka"
    instrumentor = ConfluentKafkaInstrumentor
    entry_point = "kafka_autotrace_confluent_kafka"
    acks_on_flush = True
    header_kinds = ("list", "dict", "none")
    call_forms = (
        ConfluentCallForm("pos", lambda p, t, h, cb: p.produce(t, b"v", b"k", 0, cb, None, 0, h)),
        ConfluentCallForm(
            "callback", lambda p, t, h, cb: p.produce(t, b"v", b"k", callback=cb, headers=h)
        ),
        ConfluentCallForm(
            "all-keyword",
            lambda p, t, h, cb: p.produce(
                topic=t,
                key=b"k",
                value=b"v",
                partition=0,
                timestamp=NOW_MS,
                headers=h,
                on_delivery=cb,
            ),
        ),
        # librdkafka ignores on_delivery when callback is passed, even as None.
        ConfluentCallForm(
            "none-callback-then-on-delivery",
            lambda p, t, h, cb: p.produce(t, b"v", b"k", -1, None, cb, 0, h),
            reported_to="config",
        ),
    )
    invalid_calls = (
        InvalidCall(
            "queue-full",
            _after_one_queued(b"v"),
            config={"queue.buffering.max.messages": 1},
            error_type="BufferError",
            sends=2,
        ),
        InvalidCall(
            "size",
            _after_one_queued(b"x" * 4000),
            config={"message.max.bytes": 1000},
            error_type="MSG_SIZE_TOO_LARGE",
            sends=2,
        ),
    )

    def __init__(self, bootstrap: str) -> None:
        super().__init__(bootstrap)
        self.confluent_kafka = self.require()

    def shutdown(self) -> None:
        """Nothing to do: a confluent_kafka.Producer has nothing to close."""

    def producer(self, **config: Any) -> Any:
        return self.confluent_kafka.Producer(_confluent_producer_config(self.bootstrap, config))

    def produce(
        self, topic: str, value: bytes | None, key: bytes | None = None, producer: Any = None
    ) -> Callable[[], Ack]:
        producer = producer or self._shared_producer()
        reports: list[tuple[Any, Any]] = []
        producer.produce(topic, value, key, on_delivery=lambda e, m: reports.append((e, m)))

        def ack() -> Ack:
            assert producer.flush(10) == 0
            [(error, message)] = reports
            assert error is None, error
            return Ack(message.partition(), message.offset())

        return ack

    def send_form(self, topic: str, form: ConfluentCallForm, headers: Any) -> Ack:
        """Also checks the message was reported to the callback librdkafka would call."""
        reports: list[tuple[str, Any, Any]] = []
        producer = self.producer(on_delivery=lambda e, m: reports.append(("config", e, m)))
        form.call(producer, topic, headers, lambda e, m: reports.append(("call", e, m)))
        assert producer.flush(10) == 0
        [(reported_to, error, message)] = reports
        assert (reported_to, error) == (form.reported_to, None)
        return Ack(message.partition(), message.offset())

    def undeliverable(self, tmp_path: Path) -> Undelivered:
        producer = self.producer(**unreachable(), log_level=0)
        reports: list[tuple[Any, Any]] = []
        producer.produce("doomed", b"lost", on_delivery=lambda e, m: reports.append((e, m.value())))
        assert producer.flush(10) == 0
        [(error, value)] = reports
        assert (error.name(), value) == ("_MSG_TIMED_OUT", b"lost")
        return Undelivered(error.name(), sends=1)

    def consumer(self, *topics: str, cls: Any = None, **config: Any) -> Any:
        """``cls``: Consumer by default, or the DeserializingConsumer."""
        consumer = (cls or self.confluent_kafka.Consumer)(
            _confluent_consumer_config(self.bootstrap, topics[0], config)
        )
        consumer.assign(_from_the_start(topics))
        return consumer

    def next_record(self, consumer: Any) -> Record:
        return _next_message(consumer.poll)

    def poll_batch(self, consumer: Any, up_to: int, timeout: float) -> list[Handled]:
        return _handled(consumer.consume(up_to, timeout))

    def record(self, raw: Any) -> Record:
        return _confluent_record(raw)

    def patch_targets(self) -> tuple[list[Any], set[str]]:
        names = ("Producer", "SerializingProducer", "Consumer", "DeserializingConsumer")
        return [self.confluent_kafka], {f"confluent_kafka.{name}" for name in names}


# -- confluent_kafka.aio ----------------------------------------------------------------------


def aio_module() -> ModuleType:
    """``confluent_kafka.aio``: ``confluent_kafka.experimental.aio`` in 2.12, absent before."""
    try:
        return importlib.import_module("confluent_kafka.aio")
    except ImportError:
        return importlib.import_module("confluent_kafka.experimental.aio")


class AsyncDriver(Driver):
    """A driver of an asyncio client: each call awaited in the driver's own event loop.

    Every operation (and any coroutine a test passes to ``run``) is awaited in one long-lived
    task, ``_app``, so a process span the adapter made current there after an awaited receive
    is still current for the next operation, exactly as in an application's consumer task;
    ``elsewhere`` awaits operations in tasks of their own.
    """

    def __init__(self, bootstrap: str) -> None:
        super().__init__(bootstrap)
        self._loop = asyncio.new_event_loop()
        self._inbox: asyncio.Queue[tuple[Awaitable[Any], asyncio.Future[Any]]]
        self._app = self._loop.run_until_complete(self._start())
        self._fresh_tasks = False

    async def _start(self) -> asyncio.Task[None]:
        self._inbox = asyncio.Queue()
        return asyncio.create_task(self._serve())

    async def _serve(self) -> None:
        """The application's task: awaits each operation it is given, in order."""
        while True:
            operation, done = await self._inbox.get()
            try:
                done.set_result(await operation)
            except asyncio.CancelledError:
                raise
            except BaseException as error:  # pytest's outcomes too, or the test would hang
                done.set_exception(error)

    def run(self, operation: Coroutine[Any, Any, T]) -> T:
        """Await ``operation`` in the application's task, or in a new one ``elsewhere``."""
        if self._fresh_tasks:
            return self._loop.run_until_complete(operation)
        done: asyncio.Future[T] = self._loop.create_future()
        self._inbox.put_nowait((operation, done))
        return self._loop.run_until_complete(done)

    def _close_loop(self) -> None:
        """End the application's task and the loop, once the driver closed its clients."""
        self._app.cancel()
        self._loop.run_until_complete(asyncio.gather(self._app, return_exceptions=True))
        self._loop.close()

    @abstractmethod
    async def _new_producer(self, config: Mapping[str, Any]) -> Any:
        """A producer made in the loop, as the client's producers use the running loop."""

    def producer(self, **config: Any) -> Any:
        return self.run(self._new_producer(config))

    def attempt(self, invalid: InvalidCall, topic: str) -> BaseException:
        async def attempt() -> BaseException:
            producer = await self._new_producer(invalid.config)
            with pytest.raises(invalid.raises) as raised:
                await invalid.call(producer, topic)
            await producer.flush()
            return raised.value

        return self.run(attempt())

    def in_app(self, function: Callable[[], T]) -> T:
        async def call() -> T:
            return function()

        return self.run(call())

    def elsewhere(self, operation: Callable[[], T]) -> T:
        """``operation``, calls of this driver, each awaited in a task of its own."""
        self._fresh_tasks = True
        try:
            return operation()
        finally:
            self._fresh_tasks = False


class ConfluentAio(AsyncDriver):
    """``AIOProducer`` and ``AIOConsumer``: one message by poll(), batches by consume(n)."""

    name = "confluent-kafka-aio"
    instrumentor = ConfluentKafkaInstrumentor
    entry_point = "kafka_autotrace_confluent_kafka"
    acks_on_flush = True
    invalid_calls = (
        InvalidCall(
            "headers",
            lambda p, t: p.produce(t, b"v", headers=[("app", b"1")]),
            (NotImplementedError,),
        ),
    )
    missing: ClassVar[Mapping[str, str]] = {
        HEADERS: "AIOProducer sends through produce_batch(), which cannot carry headers: it "
        "raises NotImplementedError when given some and adds none (test_confluent_kafka_aio.py); "
        "the contract tests that need context propagated send with the driver's carrier, "
        "a traced confluent_kafka.Producer",
    }

    def __init__(self, bootstrap: str) -> None:
        super().__init__(bootstrap)
        self.aio = self.require()
        self.carrier = ConfluentKafka(bootstrap)

    @classmethod
    def require(cls) -> ModuleType:
        return aio_module()

    def shutdown(self) -> None:
        for producer in self._producers:
            self.run(producer.close())
        self._close_loop()
        self.carrier.shutdown()

    # -- producing ----------------------------------------------------------------------------

    async def _new_producer(self, config: Mapping[str, Any]) -> Any:
        """Made in the loop, as AIOProducer takes the running loop for its futures."""
        producer = self.aio.AIOProducer(
            _confluent_producer_config(self.bootstrap, config), buffer_timeout=0.05
        )
        self._producers.append(producer)
        return producer

    def produce(
        self, topic: str, value: bytes | None, key: bytes | None = None, producer: Any = None
    ) -> Callable[[], Ack]:
        producer = producer or self._shared_producer()
        future = self.run(producer.produce(topic, value, key))
        return lambda: self.run(self._acked(producer, future))

    async def _acked(self, producer: Any, future: asyncio.Future[Any]) -> Ack:
        await producer.flush()  # 2.12 resolves futures only on flush
        message = await asyncio.wait_for(future, 10)
        return Ack(message.partition(), message.offset())

    def undeliverable(self, tmp_path: Path) -> Undelivered:
        async def lost() -> Any:
            producer = await self._new_producer({**unreachable(), "log_level": 0})
            future = await producer.produce("doomed", b"lost")
            await producer.flush()
            return future.exception()

        error = self.run(lost()).args[0]
        assert error.name() == "_MSG_TIMED_OUT"
        return Undelivered(error.name(), sends=1)

    # -- consuming ----------------------------------------------------------------------------

    async def _new_consumer(
        self, topics: Sequence[str], cls: Any, config: Mapping[str, Any]
    ) -> Any:
        consumer = cls(_confluent_consumer_config(self.bootstrap, topics[0], config))
        if asyncio.iscoroutine(consumer):  # the asyncio deserializing class is awaited
            consumer = await consumer
        await consumer.assign(_from_the_start(topics))
        return consumer

    def consumer(self, *topics: str, cls: Any = None, **config: Any) -> Any:
        """``cls``: AIOConsumer by default, or the AsyncDeserializingConsumer."""
        return self.run(self._new_consumer(topics, cls or self.aio.AIOConsumer, config))

    def next_record(self, consumer: Any) -> Record:
        return _next_message(lambda timeout: self.run(consumer.poll(timeout)))

    def poll_batch(self, consumer: Any, up_to: int, timeout: float) -> list[Handled]:
        async def consume() -> list[Handled]:
            return _handled(await consumer.consume(up_to, timeout))

        return self.run(consume())

    def close(self, consumer: Any) -> None:
        self.run(consumer.close())

    def record(self, raw: Any) -> Record:
        return _confluent_record(raw)

    def patch_targets(self) -> tuple[list[Any], set[str]]:
        namespaces = [self.aio, self.aio.producer]
        names = (
            "AIOProducer",
            "AIOConsumer",
            "AsyncSerializingProducer",
            "AsyncDeserializingConsumer",
        )
        # Releases differ in which of the classes they have.
        return namespaces, {
            f"{ns.__name__}.{name}" for ns in namespaces for name in names if name in vars(ns)
        }


# -- aiokafka ---------------------------------------------------------------------------------


async def _aiokafka_ack(sent: Awaitable[Any]) -> Ack:
    """The acknowledgement of a send call: ``send()`` gives a future to await as well,
    ``send_and_wait()`` the RecordMetadata itself."""
    result = await sent
    metadata = await asyncio.wait_for(result, 10) if asyncio.isfuture(result) else result
    return Ack(metadata.partition, metadata.offset)


class AIOKafka(AsyncDriver):
    """``AIOKafkaProducer`` and ``AIOKafkaConsumer``: one record by getone(), batches by
    getmany()."""

    name = "aiokafka"
    module = "aiokafka"
    instrumentor = AIOKafkaInstrumentor
    entry_point = "kafka_autotrace_aiokafka"
    acks_on_flush = False  # its sender task acknowledges on its own, maybe before any check
    header_kinds = ("list", "none")  # aiokafka rejects a dict with TypeError
    call_forms = (
        CallForm("positional", lambda p, t, h: p.send(t, b"v", b"k", None, None, h)),
        CallForm("keyword", lambda p, t, h: p.send(t, value=b"v", key=b"k", headers=h)),
        CallForm("tombstone", lambda p, t, h: p.send(t, None, b"k", headers=h), value=None),
        CallForm("all-keyword", lambda p, t, h: p.send(topic=t, key=b"k", headers=h), value=None),
        CallForm("send-and-wait", lambda p, t, h: p.send_and_wait(t, b"v", b"k", headers=h)),
    )
    invalid_calls = (
        InvalidCall("no-key-no-value", lambda p, t: p.send(t), (AssertionError,)),
        InvalidCall(
            "str-header-value", lambda p, t: p.send(t, b"v", headers=[("a", "s")]), (TypeError,)
        ),
        InvalidCall(
            "dict-headers", lambda p, t: p.send(t, b"v", headers={"a": b"1"}), (TypeError,)
        ),
        InvalidCall(
            "size",
            lambda p, t: p.send(t, b"x" * 4000),
            (Exception,),
            config={"max_request_size": 1000},
        ),
    )

    def __init__(self, bootstrap: str) -> None:
        super().__init__(bootstrap)
        self.aiokafka = self.require()

    def shutdown(self) -> None:
        for producer in self._producers:
            self.run(producer.stop())
        self._close_loop()

    # -- producing ----------------------------------------------------------------------------

    async def _new_producer(self, config: Mapping[str, Any]) -> Any:
        """Made and started in the loop, whose tasks send its batches."""
        producer = self.aiokafka.AIOKafkaProducer(**_producer_config(self.bootstrap, config))
        await producer.start()
        self._producers.append(producer)
        return producer

    def produce(
        self, topic: str, value: bytes | None, key: bytes | None = None, producer: Any = None
    ) -> Callable[[], Ack]:
        future = self.run((producer or self._shared_producer()).send(topic, value, key=key))

        async def acked() -> Any:
            return future

        return lambda: self.run(_aiokafka_ack(acked()))

    def send_form(self, topic: str, form: CallForm, headers: Any) -> Ack:
        return self.run(_aiokafka_ack(form.call(self._shared_producer(), topic, headers)))

    def undeliverable(self, tmp_path: Path) -> Undelivered:
        """To a broker stopped after the producer learned its metadata: without metadata,
        send() would wait for it instead of queueing the message."""
        private = start_private_broker(tmp_path / "broker.log")

        async def lost() -> BaseException:
            producer = await self._new_producer(
                {
                    "bootstrap_servers": private.bootstrap_servers,
                    "request_timeout_ms": 1000,
                    "retry_backoff_ms": 100,
                }
            )
            await _aiokafka_ack(producer.send("doomed", b"warm-up"))
            private.stop()
            future = await producer.send("doomed", b"lost")
            with pytest.raises(self.aiokafka.errors.KafkaError) as raised:
                await asyncio.wait_for(future, 30)
            return raised.value

        try:
            error = self.run(lost())
        finally:
            private.stop()
        return Undelivered(type(error).__qualname__, sends=2)

    # -- consuming ----------------------------------------------------------------------------

    async def _new_consumer(self, topics: Sequence[str], config: Mapping[str, Any]) -> Any:
        consumer = self.aiokafka.AIOKafkaConsumer(
            **_consumer_config(self.bootstrap, topics[0]), **config
        )
        await consumer.start()
        consumer.assign([self.aiokafka.TopicPartition(topic, 0) for topic in topics])
        return consumer

    def consumer(self, *topics: str, **config: Any) -> Any:
        return self.run(self._new_consumer(topics, config))

    def next_record(self, consumer: Any) -> Record:
        async def next_record() -> Record:
            # Awaited here, not in wait_for()'s task: the span must be current in this one.
            return self.record(await consumer.getone())

        return self.run(next_record())

    def poll_batch(self, consumer: Any, up_to: int, timeout: float) -> list[Handled]:
        async def poll() -> list[Handled]:
            return _handled_by_partition(
                await consumer.getmany(timeout_ms=int(timeout * 1000), max_records=up_to)
            )

        return self.run(poll())

    def close(self, consumer: Any) -> None:
        self.run(consumer.stop())

    def record(self, raw: Any) -> Record:
        return _attribute_record(raw)

    def patch_targets(self) -> tuple[list[Any], set[str]]:
        namespaces = [self.aiokafka.AIOKafkaProducer, self.aiokafka.AIOKafkaConsumer]
        return namespaces, {
            "AIOKafkaProducer.send",
            "AIOKafkaConsumer.getone",
            "AIOKafkaConsumer.getmany",
            "AIOKafkaConsumer.stop",
        }


def driver_fixture(cls: type[D]) -> Any:
    """A ``driver`` fixture of ``cls`` alone, for a client's own tests outside the contract."""

    @pytest.fixture
    def driver(bootstrap: str) -> Iterator[D]:
        with cls(bootstrap) as made:
            yield made

    return driver


DRIVERS: Mapping[str, type[Driver]] = {
    driver.name: driver for driver in (KafkaPython, ConfluentKafka, ConfluentAio, AIOKafka)
}
