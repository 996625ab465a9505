"""Trust: a producer outside the trust boundary must not steer the consumer's tracing.

Records here come from a "foreign" producer (uninstrumented, writing its own headers): a
forged ``traceparent`` with the sampled flag set, and baggage. With
``KAFKA_AUTOTRACE_INCOMING_CONTEXT=link`` the consumer starts its own trace and only links to
the forged one; with ``ignore`` it does not read the headers at all. In neither mode can the
forged flag force sampling, nor the forged baggage travel on. ``parent`` (the default, for
producers you trust) is run too, to show that the same records *do* steer it: the tests can
tell the modes apart. Then: nothing of the message is recorded unless configured.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass

import aiokafka
import confluent_kafka
import pytest
from confluent_kafka.cimpl import Producer as UntracedProducer
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased
from support.broker import create_topic, read_record
from support.otel import INSTRUMENTORS, RecordingSdk, instrumented

from kafka_autotrace.core.settings import IncomingContext, Settings

FORGED_TRACE_ID = 0x0AF7651916CD43DD8448EB211C80319C
FORGED_HEADERS = [
    ("traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
    ("baggage", b"tenant=evil"),
    ("secret-header", b"HEADER-VALUE-9f3a"),
]
PAYLOAD = b"PAYLOAD-BYTES-77c1"
KEY = b"KEY-BYTES-41d0"


@dataclass
class Handled:
    """What the consumer did with one foreign record: its spans, and the headers of the
    record it produced while handling it (the next hop)."""

    sdk: RecordingSdk
    forwarded_headers: dict[str, bytes]

    def process(self) -> ReadableSpan:
        spans = self.sdk.spans("process")
        assert len(spans) == 1, [span.name for span in spans]
        return spans[0]


def foreign_record(bootstrap: str, topic: str) -> None:
    producer = UntracedProducer({"bootstrap.servers": bootstrap})
    producer.produce(topic, PAYLOAD, KEY, headers=FORGED_HEADERS)
    assert producer.flush(10) == 0


def handle_with_kafka_python(bootstrap: str, topic: str, forward_to: str) -> None:
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, auto_offset_reset="earliest", consumer_timeout_ms=10_000
    )
    consumer.assign([TopicPartition(topic, 0)])
    record = next(consumer)
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    producer.send(forward_to, record.value).get(timeout=10)
    producer.close(timeout=5)
    consumer.close()


def handle_with_confluent(bootstrap: str, topic: str, forward_to: str) -> None:
    consumer = confluent_kafka.Consumer({"bootstrap.servers": bootstrap, "group.id": topic})
    consumer.assign([confluent_kafka.TopicPartition(topic, 0, confluent_kafka.OFFSET_BEGINNING)])
    message = consumer.poll(10)
    assert message is not None and message.error() is None
    producer = confluent_kafka.Producer({"bootstrap.servers": bootstrap})
    producer.produce(forward_to, message.value())
    assert producer.flush(10) == 0
    consumer.close()


def handle_with_aiokafka(bootstrap: str, topic: str, forward_to: str) -> None:
    async def handle() -> None:
        consumer = aiokafka.AIOKafkaConsumer(
            bootstrap_servers=bootstrap, auto_offset_reset="earliest"
        )
        producer = aiokafka.AIOKafkaProducer(bootstrap_servers=bootstrap)
        await consumer.start()
        await producer.start()
        try:
            consumer.assign([aiokafka.TopicPartition(topic, 0)])
            record = await consumer.getone()
            await producer.send_and_wait(forward_to, record.value)
        finally:
            await producer.stop()
            await consumer.stop()

    asyncio.run(handle())


HANDLERS = {
    "kafka-python": handle_with_kafka_python,
    "confluent-kafka": handle_with_confluent,
    "aiokafka": handle_with_aiokafka,
}


@pytest.fixture(params=sorted(HANDLERS))
def client(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def handle_foreign_record(
    client: str, bootstrap: str, topic: str, settings: Settings, sdk: RecordingSdk | None = None
) -> Handled:
    """A foreign record handled by an instrumented consumer that forwards it."""
    forward_to = create_topic(bootstrap, f"{topic}-next")
    foreign_record(bootstrap, topic)
    with instrumented(INSTRUMENTORS[client](), sdk, settings=settings) as recording:
        HANDLERS[client](bootstrap, topic, forward_to)
    assert recording.open_spans.names() == []
    return Handled(recording, dict(read_record(bootstrap, forward_to).headers() or []))


def test_parent_mode_follows_the_incoming_context(client: str, bootstrap: str, topic: str) -> None:
    """The reference: a trusted producer's context is the parent, its baggage travels on."""
    handled = handle_foreign_record(client, bootstrap, topic, Settings())
    assert handled.process().context.trace_id == FORGED_TRACE_ID
    assert handled.forwarded_headers["traceparent"].startswith(b"00-0af7651916cd43dd")
    assert handled.forwarded_headers.get("baggage") == b"tenant=evil"


