"""The library-agnostic messaging telemetry: spans, links, metrics and hooks for Kafka.

Adapters call four things: :meth:`KafkaTelemetry.start_send` when the application sends,
:meth:`PendingSend.succeed` / :meth:`PendingSend.fail` when the broker answers,
:meth:`KafkaTelemetry.start_process` for each record handed to the application, and
:meth:`KafkaTelemetry.record_poll` for batch APIs. Everything about span names, attributes,
parentage and metrics lives here, so both clients emit the same telemetry.

Bounded resources: a send span lives from ``send()``/``produce()`` to the broker's answer, so
an outage, a broker that stops answering or a producer that is never polled could pile up
spans. At most ``Settings.max_inflight_spans`` (``KAFKA_AUTOTRACE_MAX_INFLIGHT_SPANS``, default
100,000, shared by all producers of one instrumentor) send spans wait at once. Past that, a
send gets no span of its own: its record still carries the current trace context, so the
consumer joins the caller's trace, and it is still counted in the metrics. One warning says so;
spans resume as soon as acknowledgements bring the count under the cap. A send span that the
client drops without ever answering (a producer destroyed with messages queued) stops counting
when it is garbage collected. Everything else the core keeps is bounded by design: one open
process span per consumer, per-batch lists, and per-topic and per-client memos that start over
at :data:`~kafka_autotrace.settings.MEMO_LIMIT` entries.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Sequence
from typing import Any, Callable, TypeVar

from opentelemetry import context as otel_context
from opentelemetry.context import Context
from opentelemetry.metrics import Meter
from opentelemetry.semconv._incubating.attributes.messaging_attributes import (
    MESSAGING_BATCH_MESSAGE_COUNT,
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
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    Span,
    SpanKind,
    Status,
    StatusCode,
    Tracer,
    get_current_span,
    set_span_in_context,
)
from opentelemetry.util.types import AttributeValue

from kafka_autotrace.metrics import MessagingInstruments
from kafka_autotrace.model import ClientInfo, RecordAccessor
from kafka_autotrace.propagation import (
    decode_header_value,
    extract_context,
    header_items,
    merge_headers,
    nothing_to_propagate,
    span_headers,
)
from kafka_autotrace.providers import SdkPresence
from kafka_autotrace.scope import ProcessScope
from kafka_autotrace.settings import MEMO_LIMIT, IncomingContext, Settings

_logger = logging.getLogger(__name__)

RecordT = TypeVar("RecordT")
ProduceHook = Callable[[Span, str, object, object], None]
"""Called as ``hook(span, topic, key, value)`` after a send span starts."""
ConsumeHook = Callable[[Span, Any], None]
"""Called as ``hook(span, record)`` with the client library's own record object."""

HEADER_ATTRIBUTE_PREFIX = "messaging.header."
"""Captured headers (``KAFKA_AUTOTRACE_CAPTURE_HEADERS``) become ``messaging.header.<key>``."""

_KAFKA = MessagingSystemValues.KAFKA.value
_SEND = MessagingOperationTypeValues.SEND.value
_PROCESS = MessagingOperationTypeValues.PROCESS.value
_RECEIVE = MessagingOperationTypeValues.RECEIVE.value

Attributes = dict[str, AttributeValue]


def _client_attributes(client: ClientInfo) -> Attributes:
    attributes: Attributes = {MESSAGING_SYSTEM: _KAFKA}
    if client.client_id:
        attributes[MESSAGING_CLIENT_ID] = client.client_id
    if client.consumer_group:
        attributes[MESSAGING_CONSUMER_GROUP_NAME] = client.consumer_group
    if client.server_address:
        attributes[SERVER_ADDRESS] = client.server_address
    if client.server_port is not None:
        attributes[SERVER_PORT] = client.server_port
    return attributes


def _metric_attributes(client: ClientInfo, operation: str, topic: str | None) -> Attributes:
    """Low-cardinality attributes for metrics: no client id, partition or key."""
    attributes: Attributes = {MESSAGING_SYSTEM: _KAFKA, MESSAGING_OPERATION_NAME: operation}
    if topic is not None:
        attributes[MESSAGING_DESTINATION_NAME] = topic
    if client.consumer_group:
        attributes[MESSAGING_CONSUMER_GROUP_NAME] = client.consumer_group
    if client.server_address:
        attributes[SERVER_ADDRESS] = client.server_address
    if client.server_port is not None:
        attributes[SERVER_PORT] = client.server_port
    return attributes


