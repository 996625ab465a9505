"""Demo stage 4, the billing service: bills each invoice (kafka-python).

It stops after STOP_AFTER invoices, as a crashed or redeployed consumer would, so that the
remaining invoice is sent but never processed: the demo's waterfall flags it MISSING.
Nothing here knows about OpenTelemetry.

Usage: billing.py BOOTSTRAP INVOICES_TOPIC GROUP STOP_AFTER
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
    bootstrap, invoices, group, stop_after = sys.argv[1:5]
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        value_deserializer=json.loads,
    )
    consumer.subscribe([invoices], listener=Ready())
    for billed, record in enumerate(consumer, start=1):
        time.sleep(0.002)  # send the bill
        print(f"billed order-{record.value['order']}")
        if billed == int(stop_after):
            print(f"stopping after {billed} bills")
            break
    consumer.close()


if __name__ == "__main__":
    main()
