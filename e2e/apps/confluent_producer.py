"""An ordinary confluent-kafka producer: no OpenTelemetry code anywhere.

Usage: confluent_producer.py BOOTSTRAP TOPIC COUNT plain|serializing
"""

import sys

from confluent_kafka import Producer, SerializingProducer
from confluent_kafka.serialization import StringSerializer


def main() -> None:
    bootstrap, topic, count, kind = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    delivered = []

    def on_delivery(error: object, message: object) -> None:
        if error is None:
            delivered.append(message)

    if kind == "serializing":
        producer = SerializingProducer(
            {
                "bootstrap.servers": bootstrap,
                "key.serializer": StringSerializer(),
                "value.serializer": StringSerializer(),
            }
        )
        for index in range(count):
            producer.produce(
                topic, key=f"k{index}", value=f"order-{index}", on_delivery=on_delivery
            )
    else:
        producer = Producer({"bootstrap.servers": bootstrap, "client.id": "orders-producer"})
        for index in range(count):
            producer.produce(
                topic, f"order-{index}".encode(), f"k{index}".encode(), on_delivery=on_delivery
            )
    producer.flush(30)
    print(f"sent {len(delivered)}", flush=True)


if __name__ == "__main__":
    main()
