"""The supported client libraries, each described once.

The instrumentors, the doctor (which reaches a broker through each client's probe), the
tests and the Makefile's client matrix all read this table; a test checks pyproject's entry
points against it. ``python -m kafka_autotrace.clients.registry`` prints one ``distribution
release`` line per release the suite runs against besides the newest, for the Makefile.
"""

from __future__ import annotations

from kafka_autotrace.clients.spec import ClientSpec, Upstream

KAFKA_PYTHON = ClientSpec(
    distribution="kafka-python",
    requirement="kafka-python >= 2.0.2, < 4",
    entry_point="kafka_autotrace_kafka_python",
    instrumentor="kafka_autotrace.kafka_python:KafkaPythonInstrumentor",
    upstream=Upstream(
        "opentelemetry.instrumentation.kafka",
        "KafkaInstrumentor",
        "kafka",
        "opentelemetry-instrumentation-kafka-python",
    ),
    tested_releases=("2.0.2", "2.3.3"),
    probe="kafka_autotrace.clients.probes.kafka_python:probe",
    negotiates_api_version=True,
)

CONFLUENT_KAFKA = ClientSpec(
    distribution="confluent-kafka",
    requirement="confluent-kafka >= 2.0.2, < 3",
    entry_point="kafka_autotrace_confluent_kafka",
    instrumentor="kafka_autotrace.confluent_kafka:ConfluentKafkaInstrumentor",
    upstream=Upstream(
        "opentelemetry.instrumentation.confluent_kafka",
        "ConfluentKafkaInstrumentor",
        "confluent_kafka",
        "opentelemetry-instrumentation-confluent-kafka",
    ),
    tested_releases=("2.0.2",),
    probe="kafka_autotrace.clients.probes.confluent_kafka:probe",
)

AIOKAFKA = ClientSpec(
    distribution="aiokafka",
    requirement="aiokafka >= 0.9, < 1",
    entry_point="kafka_autotrace_aiokafka",
    instrumentor="kafka_autotrace.aiokafka:AIOKafkaInstrumentor",
    upstream=Upstream(
        "opentelemetry.instrumentation.aiokafka",
        "AIOKafkaInstrumentor",
        "aiokafka",
        "opentelemetry-instrumentation-aiokafka",
    ),
    tested_releases=("0.9.0",),
    probe="kafka_autotrace.clients.probes.aiokafka:probe",
)

CLIENTS = (KAFKA_PYTHON, CONFLUENT_KAFKA, AIOKAFKA)


def _matrix() -> str:
    return "\n".join(
        f"{client.distribution} {release}"
        for client in CLIENTS
        for release in client.tested_releases
    )


if __name__ == "__main__":
    print(_matrix())
