"""The spans and measurements of one instrumentor (:class:`KafkaTelemetry`: send, process and
poll, named, parented and measured here so that every client emits the same telemetry), and
:class:`TelemetrySlot`, where a client's wrappers find it. With no SDK it only carries the
trace context on (docs/design.md, "Without an SDK").
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from functools import partial
from typing import Any, Callable, TypeVar

from opentelemetry import context as otel_context
from opentelemetry.context import Context
from opentelemetry.metrics import Meter
from opentelemetry.semconv._incubating.attributes.messaging_attributes import (
    MESSAGING_BATCH_MESSAGE_COUNT,
    MESSAGING_DESTINATION_NAME,
    MESSAGING_KAFKA_OFFSET,
    MESSAGING_OPERATION_NAME,
    MESSAGING_OPERATION_TYPE,
)
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    Span,
    SpanKind,
    Tracer,
    get_current_span,
)

from kafka_autotrace.core.adapter import RecordGetter
from kafka_autotrace.core.attributes import (
    PIPELINE_AGE_ATTRIBUTE,
    PIPELINE_ORIGIN,
    POLL,
    RECEIVE,
    AttributeBuilder,
    Attributes,
    metric_attributes,
)
from kafka_autotrace.core.client import ClientInfo, ClientState
from kafka_autotrace.core.client_metrics import FigureReader
from kafka_autotrace.core.failures import Failure, record_failure
from kafka_autotrace.core.gaps import Skipped, skipped_attributes
from kafka_autotrace.core.inflight import InflightCap
from kafka_autotrace.core.lag import LagReader
from kafka_autotrace.core.links import LazyLinks, RecordLink
from kafka_autotrace.core.metrics import MessagingInstruments
from kafka_autotrace.core.parenting import Parenting
from kafka_autotrace.core.pipeline import ORIGIN_HEADER, Origin, origin_in, with_span_and_origin
from kafka_autotrace.core.propagation import merge_headers, nothing_to_propagate, span_headers
from kafka_autotrace.core.scope import ProcessScope
from kafka_autotrace.core.sdk import SdkPresence
from kafka_autotrace.core.sending import MeasuredSend, PassThroughSend, PendingSend, Send
from kafka_autotrace.core.settings import Settings
from kafka_autotrace.core.unsampled import SpanStarter

_logger = logging.getLogger(__name__)

RecordT = TypeVar("RecordT")
ProduceHook = Callable[[Span, str, object, object], None]
"""Called as ``hook(span, topic, key, value)`` after a send span starts."""
ConsumeHook = Callable[[Span, Any], None]
"""Called as ``hook(span, record)`` with the client library's own record object."""


