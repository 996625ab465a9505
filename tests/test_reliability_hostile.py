"""Hostile input, generated: headers and call forms no test author would think of.

Headers come from outside the process and call arguments from someone else's code, so the
instrumentation must treat both as arbitrary. For every generated case: no exception leaves
the instrumentation (nor is one swallowed inside it: an internal failure means a message went
untraced), the caller's header container is untouched, and the client call returns or raises
exactly what the uninstrumented call does with the same arguments.

Each test counts the cases Hypothesis generated and prints the count (``pytest -s``).
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Callable

import aiokafka
import confluent_kafka
import kafka
import pytest
from confluent_kafka.cimpl import Producer as UntracedProducer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.context import Context
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from opentelemetry.trace import get_current_span
from support.otel import RecordingSdk, instrumented

from kafka_autotrace.aiokafka import AIOKafkaInstrumentor
from kafka_autotrace.confluent_kafka import ConfluentKafkaInstrumentor
from kafka_autotrace.core.client import ClientInfo
from kafka_autotrace.core.propagation import extract_context, header_items, merge_headers
from kafka_autotrace.core.settings import IncomingContext, Settings
from kafka_autotrace.core.telemetry import KafkaTelemetry
from kafka_autotrace.kafka_python import KafkaPythonInstrumentor

TRACE_KEYS = ("traceparent", "tracestate", "baggage")
INJECTED = {"traceparent": b"00-" + b"1" * 32 + b"-" + b"2" * 16 + b"-01"}
PROPERTY_CASES = 400
CLIENT_CASES = 250
AIOKAFKA_CASES = 100
"""Fewer for aiokafka: each of its sends to an odd topic waits out a metadata timeout, twice."""

_settings = settings(
    max_examples=PROPERTY_CASES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# -- strategies ---------------------------------------------------------------------------------


def mostly(usual: st.SearchStrategy[Any], odd: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``usual`` four times in five, else ``odd``: calls should mostly get past the client's
    own argument checks, or the paths behind them would hardly be exercised."""
    return st.sampled_from([True, True, True, True, False]).flatmap(
        lambda usual_one: usual if usual_one else odd
    )


traceparents = st.builds(
    lambda version, trace_id, span_id, flags: (
        f"{version:02x}-{trace_id:032x}-{span_id:016x}-{flags:02x}".encode()
    ),
    st.sampled_from([0, 0, 0, 1, 0xFF]),
    st.one_of(st.just(0), st.integers(1, 2**128 - 1)),
    st.one_of(st.just(0), st.integers(1, 2**64 - 1)),
    st.sampled_from([0, 1, 3, 0xFF]),
)
huge = st.builds(
    lambda chunk, times: chunk * times,
    st.binary(min_size=1, max_size=4),
    st.integers(10_000, 120_000),
)
byte_values = st.one_of(
    st.binary(max_size=40),
    traceparents,
    st.just(b"\xff\xfe\xfd"),
    st.just(b"tenant=\xff, k=v;p=1"),
    huge,
)


def text(max_size: int) -> st.SearchStrategy[str]:
    """Any text but lone surrogates: confluent-kafka 2.16 segfaults on a header name holding one,
    instrumented or not, so no test can compare its behaviour with ours on them."""
    return st.text(st.characters(exclude_categories=("Cs",)), max_size=max_size)


odd_values = st.one_of(
    st.none(),
    traceparents.map(bytes.decode),
    text(max_size=20),
    st.integers(),
    st.builds(bytearray, st.binary(max_size=8)),
)
header_keys = st.one_of(st.sampled_from(TRACE_KEYS), text(max_size=12))
odd_keys = st.one_of(st.binary(max_size=6), st.none(), st.integers())
valid_items = st.tuples(header_keys, byte_values)
odd_items = st.one_of(
    st.tuples(st.sampled_from(TRACE_KEYS), odd_values),
    st.tuples(mostly(header_keys, odd_keys), mostly(byte_values, odd_values)),
    st.tuples(header_keys),
    st.tuples(header_keys, byte_values, byte_values),
    st.lists(st.one_of(header_keys, byte_values), min_size=2, max_size=2),
    st.none(),
    text(max_size=3),
)
header_containers = st.one_of(
    st.none(),
    st.lists(valid_items, max_size=6),
    # One odd item among good ones: the item alone decides whether the client rejects the call.
    st.tuples(st.lists(valid_items, max_size=3), odd_items, st.lists(valid_items, max_size=2)).map(
        lambda parts: [*parts[0], parts[1], *parts[2]]
    ),
    st.lists(st.one_of(valid_items, odd_items), min_size=1, max_size=6),
    st.one_of(
        st.dictionaries(mostly(header_keys, odd_keys), mostly(byte_values, odd_values), max_size=5),
        st.lists(valid_items, max_size=4).map(tuple),
        text(max_size=5),
        st.binary(max_size=5),
        st.integers(),
    ),
)
payloads = mostly(
    st.binary(max_size=32),
    st.one_of(
        st.none(),
        text(max_size=8),
        st.integers(),
        st.builds(bytearray, st.binary(max_size=8)),
        st.builds(memoryview, st.binary(max_size=8)),
    ),
)


