"""An ordinary kafka-python producer: no OpenTelemetry code anywhere.

Usage: kafka_python_producer.py BOOTSTRAP TOPIC COUNT
"""

import sys

from kafka import KafkaProducer


def main() -> None:
    bootstrap, topic, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    producer = KafkaProducer(bootstrap_servers=bootstrap, client_id="orders-producer")
    futures = [
        producer.send(topic, f"order-{index}".encode(), key=f"k{index}".encode())
        for index in range(count)
    ]
    for future in futures:
        future.get(timeout=30)
    producer.close()
    print(f"sent {count}", flush=True)


if __name__ == "__main__":
    main()