def _unmeasured(elapsed: float) -> None:
    """The end of a process scope that records nothing."""


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
        self._spans = SpanStarter(tracer)
        self._sdk = SdkPresence(tracer, meter)
        self._instruments = MessagingInstruments.create(meter, settings.histogram_budget)
        self._attributes = AttributeBuilder(settings, self._instruments)
        self._parenting = Parenting(settings.incoming_context)
        self._cap = InflightCap(settings.max_inflight_spans)
        self._produce_hook = produce_hook
        self._consume_hook = consume_hook

    # -- producer ---------------------------------------------------------------------------

    def passes_send_untouched(self) -> bool:
        """Whether a send made now reaches the client exactly as the application made it,
        whatever its arguments: the pass-through with no context to carry and no hook to
        call. Asked before a send's arguments are read, so that such a send, the common one
        in a service without an SDK, costs no more than the question."""
        if self._produce_hook is not None or not self._sdk.idle():
            return False
        return not self.settings.propagate or nothing_to_propagate()

    def start_send(
        self,
        client: ClientInfo,
        topic: object,
        key: object,
        value: object,
        partition: object,
        headers: object,
        propagated: bool = True,
    ) -> Send | None:
        """Start the ``send {topic}`` span in the current context; None for excluded topics
        and for a pass-through with nothing to carry. ``propagated`` says whether its context
        goes into the message: only then is it the message's creation context, kind PRODUCER;
        otherwise it is a CLIENT span, as the conventions ask."""
        if not isinstance(topic, str) or self.settings.is_excluded(topic):
            return None
        if self._sdk.idle():
            return self._pass_send_through(topic, key, value)
        destination = self._attributes.destination(client, topic)
        # Read once, for the span's parent and the pipeline origin the message carries on.
        current = otel_context.get_current()
        # A send that starts a pipeline carries no origin: its record's timestamp is one.
        origin = origin_in(current)
        if not self._cap.admit():
            carrier = NonRecordingSpan(get_current_span(current).get_span_context())
            headers = span_headers(carrier, current) if propagated else {}
            return MeasuredSend(carrier, destination, origin, headers)
        span = self._spans.start(
            destination.send_name,
            context=current,
            kind=SpanKind.PRODUCER if propagated else SpanKind.CLIENT,
            attributes=destination.send_attributes
            if partition is None
            else destination.send_start(partition),
            extra=self._attributes.message,
            extra_args=(key, value, headers),
        )
        recording = span.is_recording()
        if self._produce_hook is not None:
            _run_hook(self._produce_hook, span, topic, key, value)
        headers = span_headers(span, current) if propagated else {}
        if not recording:
            # The cap bounds the spans waiting to be ended and exported; a span the sampler
            # dropped is neither, and its send is only measured at the broker's answer.
            self._cap.ended()
            return MeasuredSend(span, destination, origin, headers)
        return PendingSend(span, destination, origin, headers, self._cap)

    def _pass_send_through(self, topic: str, key: object, value: object) -> PassThroughSend | None:
        span = get_current_span()
        if self._produce_hook is not None:
            _run_hook(self._produce_hook, span, topic, key, value)
        if not self.settings.propagate:
            return None
        trace_headers = span_headers(span)
        origin = origin_in()
        if not trace_headers and origin is None:
            return None
        return PassThroughSend(span, trace_headers, origin)

    def headers_for(self, pending: Send, headers: object) -> object:
        """The headers to send: the caller's plus the propagator's and the pipeline origin, in
        a new container."""
        trace_headers = pending.trace_headers
        if pending.origin is not None:
            trace_headers = {**trace_headers, ORIGIN_HEADER: pending.origin.header}
        return merge_headers(headers, trace_headers)

    # -- the clients' own statistics --------------------------------------------------------

    def bridges_client_metrics(self) -> bool:
        """Whether a client constructed now gets its own statistics bridged: the setting is on
        and our meter records."""
        return self.settings.client_metrics and self._sdk.meter_records()

    def report_client(self, client: object, reader: FigureReader) -> None:
        """Report ``client``'s own figures from now on, when they are bridged at all."""
        if self.bridges_client_metrics():
            self._instruments.client_metrics.track(client, reader)

    # -- consumer ---------------------------------------------------------------------------

    def report_lag(self, consumer: object, state: ClientState, reader: LagReader) -> None:
        """Report ``consumer``'s lag from now on, until :meth:`stop_reporting_lag`."""
        if not self._sdk.idle():
            state.reported = True
            self._instruments.consumer_lag.track(consumer, state, reader)

    def stop_reporting_lag(self, consumer: object) -> None:
        """Stop reporting ``consumer``'s lag and its own figures (it closed)."""
        self._instruments.consumer_lag.forget(consumer)
        self._instruments.client_metrics.forget(consumer)

    def count_skipped(self, client: ClientInfo, skipped: Skipped) -> None:
        """Count records ``client``'s group never got."""
        attributes = skipped_attributes(skipped, client.consumer_group)
        self._instruments.skipped_messages.add(skipped.count, attributes)

    def start_process(
        self,
        record: RecordT,
        getter: RecordGetter[RecordT],
        client: ClientInfo,
        incoming: Context | None = None,
        counted: bool = False,
    ) -> ProcessScope | None:
        """Start the ``process {topic}`` span for a record and make it current.

        ``incoming`` passes a context already extracted for this record (batch APIs extract
        once for the poll span's links); ``counted`` says the consumed-messages counter
        already counted the record.
        """
        topic = getter.topic(record)
        if self.settings.is_excluded(topic):
            return None
        # Read once, and only when needed: confluent-kafka builds a new list on every call.
        headers = None
        if incoming is None or self.settings.capture_headers:
            headers = getter.headers(record)
        if incoming is None:
            incoming = self._parenting.incoming(headers)
        idle = self._sdk.idle()
        parent, links = self._parenting.parent_and_links(incoming, linked=not idle)
        if idle:
            return self._pass_process_through(record, parent)
        destination = self._attributes.destination(client, topic)
        start_attributes = destination.process_start(getter.partition(record))
        if self.settings.metric_partitions:
            destination = destination.in_partition(getter.partition(record))
        origin, pipeline_age = destination.consumed(
            getter.timestamp_ms(record), origin_in(parent), counted
        )
        span = self._spans.start(
            destination.process_name,
            context=parent,
            kind=SpanKind.CONSUMER,
            attributes=start_attributes,
            links=links,
            extra=self._record_attributes,
            extra_args=(record, getter, headers, origin, pipeline_age),
        )
        if self._consume_hook is not None:
            _run_hook(self._consume_hook, span, record)
        context = with_span_and_origin(parent, span, origin)
        return ProcessScope(span, context, destination.processed)

    def _record_attributes(
        self,
        record: RecordT,
        getter: RecordGetter[RecordT],
        headers: object,
        origin: Origin,
        pipeline_age: float,
    ) -> Attributes:
        """What a recording process span gets of its record and its pipeline."""
        attributes = self._attributes.message(getter.key(record), getter.value(record), headers)
        offset = getter.offset(record)
        if offset is not None:
            attributes[MESSAGING_KAFKA_OFFSET] = offset
        attributes[PIPELINE_ORIGIN] = origin.topic
        attributes[PIPELINE_AGE_ATTRIBUTE] = pipeline_age
        return attributes

    def _pass_process_through(self, record: object, parent: Context) -> ProcessScope | None:
        span = get_current_span(parent)
        if self._consume_hook is not None:
            _run_hook(self._consume_hook, span, record)
        if parent is otel_context.get_current():
            return None  # nothing came in to make current
        return ProcessScope(span, parent, _unmeasured)

    def record_poll(
        self,
        records: Sequence[RecordT],
        getter: RecordGetter[RecordT],
        client: ClientInfo,
        started_ns: int,
        started: float,
        failure: Failure | None = None,
    ) -> list[Context | None]:
        """Emit the ``poll`` span of a batch call that returned ``records`` and count them.

        The span runs from the call (``started_ns``, wall clock for the span and ``started``,
        perf counter for the metric) to now and links every record's producer, each link
        with what varies per record. ``failure``: an error the call returned beside the
        records. Returns the incoming contexts, one per record, for the records' process
        spans to reuse.
        """
        incoming = [self._parenting.incoming(getter.headers(record)) for record in records]
        if self._sdk.idle():
            return incoming
        # Per topic, and per partition too when the metrics name partitions.
        by_partition = self.settings.metric_partitions
        counts: dict[tuple[str, int | None], int] = {}
        for record in records:
            where = (getter.topic(record), getter.partition(record) if by_partition else None)
            counts[where] = counts.get(where, 0) + 1
        topics = sorted({topic for topic, _ in counts})
        if any(not self.settings.is_excluded(topic) for topic in topics):
            links = LazyLinks(partial(self._poll_links, records, getter, incoming, len(topics) > 1))
            self._poll_span(client, topics, len(records), links, started_ns, failure)
            self._count_received(client, counts, started, failure)
        return incoming

    def _poll_links(
        self,
        records: Sequence[RecordT],
        getter: RecordGetter[RecordT],
        incoming: list[Context | None],
        several_topics: bool,
    ) -> list[Link]:
        """A link per record to its producer, with the record's partition, offset, key (when
        captured) and, in a batch of several topics, topic: the conventions put what varies
        per message of a batch on its links. Read only for a span that records."""
        links: list[Link] = []
        for record, context in zip(records, incoming):
            if context is None:
                continue
            span_context = get_current_span(context).get_span_context()
            if span_context.is_valid:
                links.append(
                    RecordLink(span_context, record, getter, self._attributes, several_topics)
                )
        return links

    def record_failed_receive(self, client: ClientInfo, failure: Failure, started: float) -> None:
        """Emit the ``poll`` span of a receive call that raised or returned an error and no
        record, failed, and measure the call with its ``error.type``. ``started`` is the perf
        counter at the call: the wall clock is read only for a failure."""
        if self._sdk.idle():
            return
        duration = time.perf_counter() - started
        started_ns = time.time_ns() - int(duration * 1e9)
        self._poll_span(client, [], None, [], started_ns, failure)
        self._instruments.operation_duration.record(
            duration,
            {
                **metric_attributes(client, POLL, None, None, RECEIVE),
                ERROR_TYPE: failure.error_type,
            },
        )

    def _poll_span(
        self,
        client: ClientInfo,
        topics: list[str],
        count: int | None,
        links: Sequence[Link],
        started_ns: int,
        failure: Failure | None,
    ) -> None:
        attributes = dict(self._attributes.of_client(client))
        attributes[MESSAGING_OPERATION_NAME] = POLL
        attributes[MESSAGING_OPERATION_TYPE] = RECEIVE
        if count is not None:
            attributes[MESSAGING_BATCH_MESSAGE_COUNT] = count
        if len(topics) == 1:
            attributes[MESSAGING_DESTINATION_NAME] = topics[0]
            name = f"{POLL} {topics[0]}"
        else:
            name = POLL
        span = self._spans.start(
            name, kind=SpanKind.CLIENT, attributes=attributes, links=links, start_time=started_ns
        )
        if failure is not None and span.is_recording():
            record_failure(
                span, RECEIVE, failure.error_type, failure.exception, failure.description
            )
        span.end()

    def _count_received(
        self,
        client: ClientInfo,
        counts: dict[tuple[str, int | None], int],
        started: float,
        failure: Failure | None,
    ) -> None:
        duration = time.perf_counter() - started
        error_type = None if failure is None else failure.error_type
        for (topic, partition), count in counts.items():
            if not self.settings.is_excluded(topic):
                destination = self._attributes.destination(client, topic)
                destination.in_partition(partition).received(count, duration, error_type)


class TelemetrySlot:
    """Where the wrappers of one client library find the telemetry: set while its instrumentor
    is instrumented, None otherwise."""

    __slots__ = ("telemetry",)

    def __init__(self) -> None:
        self.telemetry: KafkaTelemetry | None = None


def _run_hook(hook: Callable[..., None], *args: object) -> None:
    try:
        hook(*args)
    except Exception:
        _logger.exception("kafka-autotrace hook %r raised; ignored", hook)
