"""The public home of :class:`KafkaPythonInstrumentor` (entry point
``kafka_autotrace_kafka_python``); the adapter is :mod:`kafka_autotrace.clients.kafka_python`."""

from kafka_autotrace.clients.kafka_python import KafkaPythonInstrumentor

__all__ = ["KafkaPythonInstrumentor"]
