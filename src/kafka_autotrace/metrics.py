"""The messaging metrics: semantic-convention names and units, recommended buckets as advice."""

from __future__ import annotations

from dataclasses import dataclass

from opentelemetry.metrics import Counter, Histogram, Meter
from opentelemetry.semconv._incubating.metrics.messaging_metrics import (
    MESSAGING_CLIENT_CONSUMED_MESSAGES,
    MESSAGING_CLIENT_OPERATION_DURATION,
    MESSAGING_CLIENT_SENT_MESSAGES,
    MESSAGING_PROCESS_DURATION,
)

# The bucket boundaries the messaging semantic conventions recommend for duration histograms.
DURATION_BUCKETS_S = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
)  # fmt: skip

# Time in queue spans milliseconds (a live pipeline) to hours (a consumer catching up).
AGE_BUCKETS_S = (
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
    900.0, 3600.0, 14400.0, 86400.0,
)  # fmt: skip

RECORD_AGE = "kafka_autotrace.record.age"
"""Not a semantic convention: how long a record waited between its timestamp and the start of
its processing. It is the time-in-queue figure that end-to-end latency hides."""


@dataclass(frozen=True)
class MessagingInstruments:
    operation_duration: Histogram
    sent_messages: Counter
    consumed_messages: Counter
    process_duration: Histogram
    record_age: Histogram

    @classmethod
    def create(cls, meter: Meter) -> MessagingInstruments:
        return cls(
            operation_duration=meter.create_histogram(
                MESSAGING_CLIENT_OPERATION_DURATION,
                unit="s",
                description="Duration of a send (until the broker acknowledged it) or a receive.",
                explicit_bucket_boundaries_advisory=DURATION_BUCKETS_S,
            ),
            sent_messages=meter.create_counter(
                MESSAGING_CLIENT_SENT_MESSAGES,
                unit="{message}",
                description="Messages the producer attempted to send to the broker.",
            ),
            consumed_messages=meter.create_counter(
                MESSAGING_CLIENT_CONSUMED_MESSAGES,
                unit="{message}",
                description="Messages handed to the application by the consumer.",
            ),
            process_duration=meter.create_histogram(
                MESSAGING_PROCESS_DURATION,
                unit="s",
                description="Time the application spent handling one message.",
                explicit_bucket_boundaries_advisory=DURATION_BUCKETS_S,
            ),
            record_age=meter.create_histogram(
                RECORD_AGE,
                unit="s",
                description="Time between a record's timestamp and the start of its processing.",
                explicit_bucket_boundaries_advisory=AGE_BUCKETS_S,
            ),
        )
