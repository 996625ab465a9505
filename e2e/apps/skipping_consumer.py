"""A confluent-kafka consumer that falls behind while the broker deletes records it has not
read: no OpenTelemetry code anywhere.

Usage: skipping_consumer.py BOOTSTRAP TOPIC GROUP BEFORE AFTER RESUME_FILE

It takes BEFORE records of partition 0, pauses (fetching nothing more) and prints "paused";
once RESUME_FILE exists it resumes, takes AFTER more records, prints "handled OFFSETS" (the
offsets it got after the pause) and stays up, polling, until SIGTERM, so that its metrics can
be scraped.
"""

import os
import sys
import time

from confluent_kafka import Consumer, TopicPartition


def take(consumer: Consumer, count: int) -> list[int]:
    offsets: list[int] = []
    deadline = time.monotonic() + 60
    while len(offsets) < count and time.monotonic() < deadline:
        message = consumer.poll(0.2)
        if message is not None and message.error() is None:
            offsets.append(message.offset())
    return offsets


def main() -> None:
    bootstrap, topic, group, before, after, resume_file = sys.argv[1:7]
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    partition = TopicPartition(topic, 0)
    consumer.assign([partition])
    take(consumer, int(before))
    consumer.pause([partition])
    print("paused", flush=True)
    while not os.path.exists(resume_file):
        consumer.poll(0.2)
    consumer.resume([partition])
    print(f"handled {take(consumer, int(after))}", flush=True)
    while True:
        consumer.poll(0.2)


if __name__ == "__main__":
    main()
