"""A pipeline stage: consumes orders, produces shipments. No OpenTelemetry code anywhere.

Usage: kafka_python_stage.py BOOTSTRAP IN_TOPIC OUT_TOPIC COUNT GROUP
"""

import sys

from kafka import KafkaConsumer, KafkaProducer


def main() -> None:
    bootstrap, source, target, count, group = sys.argv[1:6]
    consumer = KafkaConsumer(
        source,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        consumer_timeout_ms=30_000,
    )
    producer = KafkaProducer(bootstrap_servers=bootstrap, client_id="shipping-stage")
    forwarded = 0
    for record in consumer:
        producer.send(target, record.value.replace(b"order", b"shipment"), key=record.key)
        forwarded += 1
        if forwarded == int(count):
            break
    producer.flush()
    producer.close()
    consumer.close()
    print(f"forwarded {forwarded}", flush=True)


if __name__ == "__main__":
    main()
