"""Test infrastructure: a private Kafka broker and instrumented application runners."""
