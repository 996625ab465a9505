"""What only the kafka-python adapter does, against a real broker; what every adapter does is
tested once for all clients in tests/contract/."""

from __future__ import annotations

import copy
import pickle
from collections.abc import Iterator

import pytest
from contract.drivers.base import driver_fixture
from contract.drivers.kafka_python import KafkaPython
from kafka.errors import MessageSizeTooLargeError
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.trace import StatusCode
from support.otel import RecordingSdk, instrumented
from support.spans import one

from kafka_autotrace.kafka_python import KafkaPythonInstrumentor


@pytest.fixture
def sdk() -> Iterator[RecordingSdk]:
    with instrumented(KafkaPythonInstrumentor()) as recording:
        yield recording


driver = driver_fixture(KafkaPython)


def test_a_rejected_send_fails_unchanged_and_ends_the_span(
    sdk: RecordingSdk, driver: KafkaPython, topic: str
) -> None:
    """kafka-python 2.1+ raises for a record over max_request_size; 2.0.x returns an
    already-failed future instead, which must fail the same and end the span too."""
    producer = driver.producer(max_request_size=512)
    with pytest.raises(MessageSizeTooLargeError) as raised:
        producer.send(topic, b"x" * 4096).get(timeout=10)
    span = one(sdk.spans("send"))
    assert span.status.status_code is StatusCode.ERROR
    assert (span.attributes or {})[ERROR_TYPE] == "MessageSizeTooLargeError"
    assert str(raised.value) in (span.status.description or "")


def test_records_from_poll_are_still_plain_lists(
    sdk: RecordingSdk, driver: KafkaPython, topic: str
) -> None:
    """poll()'s lists are replaced in place by ones that trace their iteration; to the
    application they must still be the lists kafka-python returned."""
    driver.send(topic, b"v")
    consumer = driver.consumer(topic)
    records: list[object] = []
    for _ in range(50):
        for partition_records in consumer.poll(timeout_ms=200).values():
            records = partition_records
        if records:
            break
    batch = consumer.poll(timeout_ms=0)
    consumer.close()
    assert len(records) == 1
    assert batch == {}
    assert isinstance(records, list)
    for duplicate in (pickle.loads(pickle.dumps(records)), copy.copy(records)):
        assert type(duplicate) is list
        assert duplicate == records
