"""An ordinary kafka-python consumer in a group: no OpenTelemetry code anywhere.

Usage: kafka_python_consumer.py BOOTSTRAP TOPIC COUNT iterate|poll GROUP
"""

import sys

from kafka import KafkaConsumer


def handle(record: object) -> None:
    print(f"handled {record.offset}", flush=True)  # type: ignore[attr-defined]


def main() -> None:
    bootstrap, topic, count, mode, group = sys.argv[1:6]
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        consumer_timeout_ms=30_000,
    )
    handled = 0
    if mode == "iterate":
        for record in consumer:
            handle(record)
            handled += 1
            if handled == int(count):
                break
    else:
        while handled < int(count):
            for records in consumer.poll(timeout_ms=1000).values():
                for record in records:
                    handle(record)
                    handled += 1
    consumer.close()
    print(f"consumed {handled}", flush=True)


if __name__ == "__main__":
    main()
