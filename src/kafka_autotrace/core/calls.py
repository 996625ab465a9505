"""Reading and replacing one argument of a wrapped call, whether passed by position or name,
and making the call so that its outcome is the application's.

Wrappers must inject headers without changing how the call is made: a positional argument
stays positional, a keyword stays a keyword, an absent one becomes a keyword. Binding through
``inspect.signature`` would do the same at several times the cost per message.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from typing import Any, Callable, Protocol

Arguments = tuple[tuple[Any, ...], dict[str, Any]]
Message = tuple[Any, Any, Any, Any, Any]
"""A send's ``(topic, key, value, partition, headers)``."""
_MESSAGE_FIELDS = ("topic", "key", "value", "partition", "headers")


class CallShape:
    """The parameter names of a wrapped method, in order (``self`` excluded), then the names
    it accepts by keyword only."""

    __slots__ = ("_message_positions", "_positions")

    def __init__(self, *names: str, keyword_only: Iterable[str] = ()) -> None:
        self._positions = {name: index for index, name in enumerate(names)}
        # A position no call reaches, so these are only ever read from or added as keywords.
        self._positions.update(dict.fromkeys(keyword_only, sys.maxsize))
        self._message_positions = tuple(
            self._positions.get(name, sys.maxsize) for name in _MESSAGE_FIELDS
        )

    def message(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Message:
        """The topic, key, value, partition and headers of a send call, None where left out.
        Runs per message, so each is read by its precomputed position, with no loop."""
        count = len(args)
        topic, key, value, partition, headers = self._message_positions
        get = kwargs.get
        return (
            args[topic] if topic < count else get("topic"),
            args[key] if key < count else get("key"),
            args[value] if value < count else get("value"),
            args[partition] if partition < count else get("partition"),
            args[headers] if headers < count else get("headers"),
        )

    def get(self, args: tuple[Any, ...], kwargs: Mapping[str, Any], name: str) -> Any:
        """The argument's value, or None when the caller left it out."""
        position = self._positions[name]
        if position < len(args):
            return args[position]
        return kwargs.get(name)

    def given(self, args: tuple[Any, ...], kwargs: Mapping[str, Any], name: str) -> bool:
        """Whether the caller passed ``name`` at all, even as None: some C functions tell
        an explicit None from an absent argument."""
        return self._positions[name] < len(args) or name in kwargs

    def first_given(
        self, args: tuple[Any, ...], kwargs: Mapping[str, Any], names: tuple[str, ...]
    ) -> tuple[str, Any]:
        """The first of ``names`` the caller passed at all, even as None (some C functions tell
        an explicit None from an absent argument), and its value; the last name and None when
        it passed none."""
        count = len(args)
        for name in names:
            position = self._positions[name]
            if position < count:
                return name, args[position]
            if name in kwargs:
                return name, kwargs[name]
        return names[-1], None

    def replace(
        self, args: tuple[Any, ...], kwargs: dict[str, Any], name: str, value: Any
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """New ``(args, kwargs)`` with ``name`` set to ``value``: see :meth:`replace_all`."""
        return self.replace_all(args, kwargs, {name: value})

    def replace_all(
        self, args: tuple[Any, ...], kwargs: dict[str, Any], values: Mapping[str, Any]
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """New ``(args, kwargs)`` with each name in ``values`` set to its value, in one copy of
        each; the inputs are not mutated.

        A value the call already passes (None for a name it leaves out) changes nothing; with
        no change, the inputs themselves: the call stays exactly as made, with no explicit
        None added.
        """
        count = len(args)
        new_args: list[Any] | None = None
        new_kwargs: dict[str, Any] | None = None
        for name, value in values.items():
            position = self._positions[name]
            if position < count:
                if args[position] is not value:
                    new_args = new_args or list(args)
                    new_args[position] = value
            elif kwargs.get(name) is not value:
                new_kwargs = new_kwargs or dict(kwargs)
                new_kwargs[name] = value
        return (
            args if new_args is None else tuple(new_args),
            kwargs if new_kwargs is None else new_kwargs,
        )


class Rejection(Protocol):
    """Tells a call the client rejected while checking its arguments, before queueing."""

    def rejected(self, error: Exception) -> bool: ...

    def rejected_result(self, result: Any) -> bool: ...


def call_as_made(
    call: Callable[..., Any], made: Arguments, traced: Arguments, rejection: Rejection
) -> tuple[Any, bool]:
    """``call`` with the ``traced`` arguments (the application's plus ours); and whether it
    was made with the application's own arguments instead.

    Our additions can change how a client rejects a call it would reject anyway (a TypeError
    naming another argument count), or make it reject a call it would accept (headers that
    push a record over the size limit). When the client rejects the call while checking its
    arguments, before anything was queued (an error or a result that ``rejection``
    recognises), the call is made again exactly as the application made it, so that it
    succeeds or fails exactly as without us. Its exception, if any, is raised without ours
    chained to it.
    """
    if traced[0] is made[0] and traced[1] is made[1]:
        return call(*made[0], **made[1]), True
    try:
        result = call(*traced[0], **traced[1])
    except Exception as error:
        if not rejection.rejected(error):
            raise
    else:
        if not rejection.rejected_result(result):
            return result, False
    return call(*made[0], **made[1]), True


async def call_as_made_async(
    call: Callable[..., Any], made: Arguments, traced: Arguments, rejection: Rejection
) -> tuple[Any, bool]:
    """:func:`call_as_made` for a coroutine function."""
    if traced[0] is made[0] and traced[1] is made[1]:
        return await call(*made[0], **made[1]), True
    try:
        result = await call(*traced[0], **traced[1])
    except Exception as error:
        if not rejection.rejected(error):
            raise
    else:
        if not rejection.rejected_result(result):
            return result, False
    return await call(*made[0], **made[1]), True
