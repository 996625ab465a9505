"""An ordinary aiokafka consumer in a group: no OpenTelemetry code anywhere.

Usage: aiokafka_consumer.py BOOTSTRAP TOPIC COUNT iterate|getone|getmany GROUP
"""

import asyncio
import sys
import time

from aiokafka import AIOKafkaConsumer, ConsumerRecord


def handle(record: ConsumerRecord[bytes, bytes]) -> None:
    print(f"handled {record.offset}: {record.value!r}", flush=True)


async def main() -> None:
    bootstrap, topic, count, mode, group = sys.argv[1:6]
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest"
    )
    await consumer.start()
    handled = 0
    if mode == "iterate":
        async for record in consumer:
            handle(record)
            handled += 1
            if handled == int(count):
                break
    elif mode == "getone":
        while handled < int(count):
            handle(await consumer.getone())
            handled += 1
    else:
        deadline = time.monotonic() + 30
        while handled < int(count) and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=1000)
            for records in batches.values():
                for record in records:
                    handle(record)
                    handled += 1
    await consumer.stop()
    print(f"consumed {handled}", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
