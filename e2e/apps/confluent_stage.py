"""A pipeline stage on confluent-kafka: consumes orders, produces shipments while handling each.
No OpenTelemetry code anywhere.

Usage: confluent_stage.py BOOTSTRAP IN_TOPIC OUT_TOPIC COUNT GROUP
"""

import sys
import time

from confluent_kafka import Consumer, Producer


def main() -> None:
    bootstrap, source, target, count, group = sys.argv[1:6]
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 6000,
        }
    )
    producer = Producer({"bootstrap.servers": bootstrap, "client.id": "shipping-stage"})
    consumer.subscribe([source])
    forwarded, deadline = 0, time.monotonic() + 30
    while forwarded < int(count) and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is None or message.error() is not None:
            continue
        producer.produce(target, message.value().replace(b"order", b"shipment"), message.key())
        forwarded += 1
    producer.flush(30)
    consumer.close()
    print(f"forwarded {forwarded}", flush=True)


if __name__ == "__main__":
    main()
