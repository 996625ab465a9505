"""The wrappers that follow a producer's transactions, so that its send spans say whether
their transaction committed or aborted (:mod:`kafka_autotrace.core.outcome`)."""

from __future__ import annotations

import logging
from typing import Any, Callable

from kafka_autotrace.core.adapter import SendAdapter
from kafka_autotrace.core.client import ClientState, state_of
from kafka_autotrace.core.guard import traced_state
from kafka_autotrace.core.outcome import ABORTED, COMMITTED, Transaction
from kafka_autotrace.core.telemetry import TelemetrySlot

_logger = logging.getLogger(__name__)


Wrapper = Callable[[Callable[..., Any], object, "tuple[Any, ...]", "dict[str, Any]"], Any]
"""A wrapt wrapper: ``(call, client, args, kwargs)``."""


class TransactionFlow:
    """The wrappers of a producer's ``begin_transaction``, ``commit_transaction`` and
    ``abort_transaction``, each with an asynchronous twin: each calls the library, then
    follows what the call did."""

    __slots__ = (
        "_adapter",
        "_slot",
        "abort",
        "abort_async",
        "begin",
        "begin_async",
        "commit",
        "commit_async",
    )

    def __init__(self, slot: TelemetrySlot, adapter: SendAdapter) -> None:
        self._slot = slot
        self._adapter = adapter
        self.begin, self.begin_async = _after(self._began)
        self.commit, self.commit_async = _after(lambda client: _ended(client, COMMITTED))
        self.abort, self.abort_async = _after(lambda client: _ended(client, ABORTED))

    def _began(self, client: object) -> None:
        try:
            state = traced_state(client, self._adapter, self._slot)
            if state is not None:
                _end_open(state, None)
                state.transaction = Transaction()
        except Exception:
            _logger.debug("kafka-autotrace: following a transaction failed", exc_info=True)


def _after(follow: Callable[[object], None]) -> tuple[Wrapper, Wrapper]:
    """A wrapper and its asynchronous twin that call the library and then ``follow(client)``
    once the call returned (not when it raised)."""

    def wrapper(
        call: Callable[..., Any], client: object, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        result = call(*args, **kwargs)
        follow(client)
        return result

    async def wrapper_async(
        call: Callable[..., Any], client: object, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        result = await call(*args, **kwargs)
        follow(client)
        return result

    return wrapper, wrapper_async


def _ended(client: object, outcome: str) -> None:
    try:
        state = state_of(client)
        if state is not None:
            _end_open(state, outcome)
    except Exception:
        _logger.debug("kafka-autotrace: following a transaction failed", exc_info=True)


def _end_open(state: ClientState, outcome: str | None) -> None:
    transaction, state.transaction = state.transaction, None
    if transaction is not None:
        transaction.end(outcome)
