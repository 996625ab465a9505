"""An ordinary confluent-kafka consumer in a group: no OpenTelemetry code anywhere.

Usage: confluent_consumer.py BOOTSTRAP TOPIC COUNT poll|consume|deserializing GROUP
"""

import sys
import time

from confluent_kafka import Consumer, DeserializingConsumer
from confluent_kafka.serialization import StringDeserializer


def handle(message: object) -> None:
    print(f"handled {message.offset()}: {message.value()!r}", flush=True)  # type: ignore[attr-defined]


def main() -> None:
    bootstrap, topic, count, mode, group = sys.argv[1:6]
    config = {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": 6000,
    }
    if mode == "deserializing":
        config["value.deserializer"] = StringDeserializer()
        consumer = DeserializingConsumer(config)
    else:
        consumer = Consumer(config)
    consumer.subscribe([topic])
    handled, deadline = 0, time.monotonic() + 30
    while handled < int(count) and time.monotonic() < deadline:
        if mode == "consume":
            messages = consumer.consume(int(count) - handled, 0.5)
        else:
            message = consumer.poll(0.5)
            messages = [] if message is None else [message]
        for message in messages:
            if message.error() is not None:
                continue
            handle(message)
            handled += 1
    consumer.close()
    print(f"consumed {handled}", flush=True)


if __name__ == "__main__":
    main()
