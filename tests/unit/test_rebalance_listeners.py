"""The listeners and callbacks that note a consumer's group changes: each calls the
application's own as the library would have, with the same argument, returning what it
returns and raising what it raises, and is a coroutine function exactly where the
application's method is one (kafka-python decides by asking)."""

from __future__ import annotations

import asyncio
import inspect
from abc import ABC, abstractmethod
from typing import Any

import pytest

from kafka_autotrace.clients.confluent.group_callbacks import noting_callbacks
from kafka_autotrace.core.listeners import listener_subscription, noting_listener


class Listener(ABC):
    """A library's listener base, as kafka-python's and aiokafka's are."""

    @abstractmethod
    def on_partitions_revoked(self, revoked: Any) -> Any: ...

    @abstractmethod
    def on_partitions_assigned(self, assigned: Any) -> Any: ...


class Other:
    """A second base the library accepts (kafka-python's asynchronous listener)."""


class Revoking(Listener):
    """Written before lost partitions had their own method."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def on_partitions_revoked(self, revoked: Any) -> Any:
        self.calls.append(("revoked", revoked))
        return "revoked done"

    def on_partitions_assigned(self, assigned: Any) -> Any:
        self.calls.append(("assigned", assigned))
        raise KeyError("the application's own")


class Async(Listener):
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    async def on_partitions_revoked(self, revoked: Any) -> Any:
        self.calls.append(("revoked", revoked))
        return "async revoked"

    def on_partitions_assigned(self, assigned: Any) -> Any:
        self.calls.append(("assigned", assigned))

    async def on_partitions_lost(self, lost: Any) -> Any:
        self.calls.append(("lost", lost))


def test_a_listener_is_called_on_after_each_change_is_noted() -> None:
    noted: list[tuple[str, Any]] = []
    app = Revoking()
    noting: Any = noting_listener(app, [Listener], lambda *change: noted.append(change))
    assert isinstance(noting, Listener)
    assert noting.on_partitions_revoked({"p0"}) == "revoked done"
    with pytest.raises(KeyError, match="the application's own"):
        noting.on_partitions_assigned({"p1"})
    assert noting.on_partitions_lost({"p2"}) == "revoked done"  # told as revoked, as before
    assert noted == [("revoked", {"p0"}), ("assigned", {"p1"}), ("lost", {"p2"})]
    assert app.calls == [("revoked", {"p0"}), ("assigned", {"p1"}), ("revoked", {"p2"})]


def test_coroutine_methods_stay_coroutine_functions_and_are_awaited() -> None:
    app = Async()
    noting: Any = noting_listener(app, [Listener], lambda *change: None)
    assert inspect.iscoroutinefunction(noting.on_partitions_revoked)
    assert not inspect.iscoroutinefunction(noting.on_partitions_assigned)
    assert asyncio.run(noting.on_partitions_revoked({"p0"})) == "async revoked"
    noting.on_partitions_assigned({"p1"})
    asyncio.run(noting.on_partitions_lost({"p2"}))
    assert app.calls == [("revoked", {"p0"}), ("assigned", {"p1"}), ("lost", {"p2"})]


def test_without_an_application_listener_ours_only_notes() -> None:
    noted: list[tuple[str, Any]] = []
    noting: Any = noting_listener(None, [Listener, Other], lambda *change: noted.append(change))
    assert isinstance(noting, Listener)
    assert noting.on_partitions_assigned({"p0"}) is None
    assert noted == [("assigned", {"p0"})]


def test_an_object_the_library_would_reject_is_left_for_it_to_reject() -> None:
    not_a_listener = object()
    assert noting_listener(not_a_listener, [Listener], lambda *change: None) is None
    arguments = ((["orders"],), {"listener": not_a_listener})
    assert listener_subscription(arguments, [Listener], lambda *change: None) is None


def test_the_listener_is_replaced_where_it_was_passed() -> None:
    app = Revoking()
    for arguments in ((["t"], None, app), {}), ((["t"],), {"listener": app}):
        args, kwargs = listener_subscription(arguments, [Listener], lambda *change: None) or (
            (),
            {},
        )
        given = kwargs.get("listener", args[2] if len(args) > 2 else None)
        assert isinstance(given, Listener) and given is not app


def test_confluent_lost_partitions_go_to_on_revoke_when_there_is_no_on_lost() -> None:
    noted: list[tuple[str, Any]] = []
    told: list[tuple[str, Any, Any]] = []

    def on_revoke(consumer: Any, partitions: Any) -> str:
        told.append(("on_revoke", consumer, partitions))
        return "revoked"

    arguments = noting_callbacks(((["t"],), {"on_revoke": on_revoke}), lambda *c: noted.append(c))
    assert arguments is not None
    _, callbacks = arguments
    consumer = object()
    assert callbacks["on_assign"](consumer, ["p0"]) is None
    assert callbacks["on_lost"](consumer, ["p0"]) == "revoked"
    assert noted == [("assigned", ["p0"]), ("lost", ["p0"])]
    assert told == [("on_revoke", consumer, ["p0"])]


def test_confluent_callbacks_that_are_not_callable_are_left_for_the_binding_to_reject() -> None:
    assert noting_callbacks(((["t"], "not callable"), {}), lambda *c: None) is None


def test_confluent_aio_callbacks_by_keyword_are_awaited_where_the_applications_are() -> None:
    """confluent_kafka.aio awaits what a callback given by keyword returns: ours are coroutine
    functions where the application's is one, or where it gave none; its synchronous one stays
    synchronous."""
    noted: list[tuple[str, Any]] = []
    told: list[str] = []

    async def on_revoke(consumer: Any, partitions: Any) -> str:
        told.append("on_revoke")
        return "revoked"

    def on_assign(consumer: Any, partitions: Any) -> Any:
        told.append("on_assign")
        return asyncio.sleep(0, "assigned")

    given = ((["t"],), {"on_revoke": on_revoke, "on_assign": on_assign})
    arguments = noting_callbacks(given, lambda *c: noted.append(c), awaits_keywords=True)
    assert arguments is not None
    args, callbacks = arguments
    assert args == (["t"],)
    assert not inspect.iscoroutinefunction(callbacks["on_assign"])
    assert all(inspect.iscoroutinefunction(callbacks[name]) for name in ("on_revoke", "on_lost"))

    async def rebalance() -> list[Any]:
        return [await callbacks[name](None, ["p0"]) for name in callbacks]

    assert asyncio.run(rebalance()) == ["revoked", "assigned", "revoked"]
    assert noted == [("revoked", ["p0"]), ("assigned", ["p0"]), ("lost", ["p0"])]
    assert told == ["on_revoke", "on_assign", "on_revoke"]


def test_confluent_aio_without_keyword_callbacks_ours_are_the_bindings_to_call() -> None:
    """None given by keyword: ours go by position, where the binding calls them itself, and
    never wait for the event loop."""
    noted: list[tuple[str, Any]] = []
    told: list[Any] = []

    def on_assign(consumer: Any, partitions: Any) -> None:
        told.append(partitions)

    for given in (((["t"],), {}), ((), {"topics": ["t"]}), ((["t"], on_assign), {})):
        arguments = noting_callbacks(given, lambda *c: noted.append(c), awaits_keywords=True)
        assert arguments is not None
        args, kwargs = arguments
        assert (args[0], kwargs, len(args)) == (["t"], {}, 4)
        assert not any(inspect.iscoroutinefunction(callback) for callback in args[1:])
        assert [callback(None, ["p0"]) for callback in args[1:]] == [None, None, None]
    assert noted == [(change, ["p0"]) for change in ("assigned", "revoked", "lost")] * 3
    assert told == [["p0"]]
