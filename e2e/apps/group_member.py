"""An ordinary consumer-group member that runs until it is stopped: no OpenTelemetry code.

Usage: group_member.py CLIENT BOOTSTRAP TOPIC GROUP, CLIENT one of kafka-python,
confluent-kafka, aiokafka. Prints ``assigned`` once it owns a partition, then ``handled
PARTITION OFFSET VALUE`` for each record, committing after each one (so a member that takes
over starts after the records already handled; a commit refused during a rebalance is
printed and the loop goes on, as an application that tolerates redelivery does).
"""

import asyncio
import sys

SESSION_TIMEOUT_MS = 3000
HEARTBEAT_MS = 500


def handled(partition: int, offset: int, value: bytes) -> None:
    print(f"handled {partition} {offset} {value.decode()}", flush=True)


def config(bootstrap: str, group: str) -> dict[str, object]:
    """The consumer's configuration in kafka-python's spelling, which aiokafka shares."""
    return {
        "bootstrap_servers": bootstrap,
        "group_id": group,
        "auto_offset_reset": "earliest",
        "enable_auto_commit": False,
        "session_timeout_ms": SESSION_TIMEOUT_MS,
        "heartbeat_interval_ms": HEARTBEAT_MS,
    }


def kafka_python(bootstrap: str, topic: str, group: str) -> None:
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(topic, **config(bootstrap, group))
    # Its first join then holds the topic's partitions: joined without them, kafka-python 3.0
    # joins again, and drops that join if a poll's timeout ends before the broker answers.
    consumer.partitions_for_topic(topic)
    while not consumer.assignment():
        consumer.poll(timeout_ms=100)
    print("assigned", flush=True)
    for record in consumer:
        handled(record.partition, record.offset, record.value)
        try:
            consumer.commit()
        except Exception as error:
            print("commit failed:", error, flush=True)


def confluent_kafka(bootstrap: str, topic: str, group: str) -> None:
    from confluent_kafka import Consumer

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "session.timeout.ms": SESSION_TIMEOUT_MS,
            "heartbeat.interval.ms": HEARTBEAT_MS,
        }
    )
    consumer.subscribe([topic], on_assign=lambda *_: print("assigned", flush=True))
    while True:
        message = consumer.poll(0.2)
        if message is None or message.error() is not None:
            continue
        handled(message.partition(), message.offset(), message.value())
        try:
            consumer.commit(message, asynchronous=False)
        except Exception as error:
            print("commit failed:", error, flush=True)


async def aiokafka(bootstrap: str, topic: str, group: str) -> None:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(topic, **config(bootstrap, group))
    await consumer.start()
    while not consumer.assignment():
        await asyncio.sleep(0.1)
    print("assigned", flush=True)
    async for record in consumer:
        handled(record.partition, record.offset, record.value)
        try:
            await consumer.commit()
        except Exception as error:
            print("commit failed:", error, flush=True)


def main() -> None:
    client, bootstrap, topic, group = sys.argv[1:5]
    if client == "aiokafka":
        asyncio.run(aiokafka(bootstrap, topic, group))
    else:
        {"kafka-python": kafka_python, "confluent-kafka": confluent_kafka}[client](
            bootstrap, topic, group
        )


if __name__ == "__main__":
    main()
