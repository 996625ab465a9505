"""The wrappers that follow a producer's transactions, so that its send spans say whether
their transaction committed or aborted (:mod:`kafka_autotrace.core.outcome`)."""

from __future__ import annotations

import logging
from typing import Any, Callable

from kafka_autotrace.core.adapter import SendAdapter
from kafka_autotrace.core.client import ClientState, state_of
from kafka_autotrace.core.flows import _traced_state
from kafka_autotrace.core.outcome import ABORTED, COMMITTED, Transaction

_logger = logging.getLogger(__name__)


class TransactionFlow:
    """The wrappers of a producer's ``begin_transaction``, ``commit_transaction`` and
    ``abort_transaction`` (each with an asynchronous twin)."""

    __slots__ = ("_adapter",)

    def __init__(self, adapter: SendAdapter) -> None:
        self._adapter = adapter

    def begin(
        self,
        call: Callable[..., Any],
        client: object,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        result = call(*args, **kwargs)
        self._began(client)
        return result

    async def begin_async(
        self,
        call: Callable[..., Any],
        client: object,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        result = await call(*args, **kwargs)
        self._began(client)
        return result

    def commit(
        self,
        call: Callable[..., Any],
        client: object,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        result = call(*args, **kwargs)
        _ended(client, COMMITTED)
        return result

    async def commit_async(
        self,
        call: Callable[..., Any],
        client: object,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        result = await call(*args, **kwargs)
        _ended(client, COMMITTED)
        return result

    def abort(
        self,
        call: Callable[..., Any],
        client: object,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        result = call(*args, **kwargs)
        _ended(client, ABORTED)
        return result

    async def abort_async(
        self,
        call: Callable[..., Any],
        client: object,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        result = await call(*args, **kwargs)
        _ended(client, ABORTED)
        return result

    def _began(self, client: object) -> None:
        try:
            state = _traced_state(client, self._adapter)
            if state is not None:
                _end_open(state, None)
                state.transaction = Transaction()
        except Exception:
            _logger.debug("kafka-autotrace: following a transaction failed", exc_info=True)


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
