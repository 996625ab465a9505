"""One small adapter per Kafka client library, and the registry that describes each once."""
