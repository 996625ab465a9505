"""Demo stage 3, the billing service: invoices each shipment (kafka-python).

It stops after STOP_AFTER invoices, as a crashed or redeployed consumer would, so that the
remaining shipment is sent but never processed: the demo's waterfall flags it MISSING.
Nothing here knows about OpenTelemetry.

Usage: billing.py BOOTSTRAP SHIPMENTS_TOPIC GROUP STOP_AFTER
"""

import json
import sys
import time

from kafka import ConsumerRebalanceListener, KafkaConsumer, TopicPartition


class Ready(ConsumerRebalanceListener):
    def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        print(f"ready, reading {', '.join(sorted({p.topic for p in assigned}))}")

    def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        pass


def main() -> None:
    bootstrap, shipments, group, stop_after = sys.argv[1:5]
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        value_deserializer=json.loads,
    )
    consumer.subscribe([shipments], listener=Ready())
    for invoiced, record in enumerate(consumer, start=1):
        time.sleep(0.002)  # write the invoice
        print(f"invoiced order-{record.value['order']}")
        if invoiced == int(stop_after):
            print(f"stopping after {invoiced} invoices")
            break
    consumer.close()


if __name__ == "__main__":
    main()
