"""The clients an observable instrument reports on, weakly held: a client closed or collected
drops out of the report without the application doing anything for it, and a process forked
from the application's reports none of its parent's clients (they are not usable there: a
librdkafka handle must not be touched after a fork)."""

from __future__ import annotations

import logging
import os
import threading
import weakref
from typing import Any, Generic, TypeVar

_logger = logging.getLogger(__name__)

T = TypeVar("T")


class TrackedClients(Generic[T]):
    """What each tracked client reports from, read by a metric reader's thread while the
    application's threads track and forget clients."""

    __slots__ = ("__weakref__", "_clients", "_lock")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._clients: weakref.WeakKeyDictionary[Any, T] = weakref.WeakKeyDictionary()
        _EVERY.add(self)

    def _forget_all(self) -> None:
        """In a forked child: a new lock (the parent's may have been held at the fork) and no
        clients."""
        self._lock = threading.Lock()
        self._clients = weakref.WeakKeyDictionary()

    def track(self, client: Any, value: T) -> None:
        """Report ``client`` from ``value`` until :meth:`forget` or its collection."""
        try:
            with self._lock:
                self._clients[client] = value
        except TypeError:  # not weakly referenceable: not reported
            _logger.debug("kafka-autotrace: cannot report on %r", client)

    def forget(self, client: Any) -> None:
        with self._lock:
            self._clients.pop(client, None)

    def items(self) -> list[tuple[Any, T]]:
        """The tracked clients now, each with its value (strong references, for one read)."""
        with self._lock:
            return list(self._clients.items())


_EVERY: weakref.WeakSet[TrackedClients[Any]] = weakref.WeakSet()
"""Every registry, for :func:`_forget_inherited_clients`."""


def _forget_inherited_clients() -> None:
    for tracked in list(_EVERY):
        tracked._forget_all()


if hasattr(os, "register_at_fork"):  # not on Windows
    os.register_at_fork(after_in_child=_forget_inherited_clients)
