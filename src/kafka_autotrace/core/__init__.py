"""The messaging lifecycle every client shares: spans, metrics, headers and the flows that
wrap a client's calls. It imports no Kafka client, no developer tool and no OTLP protobuf."""
