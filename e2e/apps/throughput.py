"""An ordinary app that produces COUNT messages and consumes them back, timing both loops.
No OpenTelemetry code anywhere.

Usage: throughput.py kafka-python|confluent-kafka|aiokafka BOOTSTRAP TOPIC COUNT

Prints one JSON line: messages per second for the produce loop (up to the final flush, so
every acknowledgement is included) and for the consume loop.
"""

import asyncio
import json
import sys
import time

VALUE = b"v" * 100


def kafka_python(bootstrap: str, topic: str, count: int) -> tuple[float, float]:
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition

    producer = KafkaProducer(bootstrap_servers=bootstrap)
    started = time.perf_counter()
    for index in range(count):
        producer.send(topic, VALUE, key=str(index).encode())
    producer.flush()
    produced = time.perf_counter() - started
    producer.close()

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, auto_offset_reset="earliest", consumer_timeout_ms=30_000
    )
    consumer.assign([TopicPartition(topic, 0)])
    consumer.poll(timeout_ms=0)
    started = time.perf_counter()
    for seen, _ in enumerate(consumer, 1):
        if seen == count:
            break
    consumed = time.perf_counter() - started
    consumer.close()
    return produced, consumed


def confluent_kafka(bootstrap: str, topic: str, count: int) -> tuple[float, float]:
    from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

    producer = Producer({"bootstrap.servers": bootstrap})
    started = time.perf_counter()
    for index in range(count):
        while True:
            try:
                producer.produce(topic, VALUE, str(index).encode())
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    producer.flush(60)
    produced = time.perf_counter() - started

    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": f"{topic}-throughput", "log_level": 3}
    )
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    started, seen = time.perf_counter(), 0
    while seen < count:
        message = consumer.poll(30)
        if message is None:
            raise SystemExit(f"no message within 30 s after {seen}")
        if message.error() is None:
            seen += 1
    consumed = time.perf_counter() - started
    consumer.close()
    return produced, consumed


async def _aiokafka(bootstrap: str, topic: str, count: int) -> tuple[float, float]:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    started = time.perf_counter()
    for index in range(count):
        await producer.send(topic, VALUE, key=str(index).encode())
    await producer.flush()
    produced = time.perf_counter() - started
    await producer.stop()

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    consumer.assign([TopicPartition(topic, 0)])
    started, seen = time.perf_counter(), 0
    while seen < count:
        await asyncio.wait_for(consumer.getone(), 30)
        seen += 1
    consumed = time.perf_counter() - started
    await consumer.stop()
    return produced, consumed


def aiokafka(bootstrap: str, topic: str, count: int) -> tuple[float, float]:
    return asyncio.run(_aiokafka(bootstrap, topic, count))


CLIENTS = {"kafka-python": kafka_python, "confluent-kafka": confluent_kafka, "aiokafka": aiokafka}


def main() -> None:
    client, bootstrap, topic, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    produced, consumed = CLIENTS[client](bootstrap, topic, count)
    result = {"produce_msg_per_s": count / produced, "consume_msg_per_s": count / consumed}
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
