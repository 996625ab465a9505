"""The confluent-kafka adapter: its synchronous classes (:mod:`.classic`) and asyncio classes
(:mod:`.aio`), sharing :mod:`.common`, traced by one instrumentor."""

from __future__ import annotations

import sys

from wrapt import register_post_import_hook

from kafka_autotrace.clients.confluent import aio, classic
from kafka_autotrace.clients.confluent.common import TELEMETRY, replace_classes, restore_classes
from kafka_autotrace.clients.registry import CONFLUENT_KAFKA
from kafka_autotrace.core.instrumentor import KafkaClientInstrumentor

# confluent-kafka 2.12 shipped the asyncio classes as experimental.aio; 2.13 made them aio.
_AIO_MODULES = ("confluent_kafka.aio", "confluent_kafka.experimental.aio")
_aio_hooks_waiting: set[str] = set()


class ConfluentKafkaInstrumentor(KafkaClientInstrumentor):
    """Traces confluent-kafka producers and consumers, including the serializing and asyncio
    classes (entry point ``kafka_autotrace_confluent_kafka``)."""

    client = CONFLUENT_KAFKA
    telemetry_slot = TELEMETRY

    def _patch(self) -> None:
        import confluent_kafka

        replace_classes(classic.targets(confluent_kafka))
        # The asyncio classes are patched when their module is imported (now, if it is), so
        # applications that never use them do not pay for importing asyncio support. A hook
        # fires once; one still waiting from an earlier instrument() will do.
        for module in _AIO_MODULES:
            imported = module in sys.modules
            if imported or module not in _aio_hooks_waiting:
                if not imported:
                    _aio_hooks_waiting.add(module)
                register_post_import_hook(aio.patch_aio, module)

    def _unpatch(self) -> None:
        restore_classes()
