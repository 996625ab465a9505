"""The traced confluent-kafka classes are built, and refuse to be built, exactly as the
library's own: every constructor form, compared with the uninstrumented class.

No broker: the clients are made against a closed port and closed at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Callable

import confluent_kafka
import pytest
from support.otel import instrumented
from support.processes import free_port

from kafka_autotrace.confluent_kafka import ConfluentKafkaInstrumentor

CLASS_NAMES = ("Producer", "SerializingProducer", "Consumer", "DeserializingConsumer")
CLOSED = f"127.0.0.1:{free_port()}"
CONFIG = {"bootstrap.servers": CLOSED, "group.id": "constructors"}

# Each form is written out as an application would call it: Python cannot pass "no keywords"
# and "an empty keyword dict" through ``cls(*args, **kwargs)`` alike, and the C types tell
# them apart.
FORMS: dict[str, Callable[[type], Any]] = {
    "no arguments": lambda cls: cls(),
    "a dict": lambda cls: cls(dict(CONFIG)),
    "an empty dict": lambda cls: cls({}),
    "keywords": lambda cls: cls(**{"bootstrap.servers": CLOSED, "group.id": "constructors"}),
    "a dict and keywords": lambda cls: cls(
        {"bootstrap.servers": CLOSED}, **{"group.id": "constructors"}
    ),
    "an unknown key": lambda cls: cls({**CONFIG, "no.such.setting": 1}),
    "a bad value": lambda cls: cls({**CONFIG, "linger.ms": "soon"}),
    "not a dict": lambda cls: cls(5),
    "None": lambda cls: cls(None),
    "two dicts": lambda cls: cls(dict(CONFIG), dict(CONFIG)),
    "a keyword logger": lambda cls: cls(dict(CONFIG), logger=None),
}


def outcome(cls: type, form: Callable[[type], Any]) -> str:
    """What building ``cls`` this way does: the exception with its message, or a client of
    the class asked for."""
    try:
        client = form(cls)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    try:
        return f"a {type(client).__name__}: {isinstance(client, cls)}"
    finally:
        close = getattr(client, "close", None)
        if close is not None:
            close()


@pytest.fixture(scope="module")
def plain_classes() -> dict[str, type]:
    return {name: getattr(confluent_kafka, name) for name in CLASS_NAMES}


@pytest.fixture(scope="module")
def plain_outcomes(plain_classes: dict[str, type]) -> dict[tuple[str, str], str]:
    return {
        (name, form): outcome(plain_classes[name], FORMS[form])
        for name in CLASS_NAMES
        for form in FORMS
    }


@pytest.fixture(scope="module")
def traced_classes(plain_classes: dict[str, type]) -> Iterator[dict[str, type]]:
    with instrumented(ConfluentKafkaInstrumentor()):
        traced = {name: getattr(confluent_kafka, name) for name in CLASS_NAMES}
        assert all(traced[name] is not plain_classes[name] for name in CLASS_NAMES)
        yield traced


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("name", CLASS_NAMES)
def test_a_traced_class_is_built_as_the_library_builds_it(
    name: str,
    form: str,
    plain_outcomes: dict[tuple[str, str], str],
    traced_classes: dict[str, type],
) -> None:
    assert outcome(traced_classes[name], FORMS[form]) == plain_outcomes[name, form]


def test_the_forms_reach_every_branch_of_the_library(
    plain_outcomes: dict[tuple[str, str], str],
) -> None:
    """The comparison means something only if the library itself answers the forms
    differently: no configuration at all is refused, an empty one builds a client."""
    assert plain_outcomes["Producer", "no arguments"] == "TypeError: expected configuration dict"
    assert plain_outcomes["Producer", "an empty dict"] == "a Producer: True"
    assert plain_outcomes["Consumer", "a dict"] == "a Consumer: True"
