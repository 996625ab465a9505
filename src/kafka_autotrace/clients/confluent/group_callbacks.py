"""The rebalance callbacks ``subscribe()`` is given in place of the application's, which note
each change of the consumer's assignment (:mod:`~kafka_autotrace.core.listeners`), then call the
application's as the library would have: ``on_lost``, or ``on_revoke`` when it gave no
``on_lost``. Ours assign nothing, so the binding still assigns (or unassigns) after them when
the application's did not, as it does without callbacks.

confluent-kafka's asyncio consumer passes the callbacks given by keyword through its event loop
and awaits what they return (2.16): each of ours there is a coroutine function exactly where the
application's is one, so it is awaited as the application's was whether the library asks or
awaits what it gets. The binding calls those given by position itself, on the thread of the
call being served. Ours for a callback the application left out go by keyword only when it gave
one so: else by position, so that a consumer given no callback by keyword never has its
rebalances wait for the event loop, as without us.
"""

from __future__ import annotations

import inspect
from typing import Any

from kafka_autotrace.core.calls import Arguments, CallShape
from kafka_autotrace.core.listeners import Note, noting_call
from kafka_autotrace.core.rebalance import ASSIGNED, LOST, REVOKED

_SUBSCRIBE = CallShape("topics", "on_assign", "on_revoke", "on_lost")
_CHANGES = {"on_assign": ASSIGNED, "on_revoke": REVOKED, "on_lost": LOST}


def noting_callbacks(
    arguments: Arguments, note: Note, awaits_keywords: bool = False
) -> Arguments | None:
    """``subscribe()``'s arguments with callbacks that note each change first; None to leave
    the call as it is. ``awaits_keywords``: the asyncio consumer's ``subscribe()``."""
    args, kwargs = arguments
    given = {name: _SUBSCRIBE.get(args, kwargs, name) for name in _CHANGES}
    if any(callback is not None and not callable(callback) for callback in given.values()):
        return None  # left for the binding to reject
    targets = {**given, "on_lost": given["on_lost"] or given["on_revoke"]}
    if awaits_keywords and not any(
        callback is not None and not _by_position(args, name) for name, callback in given.items()
    ):
        if not _SUBSCRIBE.given(args, kwargs, "topics"):
            return None  # left for the binding to reject
        topics = _SUBSCRIBE.get(args, kwargs, "topics")
        args = (topics, *given.values())
        kwargs = {name: value for name, value in kwargs.items() if name not in ("topics", *given)}
    for name, change in _CHANGES.items():
        target = targets[name]
        asynchronous = (
            awaits_keywords
            and not _by_position(args, name)
            and (target is None or inspect.iscoroutinefunction(target))
        )
        args, kwargs = _SUBSCRIBE.replace(
            args, kwargs, name, noting_call(note, change, target, asynchronous)
        )
    return args, kwargs


def _by_position(args: tuple[Any, ...], name: str) -> bool:
    return _SUBSCRIBE.given(args, {}, name)
