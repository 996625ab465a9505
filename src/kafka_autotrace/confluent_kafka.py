"""The public home of :class:`ConfluentKafkaInstrumentor` (entry point
``kafka_autotrace_confluent_kafka``); the adapter is :mod:`kafka_autotrace.clients.confluent`."""

from kafka_autotrace.clients.confluent import ConfluentKafkaInstrumentor

__all__ = ["ConfluentKafkaInstrumentor"]
