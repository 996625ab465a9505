"""A memo that starts over when full, for lookups keyed by names an application can generate
without bound (topics per tenant, clients with ever new ids, attribute dicts made per call)."""

from __future__ import annotations

from typing import TypeVar

K = TypeVar("K")
V = TypeVar("V")

MEMO_LIMIT = 4096
"""Entries a memo holds before starting over."""


def remember(memo: dict[K, V], key: K, value: V) -> V:
    """Keep ``value`` under ``key`` in ``memo``, emptied first when full; returns ``value``.
    Called on a miss only, so the lookup stays a plain ``dict.get``."""
    if len(memo) >= MEMO_LIMIT:
        memo.clear()
    memo[key] = value
    return value
