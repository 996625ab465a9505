"""A service that forks workers after start-up: no OpenTelemetry code anywhere.

Usage: fork_worker.py kafka-python|confluent-kafka|aiokafka BOOTSTRAP IN_TOPIC OUT_TOPIC GROUP

It takes one order from IN_TOPIC and, while handling it, has a child made by ``os.fork()``
and a child made by ``multiprocessing`` (fork start method) each send a message to OUT_TOPIC
with a producer of their own, then sends one itself.

The aiokafka service handles the order inside its event loop, and forks there. A process
forked inside a running loop cannot run another loop in its thread (before Python 3.12 it
still believes the parent's loop runs there), so each aiokafka send runs a loop of its own in
a new thread, in the context of the code that sends, as ``asyncio.to_thread`` would.
"""

import asyncio
import contextvars
import multiprocessing
import os
import sys
import threading
import time
from collections.abc import Coroutine
from typing import Any


def take_one(client: str, bootstrap: str, topic: str, group: str) -> Any:
    """A consumer that has just handed over one record (so is handling it)."""
    if client == "kafka-python":
        from kafka import KafkaConsumer

        consumer = KafkaConsumer(
            topic, bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest"
        )
        next(consumer)
        return consumer
    from confluent_kafka import Consumer

    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([topic])
    while True:
        message = consumer.poll(30)
        if message is not None and message.error() is None:
            return consumer


async def aiokafka_send(bootstrap: str, topic: str, value: bytes) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(topic, value)
    finally:
        await producer.stop()


def in_new_loop(coroutine: Coroutine[Any, Any, None]) -> None:
    """Run ``coroutine`` to the end in a new thread's event loop, in the current context."""
    failures: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(coroutine)
        except BaseException as error:
            failures.append(error)

    thread = threading.Thread(target=contextvars.copy_context().run, args=(run,))
    thread.start()
    thread.join()
    if failures:
        raise failures[0]


def send(client: str, bootstrap: str, topic: str, value: bytes) -> None:
    if client == "aiokafka":
        in_new_loop(aiokafka_send(bootstrap, topic, value))
        return
    if client == "kafka-python":
        from kafka import KafkaProducer

        producer = KafkaProducer(bootstrap_servers=bootstrap)
        producer.send(topic, value).get(timeout=30)
        producer.close()
        return
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap})
    producer.produce(topic, value)
    if producer.flush(30) != 0:
        raise SystemExit("not delivered")


def child(client: str, bootstrap: str, topic: str, value: bytes) -> None:
    send(client, bootstrap, topic, value)
    # A forked child must leave with os._exit (multiprocessing does so itself): the parent's
    # clients are not usable here, so nothing of them may run at exit. That skips exit
    # handlers, so the child lives on a moment, as a worker would, for its telemetry to leave.
    time.sleep(1.5)
    os._exit(0)


def fork_and_send(client: str, bootstrap: str, target: str) -> None:
    pid = os.fork()
    if pid == 0:
        child(client, bootstrap, target, b"from os.fork")
    _, status = os.waitpid(pid, 0)
    worker = multiprocessing.get_context("fork").Process(
        target=child, args=(client, bootstrap, target, b"from multiprocessing")
    )
    worker.start()
    worker.join()
    if status != 0 or worker.exitcode != 0:
        raise SystemExit(f"a child failed: {status}, {worker.exitcode}")
    send(client, bootstrap, target, b"from the parent")


async def aiokafka_service(bootstrap: str, source: str, target: str, group: str) -> None:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        source, bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest"
    )
    await consumer.start()
    await consumer.getone()
    fork_and_send("aiokafka", bootstrap, target)
    await consumer.stop()


def main() -> None:
    client, bootstrap, source, target, group = sys.argv[1:6]
    if client == "aiokafka":
        asyncio.run(aiokafka_service(bootstrap, source, target, group))
    else:
        consumer = take_one(client, bootstrap, source, group)
        fork_and_send(client, bootstrap, target)
        consumer.close()
    print("forwarded 3", flush=True)


if __name__ == "__main__":
    main()
