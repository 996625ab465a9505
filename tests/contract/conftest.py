"""The contract suite's fixtures: a ``driver`` per client and an SDK it is instrumented into.

``--client DISTRIBUTION`` (repeatable, registered in the root conftest.py) keeps only the
drivers of those client libraries, so a virtualenv holding one release of one client runs
the contract for it alone.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

import pytest
from support.otel import RecordingSdk, instrumented

from contract.drivers import DRIVERS
from contract.drivers.base import Driver
from kafka_autotrace import Settings

PER_DRIVER_ARGUMENTS = {
    ("call_form", "header_kind"): lambda driver: [
        (f"{form.id}-{kind}", (form, kind))
        for form in driver.call_forms
        for kind in driver.header_kinds
    ],
    ("invalid_call",): lambda driver: [(call.id, (call,)) for call in driver.invalid_calls],
}
"""Arguments whose values each driver declares, and how to read them off a driver class."""


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "needs(capability): skip for the drivers that declare the capability missing"
    )


@functools.cache
def _not_importable(name: str) -> str | None:
    """Why the client of driver ``name`` cannot be tested here, if it cannot."""
    try:
        DRIVERS[name].require()
    except ImportError as error:
        return f"not importable here: {error}"
    return None


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrise ``driver`` by client name, with the arguments a driver declares beside it,
    and a skip saying why where its client is not installed or lacks what the test needs."""
    if "driver" not in metafunc.fixturenames:
        return
    chosen = metafunc.config.getoption("client")
    names = [
        name
        for name, driver in DRIVERS.items()
        if not chosen or driver.instrumentor.client.distribution in chosen
    ]
    needs = [marker.args[0] for marker in metafunc.definition.iter_markers("needs")]
    extra = next(
        (args for args in PER_DRIVER_ARGUMENTS if set(args) <= set(metafunc.fixturenames)), ()
    )
    params = []
    for name in names:
        driver = DRIVERS[name]
        lacking = [driver.missing[need] for need in needs if need in driver.missing]
        reason = _not_importable(name) or "; ".join(lacking)
        if reason:
            skip = pytest.mark.skip(reason=f"{name}: {reason}")
            params.append(pytest.param(name, *(None for _ in extra), id=name, marks=skip))
            continue
        if not extra:
            params.append(pytest.param(name, id=name))
            continue
        cases = PER_DRIVER_ARGUMENTS[extra](driver)
        assert cases, f"{name} declares no {extra} for {metafunc.function.__name__}"
        params += [pytest.param(name, *values, id=f"{name}-{id_}") for id_, values in cases]
    metafunc.parametrize(("driver", *extra), params, indirect=["driver"])


@pytest.fixture
def driver(request: pytest.FixtureRequest, bootstrap: str) -> Iterator[Driver]:
    """The driver of the client named by the parameter."""
    with DRIVERS[request.param](bootstrap) as made:
        yield made


@pytest.fixture
def sdk(driver: Driver, request: pytest.FixtureRequest) -> Iterator[RecordingSdk]:
    """The driver's client instrumented into an in-memory SDK; ``@pytest.mark.settings(...)``
    passes a Settings for the test."""
    marker = request.node.get_closest_marker("settings")
    settings: Any = marker.args[0] if marker else Settings()
    with instrumented(driver.instrumentor(), settings=settings) as recording:
        yield recording
    assert recording.open_spans.names() == [], "every span must end"
