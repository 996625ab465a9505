"""One step of a pipeline on the client named first: a producer (no --source), a stage
(--source and --target) or a final consumer (--source only). No OpenTelemetry code anywhere.

Usage: pipeline_step.py kafka-python|confluent-kafka|aiokafka BOOTSTRAP --count N
           [--source TOPIC --group GROUP] [--target TOPIC] [--partitions P]
           [--pace S] [--delay S] [--idle]

A producer sends COUNT messages to TARGET, round robin over its first P partitions, PACE
seconds apart, and prints "sent COUNT". A consumer prints "ready" once it has partitions, then
handles exactly COUNT records: for each it sleeps DELAY seconds, then forwards it to TARGET if
there is one. It prints "handled COUNT" and, as JSON, the next offset it would take on each
partition ("positions {...}").

With --idle the step then stays up until SIGTERM, so its metrics can still be read: a
consumer pauses every partition and keeps polling (it stays in its group, takes nothing more
and its backlog stays put), a producer just waits. Without it the step closes its clients and
exits, which flushes the last metrics.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any, Callable

Record = tuple[int, int, bytes]
"""A consumed record's partition, offset and value."""

POLL_S = 0.2


class KafkaPython:
    def __init__(self, args: argparse.Namespace, on_ready: Callable[[], None]) -> None:
        from kafka import KafkaConsumer, KafkaProducer
        from kafka.consumer.subscription_state import ConsumerRebalanceListener

        class Ready(ConsumerRebalanceListener):  # type: ignore[misc]
            def on_partitions_revoked(self, revoked: object) -> None:
                pass

            def on_partitions_assigned(self, assigned: object) -> None:
                on_ready()

        self.producer = KafkaProducer(bootstrap_servers=args.bootstrap) if args.target else None
        self.consumer = None
        if args.source:
            self.consumer = KafkaConsumer(
                bootstrap_servers=args.bootstrap, group_id=args.group, auto_offset_reset="earliest"
            )
            self.consumer.subscribe([args.source], listener=Ready())
            # Known before the first poll joins the group, the topic's partitions are in the
            # first assignment: a second join, which kafka-python 3.0 may drop, is not needed.
            self.consumer.partitions_for_topic(args.source)

    def send(self, topic: str, value: bytes, partition: int | None) -> None:
        self.producer.send(topic, value, partition=partition)

    def flush(self) -> None:
        self.producer.flush(30)

    def take(self, most: int) -> list[Record]:
        batches = self.consumer.poll(timeout_ms=POLL_S * 1000, max_records=most)
        return [(r.partition, r.offset, r.value) for rs in batches.values() for r in rs]

    def pause(self) -> None:
        self.consumer.pause(*self.consumer.assignment())

    def close(self) -> None:
        for client in (self.producer, self.consumer):
            if client is not None:
                client.close()


class ConfluentKafka:
    def __init__(self, args: argparse.Namespace, on_ready: Callable[[], None]) -> None:
        from confluent_kafka import Consumer, Producer

        self.producer = Producer({"bootstrap.servers": args.bootstrap}) if args.target else None
        self.consumer = None
        if args.source:
            self.consumer = Consumer(
                {
                    "bootstrap.servers": args.bootstrap,
                    "group.id": args.group,
                    "auto.offset.reset": "earliest",
                    "session.timeout.ms": 6000,
                }
            )
            self.consumer.subscribe([args.source], on_assign=lambda *_: on_ready())

    def send(self, topic: str, value: bytes, partition: int | None) -> None:
        self.producer.produce(topic, value, partition=-1 if partition is None else partition)
        self.producer.poll(0)

    def flush(self) -> None:
        assert self.producer.flush(30) == 0, "messages left undelivered"

    def take(self, most: int) -> list[Record]:
        messages = self.consumer.consume(most, POLL_S)
        return [(m.partition(), m.offset(), m.value()) for m in messages if m.error() is None]

    def pause(self) -> None:
        self.consumer.pause(self.consumer.assignment())

    def close(self) -> None:
        if self.consumer is not None:
            self.consumer.close()


