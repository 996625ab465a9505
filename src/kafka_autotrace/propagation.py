"""Trace context in Kafka record headers, through the globally configured propagator.

Kafka headers are an ordered list of ``(str, bytes)`` pairs in which keys may repeat and values
may be ``None`` or arbitrary bytes, and clients accept either a list or a dict when producing.
Generic text-map carriers assume none of that, which is how other instrumentations end up
raising inside ``poll()`` on a non-UTF-8 ``traceparent``. The functions here never raise on
what they find in headers and never mutate the caller's container.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Optional

from opentelemetry import propagate
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import Getter

HeaderValue = Optional[object]
"""A header value as found on a record: normally bytes, but str and None occur."""


class _IndexedHeadersGetter(Getter[Mapping[str, HeaderValue]]):
    """Reads header values that :func:`index_headers` already reduced to one value per key."""

    def get(self, carrier: Mapping[str, HeaderValue], key: str) -> list[str] | None:
        value = carrier.get(key)
        if value is None:
            return None
        text = decode_header_value(value)
        return None if text is None else [text]

    def keys(self, carrier: Mapping[str, HeaderValue]) -> list[str]:
        return list(carrier)


_GETTER = _IndexedHeadersGetter()


def decode_header_value(value: object) -> str | None:
    """The header value as text, or None when it is not valid UTF-8 (or not bytes/str)."""
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return None
    return None


def header_items(headers: object) -> Iterator[tuple[str, HeaderValue]]:
    """The well-formed ``(str key, value)`` pairs of a header list or dict, in order.

    Anything else (a non-iterable, items that are not pairs, non-str keys) is skipped: headers
    come from outside the process and may be anything.
    """
    if headers is None:
        return
    items = headers.items() if isinstance(headers, Mapping) else headers
    try:
        for item in items:  # type: ignore[attr-defined]
            if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str):
                yield item
    except TypeError:
        return


def index_headers(headers: object) -> dict[str, HeaderValue]:
    """One value per header key, the last occurrence winning.

    A producer that appended a fresh ``traceparent`` after a stale one meant the fresh one, so
    the last value is the one to trust.
    """
    return dict(header_items(headers))


def extract_context(headers: object) -> Context:
    """The context the global propagator finds in ``headers``; empty when there is none."""
    extracted: Context = propagate.extract(
        index_headers(headers), context=Context(), getter=_GETTER
    )
    return extracted


def trace_headers(context: Context) -> dict[str, bytes]:
    """The headers the global propagator writes for ``context`` (traceparent, baggage, …)."""
    written: dict[str, str] = {}
    propagate.inject(written, context=context)
    return {key: value.encode("utf-8") for key, value in written.items()}


def merge_headers(headers: object, injected: Mapping[str, bytes]) -> object:
    """A new header container holding ``headers`` plus ``injected``.

    Keys written by the propagator replace stale ones; every other header keeps its place.
    A list gives a list of pairs, a dict a dict, None a list. Any other container is returned
    unchanged so that the client library rejects it exactly as it would without us.
    """
    if not injected:
        return headers
    if headers is None:
        return list(injected.items())
    if isinstance(headers, list):
        kept = [
            item
            for item in headers
            if not (
                isinstance(item, tuple)
                and len(item) == 2
                and isinstance(item[0], str)
                and item[0] in injected
            )
        ]
        kept.extend(injected.items())
        return kept
    if isinstance(headers, dict):
        merged = {key: value for key, value in headers.items() if key not in injected}
        merged.update(injected)
        return merged
    return headers
