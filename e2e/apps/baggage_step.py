"""A confluent-kafka producer or consumer that sets or reads baggage, as a service's own code
(or its web framework's instrumentation) would. The tracing itself is left to
``opentelemetry-instrument``; the OpenTelemetry API is used for baggage only.

Usage: baggage_step.py produce BOOTSTRAP TOPIC COUNT TENANT
       baggage_step.py consume BOOTSTRAP SOURCE GROUP COUNT [TARGET]

A producer sends COUNT records with baggage tenant=TENANT and prints "sent COUNT". A consumer
prints "got SOURCE OFFSET tenant=..." (the baggage current while it handles the record) for
each of COUNT records, sends each on to TARGET while handling it if there is one, and prints
"handled COUNT".
"""

from __future__ import annotations

import sys

from confluent_kafka import Consumer, Producer
from opentelemetry import baggage, context


def produce(bootstrap: str, topic: str, count: int, tenant: str) -> None:
    producer = Producer({"bootstrap.servers": bootstrap})
    token = context.attach(baggage.set_baggage("tenant", tenant))
    for index in range(count):
        producer.produce(topic, f"python-{index}".encode(), key=f"python-{index}")
    context.detach(token)
    assert producer.flush(30) == 0
    print(f"sent {count}", flush=True)


def consume(bootstrap: str, source: str, group: str, count: int, target: str | None) -> None:
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest"}
    )
    producer = Producer({"bootstrap.servers": bootstrap})
    consumer.subscribe([source])
    handled = 0
    while handled < count:
        message = consumer.poll(1.0)
        if message is None or message.error() is not None:
            continue
        print(f"got {source} {message.offset()} tenant={baggage.get_baggage('tenant')}", flush=True)
        if target is not None:
            producer.produce(target, message.value(), key=message.key())
        handled += 1
    assert producer.flush(30) == 0
    consumer.close()
    print(f"handled {handled}", flush=True)


def main() -> None:
    if sys.argv[1] == "produce":
        produce(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5])
    else:
        target = sys.argv[6] if len(sys.argv) > 6 else None
        consume(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), target)


if __name__ == "__main__":
    main()
