"""A pipeline stage on aiokafka: consumes orders, produces shipments. No OpenTelemetry code.

Usage: aiokafka_stage.py BOOTSTRAP IN_TOPIC OUT_TOPIC COUNT GROUP inline|tasks

inline: each shipment is sent (and acknowledged) while its order is handled.
tasks: each order is handed to its own asyncio task, and no task sends before every order has
been taken, so all the sends happen while the last order is the one the loop last took.
"""

import asyncio
import sys

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord


def shipment(record: ConsumerRecord[bytes, bytes]) -> bytes:
    return (record.value or b"").replace(b"order", b"shipment")


async def main() -> None:
    bootstrap, source, target, count, group, mode = sys.argv[1:7]
    consumer = AIOKafkaConsumer(
        source, bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest"
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, client_id="shipping-stage")
    await consumer.start()
    await producer.start()
    taken = asyncio.Event()

    async def forward(record: ConsumerRecord[bytes, bytes]) -> None:
        await taken.wait()
        await producer.send_and_wait(target, shipment(record), key=record.key)

    forwarded, tasks = 0, list[asyncio.Task[None]]()
    async for record in consumer:
        if mode == "inline":
            await producer.send_and_wait(target, shipment(record), key=record.key)
        else:
            tasks.append(asyncio.create_task(forward(record)))
        forwarded += 1
        if forwarded == int(count):
            break
    taken.set()
    await asyncio.gather(*tasks)
    await producer.stop()
    await consumer.stop()
    print(f"forwarded {forwarded}", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
