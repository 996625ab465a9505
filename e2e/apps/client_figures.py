"""An ordinary producer and consumer of one topic, left running: no OpenTelemetry code.

Usage: client_figures.py kafka-python|confluent-kafka BOOTSTRAP TOPIC LINGER_MS

The producer sends a 100-byte record every 5 ms with ``linger.ms`` = LINGER_MS, serving its
delivery reports as it goes; the consumer (group TOPIC-group) reads them. The confluent-kafka
clients set ``statistics.interval.ms`` and a ``stats_cb`` of their own, counting its calls;
``stats N`` lines report the count. Prints ``running`` once the consumer got a record.
"""

import sys
import threading
import time
from typing import Any, Callable

PACE_S = 0.005
VALUE = b"v" * 100


def kafka_python(bootstrap: str, topic: str, linger_ms: int) -> tuple[Any, Callable[[], int]]:
    import kafka

    producer = kafka.KafkaProducer(
        bootstrap_servers=bootstrap, client_id="kp-producer", linger_ms=linger_ms
    )
    consumer = kafka.KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        client_id="kp-consumer",
        group_id=f"{topic}-group",
        auto_offset_reset="earliest",
    )
    # The topic's partitions known before the first poll joins the group: joined without them,
    # the group is joined again once they are known, and kafka-python 3.0 drops that second
    # join if a poll's timeout ends between its assignment and the broker's answer (the
    # consumer then stays without partitions, for good).
    consumer.partitions_for_topic(topic)

    def send() -> None:
        producer.send(topic, VALUE)

    def receive() -> int:
        return sum(len(records) for records in consumer.poll(100).values())

    return send, receive


def confluent_kafka(
    bootstrap: str, topic: str, linger_ms: int, stats: list[str]
) -> tuple[Any, Callable[[], int]]:
    import confluent_kafka

    common = {"bootstrap.servers": bootstrap, "statistics.interval.ms": 1000}
    producer = confluent_kafka.Producer(
        {**common, "client.id": "ck-producer", "linger.ms": linger_ms, "stats_cb": stats.append}
    )
    consumer = confluent_kafka.Consumer(
        {
            **common,
            "client.id": "ck-consumer",
            "group.id": f"{topic}-group",
            "auto.offset.reset": "earliest",
            "stats_cb": stats.append,
        }
    )
    consumer.subscribe([topic])

    def send() -> None:
        producer.produce(topic, VALUE)
        producer.poll(0)

    def receive() -> int:
        message = consumer.poll(0.1)
        return int(message is not None and message.error() is None)

    return send, receive


def main() -> None:
    client, bootstrap, topic, linger_ms = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    stats: list[str] = []
    if client == "kafka-python":
        send, receive = kafka_python(bootstrap, topic, linger_ms)
    else:
        send, receive = confluent_kafka(bootstrap, topic, linger_ms, stats)

    def produce() -> None:
        while True:
            send()
            time.sleep(PACE_S)

    threading.Thread(target=produce, daemon=True).start()
    running, counted = False, 0
    while True:
        if receive() and not running:
            print("running", flush=True)
            running = True
        if len(stats) != counted:
            counted = len(stats)
            print(f"stats {counted}", flush=True)


if __name__ == "__main__":
    main()
