"""What every driver shares: the contract's vocabulary (records, acknowledgements, call
forms) and the :class:`Driver` base class."""

from __future__ import annotations

import importlib
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
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

T = TypeVar("T")
D = TypeVar("D", bound="Driver")

HEADERS = "headers"
"""Capability: the client's producer carries the caller's headers and adds ``traceparent``."""

CLUSTER_ID = "cluster id"
"""Capability: the client tells the id of its cluster from the metadata it holds, unasked."""

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

    @abstractmethod
    def send_to_partition(self, topic: str, value: bytes, partition: int) -> Ack:
        """Send one message to the partition the application chose, and wait for its ack."""

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
    def consumer_past_the_end(self, topic: str) -> Any:
        """A consumer of partition 0 of ``topic`` positioned past its end, with no reset
        policy: its receive calls fail (raise, or return an error in place of a record)."""

    @abstractmethod
    def receive_once(self, consumer: Any, method: str) -> None:
        """One call of the client's one-record (``next``) or batch call; what it raises is
        raised, what it returns is dropped."""

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


def driver_fixture(cls: type[D]) -> Any:
    """A ``driver`` fixture of ``cls`` alone, for a client's own tests outside the contract."""

    @pytest.fixture
    def driver(bootstrap: str) -> Iterator[D]:
        with cls(bootstrap) as made:
            yield made

    return driver
