"""A failed messaging operation, as the conventions record it on its span: ``error.type``,
status ERROR, and the exception as a ``messaging.{operation type}.exception`` event (v1.41 on)
rather than the SDK's generic ``exception`` event of ``Span.record_exception``.

The event's attributes are the conventions' for it: ``exception.type`` (the fully qualified
class name, as the SDK writes it), ``exception.message`` and ``exception.stacktrace``; not the
deprecated ``exception.escaped`` that ``record_exception`` adds.
"""

from __future__ import annotations

import contextlib
import traceback
from typing import NamedTuple

from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.semconv.attributes.exception_attributes import (
    EXCEPTION_MESSAGE,
    EXCEPTION_STACKTRACE,
    EXCEPTION_TYPE,
)
from opentelemetry.trace import Span, Status, StatusCode

from kafka_autotrace.core.attributes import Attributes


class Failure(NamedTuple):
    """How an operation failed: its ``error.type``, the exception (None where the client
    reported an error without raising one) and the status description."""

    error_type: str
    exception: BaseException | None
    description: str


def exception_event(operation_type: str) -> str:
    """The name of the event recording an exception of ``operation_type`` (``send``, …)."""
    return f"messaging.{operation_type}.exception"


def record_failure(
    span: Span,
    operation_type: str,
    error_type: str,
    exception: BaseException | None,
    description: str,
) -> None:
    """Mark a recording ``span`` failed; the exception, when there is one, as its event."""
    span.set_attribute(ERROR_TYPE, error_type)
    span.set_status(Status(StatusCode.ERROR, description))
    if exception is not None:
        span.add_event(exception_event(operation_type), _exception_attributes(exception))


def _exception_attributes(exception: BaseException) -> Attributes:
    kind = type(exception)
    module = kind.__module__
    attributes: Attributes = {
        EXCEPTION_TYPE: kind.__qualname__
        if module in (None, "builtins")
        else f"{module}.{kind.__qualname__}",
        EXCEPTION_STACKTRACE: "".join(
            traceback.format_exception(kind, exception, exception.__traceback__)
        ),
    }
    with contextlib.suppress(Exception):  # a __str__ that raises: type and stack are kept
        attributes[EXCEPTION_MESSAGE] = str(exception)
    return attributes