def _span_attributes(shared: Attributes, operation: str, topic: str) -> Attributes:
    """The client's attributes plus those of a single-message operation on ``topic``."""
    return {
        **shared,
        MESSAGING_OPERATION_NAME: operation,
        MESSAGING_OPERATION_TYPE: operation,
        MESSAGING_DESTINATION_NAME: topic,
    }


class _Destination:
    """Everything the spans and measurements of one client and topic share, built once.

    Per message, only what differs between messages (key, partition, offset, …) is added to
    a copy of the span attributes; names and metric attributes are used as they are.
    """

    __slots__ = (
        "client",
        "process_attributes",
        "process_duration",
        "process_metrics",
        "process_name",
        "receive_metrics",
        "send_attributes",
        "send_metrics",
        "send_name",
    )

    def __init__(
        self, client: ClientInfo, topic: str, shared: Attributes, instruments: MessagingInstruments
    ) -> None:
        self.client = client
        self.send_name = f"send {topic}"
        self.send_attributes = _span_attributes(shared, _SEND, topic)
        self.send_metrics = _metric_attributes(client, _SEND, topic)
        self.process_name = f"process {topic}"
        self.process_attributes = _span_attributes(shared, _PROCESS, topic)
        self.process_metrics = _metric_attributes(client, _PROCESS, topic)
        self.receive_metrics = _metric_attributes(client, _RECEIVE, topic)
        self.process_duration = instruments.process_duration

    def processed(self, elapsed: float) -> None:
        """Record how long a record of this destination was being processed."""
        self.process_duration.record(elapsed, self.process_metrics)


def _unmeasured(elapsed: float) -> None:
    """The end of a process scope that records nothing."""


def key_attribute(key: object) -> str | None:
    """The key as the ``messaging.kafka.message.key`` string, None for keys with no safe text
    form (arbitrary objects are not ``str()``-ed: that can be slow or raise)."""
    if isinstance(key, str):
        return key
    if isinstance(key, (bytes, bytearray, memoryview)):
        return bytes(key).decode("utf-8", errors="replace")
    if isinstance(key, (int, float)) and not isinstance(key, bool):
        return str(key)
    return None


def _body_size(value: object) -> int | None:
    if isinstance(value, (bytes, bytearray)):
        return len(value)
    if isinstance(value, memoryview):
        return value.nbytes
    return None


class PendingSend:
    """A send span waiting for the broker's answer; ends once, from whichever thread answers.

    ``inflight`` says whether it counts against the in-flight cap: false for the span-less
    sends past it, whose ``span`` only carries the current context for propagation.
    ``tracked`` is false for sends made while no SDK records anything (see
    :meth:`passing_through`): adapters need not follow the broker's answer to those.
    ``trace_headers`` holds the propagator's headers when they were already computed.
    """

    __slots__ = (
        "_done",
        "_inflight",
        "_metric_attributes",
        "_started",
        "_telemetry",
        "span",
        "trace_headers",
        "tracked",
    )

    def __init__(
        self,
        telemetry: KafkaTelemetry,
        span: Span,
        metric_attributes: Attributes,
        inflight: bool = True,
    ) -> None:
        self._telemetry = telemetry
        self.span = span
        self._metric_attributes = metric_attributes
        self._inflight = inflight
        self._started = time.perf_counter()
        self._done = threading.Lock()
        self.tracked = True
        self.trace_headers: dict[str, bytes] | None = None

    @classmethod
    def passing_through(cls, span: Span, trace_headers: dict[str, bytes]) -> PendingSend:
        """A send with nothing to record: ``span`` (the current one) only carries the trace
        context on, as ``trace_headers``, and its answer changes nothing. Built without the
        timer and lock a tracked send needs, since with no SDK this is the whole cost of a
        message."""
        pending = cls.__new__(cls)
        pending.span = span
        pending.trace_headers = trace_headers
        pending.tracked = False
        pending._inflight = False
        return pending

    def __del__(self) -> None:
        """Stop counting a send the client dropped unanswered. Only the counter is touched:
        a finalizer may run inside any code, and must not call into the SDK or take locks."""
        if self._inflight and self._done.acquire(blocking=False):
            self._telemetry._send_ended()

    def succeed(self, partition: int | None, offset: int | None) -> None:
        if not self.tracked or not self._done.acquire(blocking=False):
            return
        if self._inflight:
            self._telemetry._send_ended()
        try:
            if self.span.is_recording():
                # One call: the SDK takes the span's lock and checks its state per call.
                acknowledged: Attributes = {}
                if partition is not None and partition >= 0:
                    acknowledged[MESSAGING_DESTINATION_PARTITION_ID] = str(partition)
                if offset is not None and offset >= 0:
                    acknowledged[MESSAGING_KAFKA_OFFSET] = offset
                if acknowledged:
                    self.span.set_attributes(acknowledged)
            self.span.end()
            self._telemetry._sent(self._metric_attributes, self._started, None)
        except Exception:
            _logger.debug("ending a send span failed", exc_info=True)

    def fail(self, error_type: str, exception: BaseException | None, description: str) -> None:
        if not self.tracked or not self._done.acquire(blocking=False):
            return
        if self._inflight:
            self._telemetry._send_ended()
        try:
            if self.span.is_recording():
                self.span.set_attribute(ERROR_TYPE, error_type)
                self.span.set_status(Status(StatusCode.ERROR, description))
                if exception is not None:
                    self.span.record_exception(exception)
        except Exception:
            _logger.debug("recording a send failure failed", exc_info=True)
        try:
            self.span.end()
            self._telemetry._sent(self._metric_attributes, self._started, error_type)
        except Exception:
            _logger.debug("ending a failed send span failed", exc_info=True)

    def fail_with(self, exception: BaseException) -> None:
        """End the span for an exception raised by the client call itself.

        Runs on the path that re-raises the application's exception, so even an exception
        whose ``__str__`` raises must not replace it.
        """
        try:
            description = str(exception)
        except Exception:
            description = ""
        self.fail(type(exception).__qualname__, exception, description)