def test_link_mode_starts_its_own_trace_and_only_links(
    client: str, bootstrap: str, topic: str
) -> None:
    handled = handle_foreign_record(
        client, bootstrap, topic, Settings(incoming_context=IncomingContext.LINK)
    )
    process = handled.process()
    assert process.parent is None
    assert process.context.trace_id != FORGED_TRACE_ID
    assert [link.context.trace_id for link in process.links] == [FORGED_TRACE_ID]
    forwarded = handled.forwarded_headers
    assert forwarded["traceparent"].startswith(f"00-{process.context.trace_id:032x}".encode())
    assert "baggage" not in forwarded, "an untrusted producer's baggage must not travel on"


def test_ignore_mode_reads_no_trace_headers(client: str, bootstrap: str, topic: str) -> None:
    handled = handle_foreign_record(
        client, bootstrap, topic, Settings(incoming_context=IncomingContext.IGNORE)
    )
    process = handled.process()
    assert process.parent is None and not process.links
    assert process.context.trace_id != FORGED_TRACE_ID
    assert "baggage" not in handled.forwarded_headers


@pytest.mark.parametrize(
    ("mode", "recorded"),
    [
        pytest.param(IncomingContext.PARENT, True, id="parent-forced"),
        pytest.param(IncomingContext.LINK, False, id="link"),
        pytest.param(IncomingContext.IGNORE, False, id="ignore"),
    ],
)
def test_a_forged_sampled_flag_forces_sampling_only_in_parent_mode(
    client: str, bootstrap: str, topic: str, mode: IncomingContext, recorded: bool
) -> None:
    """A parent-based sampler that samples nothing of its own: only following the forged
    parent (parent mode) makes it record."""
    never = RecordingSdk(tracer_provider=TracerProvider(sampler=ParentBased(ALWAYS_OFF)))
    settings = Settings(incoming_context=mode)
    handled = handle_foreign_record(client, bootstrap, topic, settings, never)
    assert bool(handled.sdk.spans()) is recorded
    sampled = handled.forwarded_headers["traceparent"].endswith(b"-01")
    assert sampled is recorded, "the next hop must not be told to sample either"


def all_recorded_values(sdk: RecordingSdk) -> str:
    """Every attribute value of every span, event, link and metric point, as one text."""
    values: list[object] = []
    for span in sdk.spans():
        values += (span.attributes or {}).values()
        for event in span.events:
            values += (event.attributes or {}).values()
        for link in span.links:
            values += (link.attributes or {}).values()
        values.append(span.name)
    for name in (
        "messaging.client.sent.messages",
        "messaging.client.consumed.messages",
        "messaging.client.operation.duration",
        "messaging.process.duration",
        "kafka_autotrace.record.age",
    ):
        for point in sdk.metric_points(name):
            values += point.attributes.values()
    return repr(values)


@pytest.fixture
def recorded(client: str, bootstrap: str, topic: str) -> Iterator[dict[str, str]]:
    """What each capture setting leaves in the telemetry of one handled record."""
    texts = {}
    for label, settings in {
        "default": Settings(),
        "no-key": Settings(capture_key=False),
        "header": Settings(capture_key=False, capture_headers=("secret-header",)),
    }.items():
        source = create_topic(bootstrap, f"{topic}-{label}")
        handled = handle_foreign_record(client, bootstrap, source, settings)
        texts[label] = all_recorded_values(handled.sdk)
    yield texts


def test_nothing_of_the_message_is_recorded_unless_configured(
    recorded: dict[str, str],
) -> None:
    payload, key, header = PAYLOAD.decode(), KEY.decode(), FORGED_HEADERS[2][1].decode()
    assert key in recorded["default"]
    assert payload not in recorded["default"] and header not in recorded["default"]
    for text in recorded.values():
        assert payload not in text
        assert "tenant=evil" not in text
    assert key not in recorded["no-key"] and header not in recorded["no-key"]
    assert header in recorded["header"] and key not in recorded["header"]
