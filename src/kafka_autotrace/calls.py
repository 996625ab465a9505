"""Reading and replacing one argument of a wrapped call, whether passed by position or name.

Wrappers must inject headers without changing how the call is made: a positional argument
stays positional, a keyword stays a keyword, an absent one becomes a keyword. Binding through
``inspect.signature`` would do the same at several times the cost per message.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class CallShape:
    """The parameter names of a wrapped method, in order (``self`` excluded)."""

    __slots__ = ("_positions",)

    def __init__(self, *names: str) -> None:
        self._positions = {name: index for index, name in enumerate(names)}

    def get(self, args: tuple[Any, ...], kwargs: Mapping[str, Any], name: str) -> Any:
        """The argument's value, or None when the caller left it out."""
        position = self._positions[name]
        if position < len(args):
            return args[position]
        return kwargs.get(name)

    def replace(
        self, args: tuple[Any, ...], kwargs: dict[str, Any], name: str, value: Any
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """New ``(args, kwargs)`` with ``name`` set to ``value``; the inputs are not mutated."""
        position = self._positions[name]
        if position < len(args):
            return (*args[:position], value, *args[position + 1 :]), kwargs
        return args, {**kwargs, name: value}