class KafkaTelemetry:
    """Spans and metrics for one instrumentor; shared by all producers and consumers it wraps."""

    def __init__(
        self,
        tracer: Tracer,
        meter: Meter,
        settings: Settings,
        produce_hook: ProduceHook | None = None,
        consume_hook: ConsumeHook | None = None,
    ) -> None:
        self.settings = settings
        self._tracer = tracer
        self._sdk = SdkPresence(tracer, meter)
        self._instruments = MessagingInstruments.create(meter)
        self._produce_hook = produce_hook
        self._consume_hook = consume_hook
        self._client_attributes: dict[ClientInfo, Attributes] = {}
        self._destinations: dict[tuple[int, str], _Destination] = {}
        # Send spans waiting for an answer = started - ended. Two counters, because next() on
        # itertools.count is atomic under the GIL where ``+= 1`` is not, and a lock could not
        # be taken in PendingSend.__del__. ``_ended`` may briefly lag (two threads storing out
        # of order), which only makes the cap err on the safe side.
        self._started_sends = itertools.count(1)
        self._ended_sends = itertools.count(1)
        self._ended = 0
        self._over_cap = False

    # -- producer ---------------------------------------------------------------------------

    def sends_untouched(self) -> bool:
        """Whether a send made now reaches the client exactly as the application made it,
        whatever its arguments: no SDK records it, no hook sees it and the current context
        has nothing to propagate. Adapters ask this before reading a send's arguments, so
        that such a send, the common one in a service without an SDK, costs no more than the
        question."""
        if self._produce_hook is not None or not self._sdk.idle():
            return False
        return not self.settings.propagate or nothing_to_propagate()

    def start_send(
        self,
        client: ClientInfo,
        topic: str,
        key: object,
        value: object,
        partition: int | None,
        headers: object,
    ) -> PendingSend | None:
        """Start the ``send {topic}`` span in the current context; None for excluded topics.

        Past the in-flight cap the result carries no span of its own, only the current context
        (to propagate) and the metrics.
        """
        if not isinstance(topic, str) or self.settings.is_excluded(topic):
            return None
        if self._sdk.idle():
            return self._send_passing_through(topic, key, value)
        if not self._admit_send():
            current = get_current_span().get_span_context()
            return PendingSend(
                self,
                NonRecordingSpan(current),
                self._destination(client, topic).send_metrics,
                inflight=False,
            )
        destination = self._destination(client, topic)
        attributes = destination.send_attributes.copy()
        if isinstance(partition, int) and partition >= 0:
            attributes[MESSAGING_DESTINATION_PARTITION_ID] = str(partition)
        self._message_attributes(attributes, key, value, headers)
        span = self._tracer.start_span(
            destination.send_name, kind=SpanKind.PRODUCER, attributes=attributes
        )
        if self._produce_hook is not None:
            self._run_hook(self._produce_hook, span, topic, key, value)
        return PendingSend(self, span, destination.send_metrics)

    def _send_passing_through(self, topic: str, key: object, value: object) -> PendingSend | None:
        """With no SDK, what the API's no-op tracer would do: the current span carries the
        trace context on, and a send with no context to carry is left as the application
        made it."""
        span = get_current_span()
        if self._produce_hook is not None:
            self._run_hook(self._produce_hook, span, topic, key, value)
        if not self.settings.propagate:
            return None
        trace_headers = span_headers(span)
        if not trace_headers:
            return None
        return PendingSend.passing_through(span, trace_headers)

    def _admit_send(self) -> bool:
        """Count a new send span in, unless the cap is reached; warn once per episode."""
        cap = self.settings.max_inflight_spans
        inflight = next(self._started_sends) - self._ended
        if inflight <= cap:
            if self._over_cap and inflight <= cap // 2:
                self._over_cap = False
                _logger.info("kafka-autotrace: send spans resumed (%d in flight)", inflight)
            return True
        self._send_ended()
        if not self._over_cap:
            self._over_cap = True
            _logger.warning(
                "kafka-autotrace: %d send spans are waiting for the broker's acknowledgement, "
                "the limit (KAFKA_AUTOTRACE_MAX_INFLIGHT_SPANS); further sends get no span "
                "until acknowledgements come in, but still carry the current trace context",
                cap,
            )
        return False

    def _send_ended(self) -> None:
        self._ended = next(self._ended_sends)

    def headers_for(self, pending: PendingSend, headers: object) -> object:
        """The headers to send: the caller's plus the propagator's, in a new container."""
        if not self.settings.propagate:
            return headers
        trace_headers = pending.trace_headers
        if trace_headers is None:
            trace_headers = span_headers(pending.span)
        return merge_headers(headers, trace_headers)

    def _sent(self, attributes: Attributes, started: float, error_type: str | None) -> None:
        if error_type is not None:
            attributes = {**attributes, ERROR_TYPE: error_type}
        self._instruments.operation_duration.record(time.perf_counter() - started, attributes)
        self._instruments.sent_messages.add(1, attributes)

    # -- consumer ---------------------------------------------------------------------------

    def incoming_context(self, headers: object) -> Context | None:
        """The producer's context from ``headers`` when the settings allow reading it."""
        if self.settings.incoming_context is IncomingContext.IGNORE:
            return None
        return extract_context(headers)

    def start_process(
        self,
        record: RecordT,
        accessor: RecordAccessor[RecordT],
        client: ClientInfo,
        incoming: Context | None = None,
        counted: bool = False,
    ) -> ProcessScope | None:
        """Start the ``process {topic}`` span for a record and make it current.

        ``incoming`` passes a context already extracted for this record (batch APIs extract
        once for the poll span's links); ``counted`` says the consumed-messages counter
        already counted the record.
        """
        topic = accessor.topic(record)
        if self.settings.is_excluded(topic):
            return None
        # Read once, and only when needed: confluent-kafka builds a new list on every call.
        headers = None
        if incoming is None or self.settings.capture_headers:
            headers = accessor.headers(record)
        if incoming is None:
            incoming = self.incoming_context(headers)
        parent, links = self._parent_and_links(incoming)
        if self._sdk.idle():
            return self._pass_through(record, parent)
        destination = self._destination(client, topic)
        attributes = destination.process_attributes.copy()
        partition = accessor.partition(record)
        if partition is not None:
            attributes[MESSAGING_DESTINATION_PARTITION_ID] = str(partition)
        offset = accessor.offset(record)
        if offset is not None:
            attributes[MESSAGING_KAFKA_OFFSET] = offset
        self._message_attributes(attributes, accessor.key(record), accessor.value(record), headers)
        span = self._tracer.start_span(
            destination.process_name,
            context=parent,
            kind=SpanKind.CONSUMER,
            attributes=attributes,
            links=links,
        )
        if self._consume_hook is not None:
            self._run_hook(self._consume_hook, span, record)
        if not counted:
            self._instruments.consumed_messages.add(1, destination.receive_metrics)
        timestamp_ms = accessor.timestamp_ms(record)
        if timestamp_ms is not None and timestamp_ms > 0:
            age = max(0.0, time.time() - timestamp_ms / 1000.0)
            self._instruments.record_age.record(age, destination.process_metrics)
        return ProcessScope(span, set_span_in_context(span, parent), destination.processed)

    def _pass_through(self, record: object, parent: Context) -> ProcessScope | None:
        """With no SDK, what the API's no-op tracer would do: make the producer's context
        current while the record is handled, so that what it produces carries the trace on.
        No span, attributes or measurements: nothing would record them."""
        span = get_current_span(parent)
        if self._consume_hook is not None:
            self._run_hook(self._consume_hook, span, record)
        if parent is otel_context.get_current():
            return None  # nothing came in to make current
        return ProcessScope(span, parent, _unmeasured)

    def record_poll(
        self,
        records: Sequence[RecordT],
        accessor: RecordAccessor[RecordT],
        client: ClientInfo,
        started_ns: int,
        started: float,
    ) -> list[Context | None]:
        """Emit the ``poll`` span of a batch API call that returned ``records``.

        The span runs from the call (``started_ns``, wall clock for the span and ``started``,
        perf counter for the metric) to now and links every record's producer. Returns the
        incoming contexts, one per record, for the records' process spans to reuse.
        """
        incoming = [self.incoming_context(accessor.headers(record)) for record in records]
        if self._sdk.idle():
            return incoming
        topics = sorted({accessor.topic(record) for record in records})
        traced_topics = [topic for topic in topics if not self.settings.is_excluded(topic)]
        if not traced_topics:
            return incoming
        attributes = dict(self._attributes_of(client))
        attributes[MESSAGING_OPERATION_NAME] = "poll"
        attributes[MESSAGING_OPERATION_TYPE] = _RECEIVE
        attributes[MESSAGING_BATCH_MESSAGE_COUNT] = len(records)
        if len(topics) == 1:
            attributes[MESSAGING_DESTINATION_NAME] = topics[0]
            name = f"poll {topics[0]}"
        else:
            name = "poll"
        links = [
            Link(span_context)
            for context in incoming
            if context is not None
            and (span_context := get_current_span(context).get_span_context()).is_valid
        ]
        span = self._tracer.start_span(
            name, kind=SpanKind.CLIENT, attributes=attributes, links=links, start_time=started_ns
        )
        span.end()
        duration = time.perf_counter() - started
        counts: dict[str, int] = {}
        for record in records:
            topic = accessor.topic(record)
            counts[topic] = counts.get(topic, 0) + 1
        for topic in traced_topics:
            receive_attributes = self._destination(client, topic).receive_metrics
            self._instruments.consumed_messages.add(counts[topic], receive_attributes)
            self._instruments.operation_duration.record(duration, receive_attributes)
        return incoming

    def _parent_and_links(self, incoming: Context | None) -> tuple[Context, list[Link] | None]:
        """The parent context of a process span and its links, per DESIGN.md: the producer is
        the parent and an active application span is linked; in link mode, the reverse."""
        ambient = otel_context.get_current()
        if incoming is None:
            return ambient, None
        remote = get_current_span(incoming).get_span_context()
        if not remote.is_valid:
            return ambient, None
        if self.settings.incoming_context is IncomingContext.LINK:
            return ambient, [Link(remote)]
        active = get_current_span(ambient).get_span_context()
        links = [Link(active)] if active.is_valid else None
        if not ambient:
            return incoming, links
        # Ambient values (the application's own context keys) stay; the producer's span and
        # baggage take precedence, so baggage flows on to whatever this message produces.
        return Context({**ambient, **incoming}), links

    # -- shared -----------------------------------------------------------------------------

    def _destination(self, client: ClientInfo, topic: str) -> _Destination:
        """The cached :class:`_Destination` of ``client`` and ``topic``.

        Keyed by the client's identity: adapters keep one ClientInfo per client, and hashing
        the dataclass itself would cost more than the lookup saves. The entry holds the
        ClientInfo, so the identity cannot be reused by another object while cached.
        """
        key = (id(client), topic)
        destination = self._destinations.get(key)
        if destination is None or destination.client is not client:
            if len(self._destinations) >= MEMO_LIMIT:
                self._destinations.clear()
            destination = _Destination(
                client, topic, self._attributes_of(client), self._instruments
            )
            self._destinations[key] = destination
        return destination

    def _attributes_of(self, client: ClientInfo) -> Attributes:
        attributes = self._client_attributes.get(client)
        if attributes is None:
            attributes = _client_attributes(client)
            if len(self._client_attributes) >= MEMO_LIMIT:
                self._client_attributes.clear()  # clients created with ever new ids
            self._client_attributes[client] = attributes
        return attributes

    def _message_attributes(
        self, attributes: Attributes, key: object, value: object, headers: object
    ) -> None:
        settings = self.settings
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
            self._header_attributes(attributes, headers)

    def _header_attributes(self, attributes: Attributes, headers: object) -> None:
        wanted = self.settings.capture_headers
        captured: dict[str, list[str]] = {}
        for key, value in header_items(headers):
            if key in wanted:
                text = decode_header_value(value)
                if text is not None:
                    captured.setdefault(key, []).append(text)
        for key, values in captured.items():
            attributes[HEADER_ATTRIBUTE_PREFIX + key] = values

    @staticmethod
    def _run_hook(hook: Callable[..., None], *args: object) -> None:
        try:
            hook(*args)
        except Exception:
            _logger.exception("kafka-autotrace hook %r raised; ignored", hook)
