"""Rebalance listeners and callbacks that note each change of a consumer's assignment, then
call the application's own exactly as the library would have: same arguments, its return value
and exceptions passed on. :func:`noting_call` wraps one callback (confluent-kafka's
``on_assign``, ``on_revoke``, ``on_lost``); :func:`noting_listener` a listener object with
``on_partitions_assigned``, ``on_partitions_revoked`` and ``on_partitions_lost`` methods
(kafka-python, aiokafka).

Each callable of ours is a coroutine function exactly where the application's is one, because
the libraries decide whether to await a callback by asking (kafka-python) or by what it
returns (aiokafka, confluent-kafka's asyncio consumer). Without an application listener, ours
only notes the changes, as the library's own default does nothing.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from typing import Any

from kafka_autotrace.core.calls import Arguments, CallShape
from kafka_autotrace.core.rebalance import ASSIGNED, LOST, REVOKED

Note = Callable[[str, Any], None]
"""Called as ``note(change, partitions)`` before the application's listener."""

_METHODS = {
    "on_partitions_assigned": ASSIGNED,
    "on_partitions_revoked": REVOKED,
    "on_partitions_lost": LOST,
}


def _target(listener: object, name: str) -> Callable[[Any], Any] | None:
    """The application's method the library would call for ``name``: a listener without
    ``on_partitions_lost`` (written for older releases) is told of lost partitions as revoked."""
    if listener is None:
        return None
    method = getattr(listener, name, None)
    if method is None and name == "on_partitions_lost":
        method = listener.on_partitions_revoked  # type: ignore[attr-defined]
    return method


def _noted(note: Note, change: str, target: Callable[..., Any] | None, *args: Any) -> Any:
    """Note the partitions (the last argument), then call ``target`` with every argument."""
    note(change, args[-1])
    return None if target is None else target(*args)


async def _noted_async(
    note: Note, change: str, target: Callable[..., Any] | None, *args: Any
) -> Any:
    """:func:`_noted`, awaiting ``target``."""
    note(change, args[-1])
    return None if target is None else await target(*args)


def noting_call(
    note: Note, change: str, target: Callable[..., Any] | None, asynchronous: bool
) -> Callable[..., Any]:
    """A callback that notes ``change`` of the partitions it is given last, then calls
    ``target`` (None: none) with all it was given; a coroutine function when
    ``asynchronous``."""
    return functools.partial(_noted_async if asynchronous else _noted, note, change, target)


def _sync_method(name: str, change: str) -> Callable[..., Any]:
    def method(self: Any, partitions: Any) -> Any:
        return _noted(self._note, change, _target(self._listener, name), partitions)

    method.__name__ = name
    return method


def _async_method(name: str, change: str) -> Callable[..., Any]:
    async def method(self: Any, partitions: Any) -> Any:
        return await _noted_async(self._note, change, _target(self._listener, name), partitions)

    method.__name__ = name
    return method


@functools.cache
def _listener_class(base: type, asynchronous: tuple[bool, ...]) -> type:
    def __init__(self: Any, listener: object, note: Note) -> None:
        self._listener = listener
        self._note = note

    namespace: dict[str, Any] = {"__init__": __init__, "__module__": __name__}
    for (name, change), is_async in zip(_METHODS.items(), asynchronous):
        namespace[name] = (_async_method if is_async else _sync_method)(name, change)
    return type(f"Noting{base.__name__}", (base,), namespace)


def noting_listener(listener: object, bases: Sequence[type], note: Note) -> object | None:
    """A listener that notes changes and calls ``listener`` (None: none) on, derived from the
    first of the library's listener ``bases`` that ``listener`` is an instance of; None for an
    object that is none of them, which the library is left to reject as without us."""
    base = bases[0]
    if listener is not None:
        matching = [base for base in bases if isinstance(listener, base)]
        if not matching:
            return None
        base = matching[0]
    asynchronous = tuple(inspect.iscoroutinefunction(_target(listener, name)) for name in _METHODS)
    noting: object = _listener_class(base, asynchronous)(listener, note)
    return noting


_SUBSCRIBE = CallShape("topics", "pattern", "listener")
"""``subscribe(topics=(), pattern=None, listener=None)`` of kafka-python and aiokafka."""


def listener_subscription(
    arguments: Arguments, bases: Sequence[type], note: Note
) -> Arguments | None:
    """The arguments of such a ``subscribe()`` with a noting listener in place of the
    application's."""
    args, kwargs = arguments
    noting = noting_listener(_SUBSCRIBE.get(args, kwargs, "listener"), bases, note)
    if noting is None:
        return None
    return _SUBSCRIBE.replace(args, kwargs, "listener", noting)
