"""Demo stage 2, the shipping service: turns each order into a shipment (confluent-kafka).

Consumes orders and produces shipments in one loop, the shape of most stream processors.
Nothing here knows about OpenTelemetry, yet each shipment continues its order's trace: the
instrumentation keeps the order's ``process`` span current while it is handled.

Usage: shipping.py BOOTSTRAP ORDERS_TOPIC SHIPMENTS_TOPIC GROUP COUNT
"""

import json
import sys
import time

from confluent_kafka import Consumer, Producer


def main() -> None:
    bootstrap, orders, shipments, group, count = sys.argv[1:6]
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest"}
    )
    producer = Producer({"bootstrap.servers": bootstrap, "client.id": "shipping"})
    consumer.subscribe(
        [orders], on_assign=lambda _consumer, _partitions: print(f"ready, reading {orders}")
    )
    shipped = 0
    while shipped < int(count):
        message = consumer.poll(0.5)
        if message is None:
            continue
        if message.error():
            raise SystemExit(f"consume failed: {message.error()}")
        order = json.loads(message.value())
        time.sleep(0.01)  # pack the parcel
        shipment = {"order": order["order"], "parcels": 1 + order["quantity"] // 2}
        producer.produce(shipments, json.dumps(shipment).encode(), key=message.key())
        producer.flush(30)  # at-least-once: the shipment is acknowledged before the next order
        shipped += 1
        print(f"shipped order-{order['order']}")
    consumer.close()


if __name__ == "__main__":
    main()
