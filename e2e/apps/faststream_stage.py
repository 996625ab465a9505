"""A FastStream pipeline stage: a ``KafkaBroker`` whose subscriber handler's result is
published to the next topic. No OpenTelemetry code anywhere.

Usage: faststream_stage.py BOOTSTRAP IN_TOPIC OUT_TOPIC COUNT

The subscriber keeps FastStream's defaults (one record at a time, no group, offsets reset to
"latest"), so records sent before it knows where "latest" is would be skipped: "ready" is
printed once every assigned partition has a position, and the feeding producer waits for it.
"""

import asyncio
import sys

from faststream.kafka import KafkaBroker, KafkaMessage, KafkaResponse


async def main() -> None:
    bootstrap, source, target, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    broker = KafkaBroker(bootstrap, client_id="shipping-faststream")
    forwarded = 0
    done = asyncio.Event()
    subscriber = broker.subscriber(source)

    @subscriber
    @broker.publisher(target)
    async def ship(body: bytes, message: KafkaMessage) -> KafkaResponse:
        nonlocal forwarded
        forwarded += 1
        if forwarded == count:
            done.set()
        return KafkaResponse(body.replace(b"order", b"shipment"), key=message.raw_message.key)

    async with broker:
        await broker.start()
        consumer = subscriber.consumer
        assert consumer is not None
        for partition in consumer.assignment():
            await consumer.position(partition)
        print("ready", flush=True)
        await done.wait()
    # Leaving the broker waits for the handler in progress, and so for its publish.
    print(f"forwarded {forwarded}", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
