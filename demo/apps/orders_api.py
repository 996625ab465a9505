"""Demo stage 1, the orders service: publishes each new order (kafka-python).

An ordinary producer; nothing here knows about OpenTelemetry. The demo runs it under
``opentelemetry-instrument``, which is all it takes to trace it.

Usage: orders_api.py BOOTSTRAP TOPIC COUNT
"""

import json
import sys
import time

from kafka import KafkaProducer


def main() -> None:
    bootstrap, topic, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        client_id="orders-api",
        key_serializer=str.encode,
        value_serializer=lambda order: json.dumps(order).encode(),
    )
    for number in range(1, count + 1):
        order = {"order": number, "sku": f"sku-{number % 3}", "quantity": number}
        sent = producer.send(topic, order, key=f"order-{number}").get(timeout=30)
        print(f"placed order-{number} (partition {sent.partition}, offset {sent.offset})")
        time.sleep(0.05)  # orders trickle in rather than arrive as one batch
    producer.close()


if __name__ == "__main__":
    main()
