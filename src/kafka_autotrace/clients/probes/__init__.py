"""Per client library, how ``kafka-autotrace doctor`` reaches a broker: one module per client,
named in its registry entry, so that nothing imports two client libraries."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass(frozen=True)
class Reached:
    """What a client learnt on reaching the broker."""

    brokers: int | None = None
    """How many brokers the cluster metadata lists."""
    api_version: tuple[int, ...] | None = None
    """The Kafka API version the client negotiated."""


class _Dropped(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        pass


@contextmanager
def quiet(logger_name: str) -> Iterator[None]:
    """Drop what a client library logs while probing: a failed bootstrap is logged at ERROR,
    and the doctor's finding says it better."""
    logger = logging.getLogger(logger_name)
    handler = _Dropped()
    logger.addHandler(handler)
    propagate, logger.propagate = logger.propagate, False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate
