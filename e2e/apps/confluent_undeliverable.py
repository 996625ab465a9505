"""A confluent-kafka producer whose broker is gone: the delivery callback reports the error.
No OpenTelemetry code anywhere.

Usage: confluent_undeliverable.py BOOTSTRAP TOPIC
"""

import sys

from confluent_kafka import Producer


def on_delivery(error: object, message: object) -> None:
    print(f"failed {error.name()} {message.value()!r}", flush=True)  # type: ignore[attr-defined]


def main() -> None:
    bootstrap, topic = sys.argv[1:3]
    producer = Producer({"bootstrap.servers": bootstrap, "message.timeout.ms": 500, "log_level": 0})
    producer.produce(topic, b"lost order", on_delivery=on_delivery)
    print(f"left in queue {producer.flush(15)}", flush=True)


if __name__ == "__main__":
    main()
