"""Where a process span belongs: the producer's context from the headers, the application's
active span, and the trust setting that chooses between them.

By default the producer's span is the parent, so producer and consumer are one trace, and an
application span active at that moment is linked; the producer's pipeline origin comes with
it. In link mode (an untrusted producer must not choose the trace, force sampling or set the
origin) the ambient context is the parent and the producer only linked; in ignore mode headers
are not read at all.
"""

from __future__ import annotations

from opentelemetry import context as otel_context
from opentelemetry.context import Context
from opentelemetry.trace import Link, get_current_span

from kafka_autotrace.core.pipeline import origin_in, with_origin
from kafka_autotrace.core.propagation import extract_context
from kafka_autotrace.core.settings import IncomingContext


class Parenting:
    """The incoming-context policy of one instrumentor."""

    __slots__ = ("_mode",)

    def __init__(self, mode: IncomingContext) -> None:
        self._mode = mode

    def incoming(self, headers: object) -> Context | None:
        """The producer's context from ``headers`` when the settings allow reading it."""
        if self._mode is IncomingContext.IGNORE:
            return None
        return extract_context(headers)

    def parent_and_links(
        self, incoming: Context | None, linked: bool = True
    ) -> tuple[Context, list[Link] | None]:
        """The parent context of a process span and its links (none unless ``linked``: with
        no SDK, nothing would record them)."""
        ambient = otel_context.get_current()
        if incoming is None:
            return ambient, None
        remote = get_current_span(incoming).get_span_context()
        if not remote.is_valid:
            # A producer's pipeline origin may come without a trace context (propagators off).
            origin = origin_in(incoming)
            if origin is None or self._mode is not IncomingContext.PARENT:
                return ambient, None
            return with_origin(ambient, origin), None
        if self._mode is IncomingContext.LINK:
            return ambient, [Link(remote)] if linked else None
        if not ambient:
            return incoming, None  # the usual consumer loop: no active span to link
        links = None
        if linked:
            # The creation context is the parent, so it is not linked again: Jaeger turns a
            # link to a span's parent into its one reference, FOLLOWS_FROM, losing CHILD_OF
            # (docs/design.md, "Parent and links of a process span"). The span active at
            # that moment is linked, as the conventions ask.
            active = get_current_span(ambient).get_span_context()
            links = [Link(active)] if active.is_valid else None
        # Ambient values (the application's own context keys) stay; the producer's span and
        # baggage take precedence, so baggage flows on to whatever this message produces.
        return Context({**ambient, **incoming}), links
