"""kafka-autotrace: one OpenTelemetry trace per Kafka message, with no code changes.

Installed beside ``opentelemetry-instrument``, the instrumentors registered under the
``opentelemetry_instrumentor`` entry point patch kafka-python and confluent-kafka at start-up.
They can also be used in code::

    from kafka_autotrace.kafka_python import KafkaPythonInstrumentor
    KafkaPythonInstrumentor().instrument(tracer_provider=..., meter_provider=...)
"""

from kafka_autotrace.core.settings import IncomingContext, Settings
from kafka_autotrace.version import __version__

__all__ = ["IncomingContext", "Settings", "__version__"]
