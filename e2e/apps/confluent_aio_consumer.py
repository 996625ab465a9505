"""An ordinary asyncio consumer (confluent_kafka.aio) in a group: no OpenTelemetry code.

Usage: confluent_aio_consumer.py BOOTSTRAP TOPIC COUNT poll|consume GROUP
"""

import asyncio
import sys
import time

from confluent_kafka.aio import AIOConsumer


async def main() -> None:
    bootstrap, topic, count, mode, group = sys.argv[1:6]
    consumer = AIOConsumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 6000,
        }
    )
    await consumer.subscribe([topic])
    handled, deadline = 0, time.monotonic() + 30
    while handled < int(count) and time.monotonic() < deadline:
        if mode == "consume":
            messages = await consumer.consume(int(count) - handled, 0.5)
        else:
            message = await consumer.poll(0.5)
            messages = [] if message is None else [message]
        for message in messages:
            if message.error() is None:
                print(f"handled {message.offset()}", flush=True)
                handled += 1
    await consumer.close()
    print(f"consumed {handled}", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
