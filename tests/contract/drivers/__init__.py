"""One driver per client: each step of the contract suite, in that client's own API.

The contract tests say what every adapter must do; a driver (a module here per client) only
says how its client sends, consumes and closes, so that the same assertions run for every
client in :data:`DRIVERS`. Where a client cannot do what a test needs, its driver names that
in ``missing`` with the reason, and the test is skipped for it with that reason.

Records come back as :class:`~contract.drivers.base.Record`, the same for every client, and
every call that hands records to the application (``next_record``, ``batches``) runs where that
application would handle them: the calling thread for the synchronous clients, and for the
asyncio clients one task that lives as long as the driver, as an application's consumer loop
would. So "the process span is current while handling" is checked in the task that awaited
the receive.
"""

from __future__ import annotations

from collections.abc import Mapping

from contract.drivers.aiokafka import AIOKafka
from contract.drivers.base import Driver
from contract.drivers.confluent_aio import ConfluentAio
from contract.drivers.confluent_kafka import ConfluentKafka
from contract.drivers.kafka_python import KafkaPython

DRIVERS: Mapping[str, type[Driver]] = {
    driver.name: driver for driver in (KafkaPython, ConfluentKafka, ConfluentAio, AIOKafka)
}