class AIOKafka:
    """Every call run on the app's own event loop, as the clients' tasks need one; they run
    only while a call does, which suits a step that calls them all the time."""

    def __init__(self, args: argparse.Namespace, on_ready: Callable[[], None]) -> None:
        import asyncio

        self.loop = asyncio.new_event_loop()
        self.producer, self.consumer = self.loop.run_until_complete(self._start(args, on_ready))

    async def _start(self, args: argparse.Namespace, on_ready: Callable[[], None]) -> Any:
        from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener

        class Ready(ConsumerRebalanceListener):  # type: ignore[misc]
            def on_partitions_revoked(self, revoked: object) -> None:
                pass

            def on_partitions_assigned(self, assigned: object) -> None:
                on_ready()

        producer = consumer = None
        if args.target:
            producer = AIOKafkaProducer(bootstrap_servers=args.bootstrap)
            await producer.start()
        if args.source:
            consumer = AIOKafkaConsumer(
                bootstrap_servers=args.bootstrap, group_id=args.group, auto_offset_reset="earliest"
            )
            consumer.subscribe([args.source], listener=Ready())
            await consumer.start()
        return producer, consumer

    def send(self, topic: str, value: bytes, partition: int | None) -> None:
        """Waits for the acknowledgement: the producer's sender task runs only in a call, and
        a message left queued would age in this app, not in the topic."""
        self.loop.run_until_complete(self.producer.send_and_wait(topic, value, partition=partition))

    def flush(self) -> None:
        self.loop.run_until_complete(self.producer.flush())

    def take(self, most: int) -> list[Record]:
        batches = self.loop.run_until_complete(
            self.consumer.getmany(timeout_ms=POLL_S * 1000, max_records=most)
        )
        return [(r.partition, r.offset, r.value) for rs in batches.values() for r in rs]

    def pause(self) -> None:
        async def pause() -> None:  # pause() makes a future of the running loop
            self.consumer.pause(*self.consumer.assignment())

        self.loop.run_until_complete(pause())

    def close(self) -> None:
        for client in (self.producer, self.consumer):
            if client is not None:
                self.loop.run_until_complete(client.stop())
        self.loop.close()


CLIENTS: dict[str, Callable[[argparse.Namespace, Callable[[], None]], Any]] = {
    "kafka-python": KafkaPython,
    "confluent-kafka": ConfluentKafka,
    "aiokafka": AIOKafka,
}


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("client", choices=CLIENTS)
    parser.add_argument("bootstrap")
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--source")
    parser.add_argument("--group")
    parser.add_argument("--target")
    parser.add_argument("--partitions", type=int, default=1)
    parser.add_argument("--pace", type=float, default=0.0)
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--idle", action="store_true")
    parser.add_argument("--batch", type=int, help="take at most this many messages at a time")
    parser.add_argument("--wait", type=float, default=0.0, help="seconds before the first take")
    return parser.parse_args(argv)


def produce(args: argparse.Namespace, client: Any) -> None:
    for index in range(args.count):
        client.send(args.target, f"order-{index}".encode(), index % args.partitions)
        time.sleep(args.pace)
    client.flush()
    print(f"sent {args.count}", flush=True)


def consume(args: argparse.Namespace, client: Any) -> None:
    positions: dict[int, int] = {}
    handled = 0
    time.sleep(args.wait)
    while handled < args.count:
        for partition, offset, value in client.take(
            min(args.batch or args.count, args.count - handled)
        ):
            time.sleep(args.delay)
            if args.target:
                client.send(args.target, value.replace(b"order", b"shipment"), None)
            positions[partition] = offset + 1
            handled += 1
    if args.target:
        client.flush()
    print(f"handled {handled}", flush=True)
    print(f"positions {json.dumps(positions)}", flush=True)


def idle(args: argparse.Namespace, client: Any) -> None:
    if not args.source:
        while True:
            time.sleep(1)
    client.pause()
    print("idle", flush=True)
    while True:
        taken = client.take(1)
        if taken:
            sys.exit(f"took {taken} while every partition was paused")


def main() -> None:
    args = parse(sys.argv[1:])
    client = CLIENTS[args.client](args, lambda: print("ready", flush=True))
    (consume if args.source else produce)(args, client)
    if args.idle:
        idle(args, client)
    client.close()


if __name__ == "__main__":
    main()