@dataclass(frozen=True)
class Call:
    """One way of calling a client method: the same arguments, split between positions and
    keywords (some left out), perhaps with an argument the method does not take."""

    args: tuple[Any, ...]
    kwargs: dict[str, Any]


def calls(parameters: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[Call]:
    names = list(parameters)

    @st.composite
    def build(draw: Callable[[st.SearchStrategy[Any]], Any]) -> Call:
        values = {name: draw(strategy) for name, strategy in parameters.items()}
        positional = draw(st.integers(0, len(names)))
        kwargs = {
            name: values[name]
            for name in names[positional:]
            if draw(mostly(st.just(True), st.just(False)))
        }
        if draw(mostly(st.just(False), st.just(True))) and draw(st.booleans()):
            kwargs["unexpected"] = 1
        return Call(tuple(values[name] for name in names[:positional]), kwargs)

    return build()


# -- helpers ------------------------------------------------------------------------------------


class InternalErrors(logging.Handler):
    """Log records with a traceback from kafka-autotrace: failures it swallowed."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info:
            self.records.append(record)


@pytest.fixture
def internal_errors() -> Iterator[InternalErrors]:
    handler = InternalErrors()
    logger = logging.getLogger("kafka_autotrace")
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


def outcome(call: Callable[[], Any]) -> tuple[str, Any]:
    """What the application sees: ("returned", value) or ("raised", type, message)."""
    try:
        return ("returned", call())
    except Exception as error:
        return ("raised", (type(error), str(error)))


def snapshot(headers: object) -> object:
    """A deep copy to compare against, or the object itself when it cannot be copied."""
    try:
        return copy.deepcopy(headers)
    except Exception:
        return headers


def report(name: str, cases: int, wanted: int) -> None:
    """Print the count; fewer than half of ``max_examples`` would mean the strategies starve."""
    print(f"\n{name}: {cases} generated cases")
    assert cases >= wanted // 2, f"only {cases} of {wanted} cases ran"


# -- propagation and the core -------------------------------------------------------------------


def replaceable(item: object) -> bool:
    """A stale header that merge_headers may drop: a well-formed pair under a propagator key.
    Any other item must stay, for the client to accept or reject as it would without us."""
    return (
        isinstance(item, tuple)
        and len(item) == 2
        and item[0] in INJECTED
        and isinstance(item[1], bytes)
    )


def test_propagation_never_raises_and_never_mutates(internal_errors: InternalErrors) -> None:
    cases = 0
    ours = get_current_span(extract_context(INJECTED)).get_span_context()

    @_settings
    @given(header_containers)
    def check(headers: object) -> None:
        nonlocal cases
        cases += 1
        before = snapshot(headers)
        assert all(isinstance(key, str) for key, _ in header_items(headers))
        assert isinstance(extract_context(headers), Context)
        merged = merge_headers(headers, INJECTED)
        assert headers == before, "the caller's headers were mutated"
        if headers is None:
            assert merged == list(INJECTED.items())
        elif isinstance(headers, list):
            kept = [item for item in headers if not replaceable(item)]
            assert merged == [*kept, *INJECTED.items()]
        elif isinstance(headers, dict) and merged is not headers:
            kept = {key: value for key, value in headers.items() if key not in INJECTED}
            assert merged == {**kept, **INJECTED}
        elif isinstance(headers, dict):
            assert not all(replaceable((key, headers.get(key, b""))) for key in INJECTED)
        else:
            assert merged is headers, "a container the client rejects must reach it unchanged"
        if merged is not headers:
            read = get_current_span(extract_context(merged)).get_span_context()
            assert read == ours, "a stale header won over the one we wrote"

    check()
    report("propagation", cases, PROPERTY_CASES)
    assert internal_errors.records == []


@dataclass
class FakeRecord:
    topic: str
    headers: object
    key: object
    value: object
    partition: object
    offset: object
    timestamp: object


class FakeAccessor:
    """Reads whatever a broken client might hand over, as an adapter's accessor would."""

    def topic(self, record: FakeRecord) -> str:
        return record.topic

    def partition(self, record: FakeRecord) -> Any:
        return record.partition

    def offset(self, record: FakeRecord) -> Any:
        return record.offset

    def key(self, record: FakeRecord) -> object:
        return record.key

    def value(self, record: FakeRecord) -> object:
        return record.value

    def headers(self, record: FakeRecord) -> object:
        return record.headers

    def timestamp_ms(self, record: FakeRecord) -> Any:
        return record.timestamp


records = st.builds(
    FakeRecord,
    topic=st.sampled_from(["orders", "audit.x"]),
    headers=header_containers,
    key=payloads,
    value=payloads,
    partition=st.one_of(st.none(), st.integers(-1, 100)),
    offset=st.one_of(st.none(), st.integers(-1, 2**63 - 1)),
    timestamp=st.one_of(st.none(), st.integers(-1, 2**45)),
)


def test_consumer_side_never_raises_on_any_record(internal_errors: InternalErrors) -> None:
    sdk = RecordingSdk()
    telemetries = [
        KafkaTelemetry(
            sdk.tracer_provider.get_tracer("test"),
            sdk.meter_provider.get_meter("test"),
            Settings(
                incoming_context=mode,
                capture_headers=("traceparent", "app", ""),
                capture_body_size=True,
                exclude_topics=("audit.*",),
            ),
        )
        for mode in IncomingContext
    ]
    cases = 0

    @_settings
    @given(st.lists(records, min_size=1, max_size=4))
    def check(batch: list[FakeRecord]) -> None:
        nonlocal cases
        cases += 1
        for telemetry in telemetries:
            incoming = telemetry.record_poll(batch, FakeAccessor(), ClientInfo(), 0, 0.0)
            assert len(incoming) == len(batch)
            for record, context in zip(batch, incoming):
                for given_context in (context, None):
                    scope = telemetry.start_process(
                        record, FakeAccessor(), ClientInfo(), incoming=given_context
                    )
                    if scope is not None:
                        scope.end()

    check()
    report("consumer side", cases, PROPERTY_CASES)
    assert internal_errors.records == []
    assert sdk.open_spans.names() == []


# -- kafka-python --------------------------------------------------------------------------------


def kafka_python_sends(topic: str) -> st.SearchStrategy[Call]:
    return calls(
        {
            "topic": mostly(st.just(topic), st.sampled_from([None, 7, b"bytes", "", "bad topic!"])),
            "value": payloads,
            "key": payloads,
            "headers": header_containers,
            "partition": mostly(st.sampled_from([None, 0]), st.sampled_from([1, -1, "0"])),
            "timestamp_ms": st.one_of(st.none(), st.integers(0, 2**41)),
        }
    )


def future_outcome(result: tuple[str, Any]) -> tuple[str, Any]:
    """Replace a returned future by how it ended, which is what the application observes."""
    kind, value = result
    if kind == "returned" and isinstance(value, kafka.producer.future.FutureRecordMetadata):
        assert value.is_done, "flush() returned with a future still pending"
        return ("future", None if value.succeeded() else type(value.exception))
    return result


def test_kafka_python_send_behaves_exactly_as_uninstrumented(
    bootstrap: str, topic: str, internal_errors: InternalErrors
) -> None:
    producer = kafka.KafkaProducer(bootstrap_servers=bootstrap, max_block_ms=5000)
    producer.send(topic, b"warm-up").get(timeout=10)
    original_send = kafka.KafkaProducer.__dict__["send"]
    cases = 0
    try:
        with instrumented(KafkaPythonInstrumentor()) as sdk:

            @settings(_settings, max_examples=CLIENT_CASES)
            @given(kafka_python_sends(topic))
            def check(call: Call) -> None:
                nonlocal cases
                cases += 1
                headers = call.kwargs.get("headers", call.args[3] if len(call.args) > 3 else None)
                before = snapshot(headers)
                traced = outcome(lambda: producer.send(*call.args, **call.kwargs))
                plain = outcome(lambda: original_send(producer, *call.args, **call.kwargs))
                producer.flush(timeout=10)
                assert future_outcome(traced) == future_outcome(plain)
                assert headers == before, "the caller's headers were mutated"
                assert sdk.open_spans.names() == []

            check()
    finally:
        producer.close(timeout=5)
    report("kafka-python send", cases, CLIENT_CASES)
    assert internal_errors.records == []


# -- aiokafka ------------------------------------------------------------------------------------


def aiokafka_sends(topic: str) -> st.SearchStrategy[Call]:
    return calls(
        {
            "topic": mostly(st.just(topic), st.sampled_from([None, 7, b"bytes", "", "bad topic!"])),
            "value": payloads,
            "key": payloads,
            "partition": mostly(st.sampled_from([None, 0]), st.sampled_from([1, -1, "0"])),
            "timestamp_ms": st.one_of(st.none(), st.integers(0, 2**41)),
            "headers": header_containers,
        }
    )


async def aiokafka_outcome(send: Callable[[], Any]) -> tuple[str, Any]:
    """What the application sees of ``await send(...)`` and then of the future it returned:
    how the send raised, or how the future ended."""
    try:
        future = await send()
    except Exception as error:
        return ("raised", (type(error), str(error)))
    try:
        await future
    except Exception as error:
        return ("future", type(error))
    return ("future", None)


def test_aiokafka_send_behaves_exactly_as_uninstrumented(
    bootstrap: str, topic: str, internal_errors: InternalErrors
) -> None:
    loop = asyncio.new_event_loop()

    async def started() -> aiokafka.AIOKafkaProducer:
        # A send to a topic the broker cannot create waits out the metadata request timeout.
        made = aiokafka.AIOKafkaProducer(bootstrap_servers=bootstrap, request_timeout_ms=1000)
        await made.start()
        return made

    producer = loop.run_until_complete(started())
    original_send = aiokafka.AIOKafkaProducer.__dict__["send"]
    cases = 0
    try:
        with instrumented(AIOKafkaInstrumentor()) as sdk:

            @settings(_settings, max_examples=AIOKAFKA_CASES)
            @given(aiokafka_sends(topic))
            def check(call: Call) -> None:
                nonlocal cases
                cases += 1
                headers = call.kwargs.get("headers", call.args[5] if len(call.args) > 5 else None)
                before = snapshot(headers)
                traced = loop.run_until_complete(
                    aiokafka_outcome(lambda: producer.send(*call.args, **call.kwargs))
                )
                plain = loop.run_until_complete(
                    aiokafka_outcome(lambda: original_send(producer, *call.args, **call.kwargs))
                )
                assert traced == plain
                assert headers == before, "the caller's headers were mutated"
                assert sdk.open_spans.names() == []

            check()
    finally:
        loop.run_until_complete(producer.stop())
        loop.close()
    report("aiokafka send", cases, AIOKAFKA_CASES)
    assert internal_errors.records == []


# -- confluent-kafka -----------------------------------------------------------------------------


class Deliveries:
    """A delivery callback recording what it was called with; optionally raising."""

    def __init__(self, raises: bool = False) -> None:
        self.raises = raises
        self.seen: list[tuple[Any, ...]] = []

    def __call__(self, error: Any, message: Any) -> None:
        self.seen.append(
            (
                error.code() if error is not None else None,
                message.topic(),
                message.partition() if error is None else None,
                message.key(),
                message.value(),
            )
        )
        if self.raises:
            raise RuntimeError("the application's callback failed")

    def __repr__(self) -> str:
        return f"Deliveries(raises={self.raises})"


def confluent_produces(topic: str) -> st.SearchStrategy[Call]:
    callbacks = st.one_of(
        st.none(), st.builds(Deliveries, st.booleans()), st.just(1), st.just("not callable")
    )
    return calls(
        {
            # Not "": librdkafka's answer for it depends on earlier calls (first queued, then
            # refused once metadata says it does not exist), so no comparison can be fair.
            "topic": mostly(st.just(topic), st.sampled_from([None, 7, b"bytes"])),
            "value": payloads,
            "key": payloads,
            "partition": mostly(st.sampled_from([-1, 0]), st.sampled_from([1, None, "0"])),
            "callback": callbacks,
            "on_delivery": callbacks,
            "timestamp": mostly(st.sampled_from([0, 1_700_000_000_000]), st.sampled_from([-1])),
            "headers": header_containers,
        }
    )


def delivered(call: Call) -> list[tuple[Any, ...]]:
    """Everything the call's delivery callbacks were called with, emptying them."""
    seen = []
    for value in (*call.args, *call.kwargs.values()):
        if isinstance(value, Deliveries):
            seen.append(list(value.seen))
            value.seen.clear()
    return seen


def test_confluent_produce_behaves_exactly_as_uninstrumented(
    bootstrap: str, topic: str, internal_errors: InternalErrors
) -> None:
    cases = 0
    with instrumented(ConfluentKafkaInstrumentor()) as sdk:
        producer = confluent_kafka.Producer(
            {"bootstrap.servers": bootstrap, "linger.ms": 0, "log_level": 3}
        )

        @settings(_settings, max_examples=CLIENT_CASES)
        @given(confluent_produces(topic))
        def check(call: Call) -> None:
            nonlocal cases
            cases += 1
            headers = call.kwargs.get("headers", call.args[7] if len(call.args) > 7 else None)
            before = snapshot(headers)
            traced = outcome(lambda: producer.produce(*call.args, **call.kwargs))
            traced_flush = outcome(lambda: producer.flush(10))
            traced_deliveries = delivered(call)
            plain = outcome(lambda: UntracedProducer.produce(producer, *call.args, **call.kwargs))
            plain_flush = outcome(lambda: producer.flush(10))
            assert (traced, traced_flush) == (plain, plain_flush)
            assert traced_deliveries == delivered(call)
            assert headers == before, "the caller's headers were mutated"
            assert sdk.open_spans.names() == []

        check()
    report("confluent-kafka produce", cases, CLIENT_CASES)
    assert internal_errors.records == []


# Header names without NUL: librdkafka takes them as C strings and cuts them at the first one.
wire_headers = st.lists(
    st.tuples(
        st.one_of(
            st.sampled_from(TRACE_KEYS),
            st.text(st.characters(exclude_characters="\0", exclude_categories=("Cs",))),
        ),
        st.one_of(st.none(), byte_values),
    ),
    max_size=6,
).filter(lambda items: sum(len(value or b"") for _, value in items) < 900_000)


def test_consumers_deliver_any_wire_headers_unchanged(
    bootstrap: str, topic: str, internal_errors: InternalErrors
) -> None:
    """Whatever headers a foreign producer wrote, every instrumented consumer hands the record
    over unchanged and ends every span it starts."""
    raw = confluent_kafka.Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
    cases = 0
    # ALWAYS_ON: a generated traceparent that is not sampled must not hide a span.
    sdk = RecordingSdk(tracer_provider=TracerProvider(sampler=ALWAYS_ON))
    loop = asyncio.new_event_loop()
    with (
        instrumented(ConfluentKafkaInstrumentor(), sdk),
        instrumented(KafkaPythonInstrumentor(), sdk),
        instrumented(AIOKafkaInstrumentor(), sdk),
    ):
        confluent = confluent_kafka.Consumer(
            {"bootstrap.servers": bootstrap, "group.id": f"{topic}-c", "log_level": 3}
        )
        python = kafka.KafkaConsumer(bootstrap_servers=bootstrap, consumer_timeout_ms=10_000)
        partition = kafka.TopicPartition(topic, 0)
        python.assign([partition])

        async def started() -> aiokafka.AIOKafkaConsumer:
            made = aiokafka.AIOKafkaConsumer(bootstrap_servers=bootstrap)
            await made.start()
            made.assign([partition])
            return made

        asyncio_consumer = loop.run_until_complete(started())

        @settings(_settings, max_examples=CLIENT_CASES)
        @given(wire_headers, st.sampled_from(["poll", "consume"]))
        def check(headers: list[tuple[str, bytes | None]], api: str) -> None:
            nonlocal cases
            cases += 1
            offsets: list[int] = []
            raw.produce(
                topic,
                b"payload",
                headers=headers,
                on_delivery=lambda _, m: offsets.append(m.offset()),
            )
            assert raw.flush(10) == 0
            # Each case reads its own record, so that one failing case cannot shift the next.
            confluent.assign([confluent_kafka.TopicPartition(topic, 0, offsets[0])])
            python.seek(partition, offsets[0])
            batch = [confluent.poll(10)] if api == "poll" else confluent.consume(1, 10)
            message = next(iter(batch))  # consume() batches trace as they are iterated
            assert message is not None and message.error() is None
            assert (message.headers() or []) == headers
            assert next(python).headers == headers
            asyncio_consumer.seek(partition, offsets[0])
            assert list(loop.run_until_complete(asyncio_consumer.getone()).headers) == headers

        check()
        confluent.close()
        python.close()
        loop.run_until_complete(asyncio_consumer.stop())
        loop.close()
    report("consumers", cases, CLIENT_CASES)
    assert sdk.open_spans.names() == []
    assert len(sdk.spans("process")) == 3 * cases
    assert internal_errors.records == []
