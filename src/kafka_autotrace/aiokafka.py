"""The public home of :class:`AIOKafkaInstrumentor` (entry point ``kafka_autotrace_aiokafka``);
the adapter is :mod:`kafka_autotrace.clients.aiokafka`."""

from kafka_autotrace.clients.aiokafka import AIOKafkaInstrumentor

__all__ = ["AIOKafkaInstrumentor"]
