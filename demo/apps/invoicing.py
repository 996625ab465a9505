"""Demo stage 3, the invoicing service: drafts an invoice for each shipment (aiokafka).

An asyncio service, as FastAPI workers and FastStream apps are: ``async for`` over the
consumer, ``send_and_wait`` for each invoice. Nothing here knows about OpenTelemetry, yet each
invoice continues its shipment's trace.

Usage: invoicing.py BOOTSTRAP SHIPMENTS_TOPIC INVOICES_TOPIC GROUP COUNT
"""

import asyncio
import json
import sys

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.abc import ConsumerRebalanceListener


class Ready(ConsumerRebalanceListener):
    async def on_partitions_assigned(self, assigned: object) -> None:
        print(f"ready, reading {sys.argv[2]}", flush=True)

    async def on_partitions_revoked(self, revoked: object) -> None:
        pass


async def invoice(bootstrap: str, shipments: str, invoices: str, group: str, count: int) -> None:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest"
    )
    consumer.subscribe([shipments], listener=Ready())
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, client_id="invoicing")
    await consumer.start()
    await producer.start()
    try:
        drafted = 0
        async for message in consumer:
            shipment = json.loads(message.value)
            draft = {"order": shipment["order"], "amount": 10 * shipment["parcels"]}
            await producer.send_and_wait(invoices, json.dumps(draft).encode(), key=message.key)
            drafted += 1
            print(f"invoiced order-{shipment['order']}", flush=True)
            if drafted == count:
                break
    finally:
        await producer.stop()
        await consumer.stop()


def main() -> None:
    bootstrap, shipments, invoices, group, count = sys.argv[1:6]
    asyncio.run(invoice(bootstrap, shipments, invoices, group, int(count)))


if __name__ == "__main__":
    main()
