"""An ordinary aiokafka producer: no OpenTelemetry code anywhere.

Usage: aiokafka_producer.py BOOTSTRAP TOPIC COUNT

Every send is enqueued before any acknowledgement is awaited, as an app that batches would.
"""

import asyncio
import sys

from aiokafka import AIOKafkaProducer


async def main() -> None:
    bootstrap, topic, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, client_id="orders-producer")
    await producer.start()
    try:
        futures = [
            await producer.send(topic, f"order-{index}".encode(), key=f"k{index}".encode())
            for index in range(count)
        ]
        delivered = await asyncio.gather(*futures)
    finally:
        await producer.stop()
    print(f"sent {len(delivered)}", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
