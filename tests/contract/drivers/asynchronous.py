"""The base of the drivers of asyncio clients: every call awaited in one long-lived task."""

from __future__ import annotations

import asyncio
from abc import abstractmethod
from collections.abc import Awaitable, Coroutine, Mapping
from typing import Any, Callable

import pytest

from contract.drivers.base import Driver, InvalidCall, T


class AsyncDriver(Driver):
    """A driver of an asyncio client: each call awaited in the driver's own event loop.

    Every operation (and any coroutine a test passes to ``run``) is awaited in one long-lived
    task, ``_app``, so a process span the adapter made current there after an awaited receive
    is still current for the next operation, exactly as in an application's consumer task;
    ``elsewhere`` awaits operations in tasks of their own.
    """

    def __init__(self, bootstrap: str) -> None:
        super().__init__(bootstrap)
        self._loop = asyncio.new_event_loop()
        self._inbox: asyncio.Queue[tuple[Awaitable[Any], asyncio.Future[Any]]]
        self._app = self._loop.run_until_complete(self._start())
        self._fresh_tasks = False

    async def _start(self) -> asyncio.Task[None]:
        self._inbox = asyncio.Queue()
        return asyncio.create_task(self._serve())

    async def _serve(self) -> None:
        """The application's task: awaits each operation it is given, in order."""
        while True:
            operation, done = await self._inbox.get()
            try:
                done.set_result(await operation)
            except asyncio.CancelledError:
                raise
            except BaseException as error:  # pytest's outcomes too, or the test would hang
                done.set_exception(error)

    def run(self, operation: Coroutine[Any, Any, T]) -> T:
        """Await ``operation`` in the application's task, or in a new one ``elsewhere``."""
        if self._fresh_tasks:
            return self._loop.run_until_complete(operation)
        done: asyncio.Future[T] = self._loop.create_future()
        self._inbox.put_nowait((operation, done))
        return self._loop.run_until_complete(done)

    def _close_loop(self) -> None:
        """End the application's task and the loop, once the driver closed its clients."""
        self._app.cancel()
        self._loop.run_until_complete(asyncio.gather(self._app, return_exceptions=True))
        self._loop.close()

    @abstractmethod
    async def _new_producer(self, config: Mapping[str, Any]) -> Any:
        """A producer made in the loop, as the client's producers use the running loop."""

    def producer(self, **config: Any) -> Any:
        return self.run(self._new_producer(config))

    def attempt(self, invalid: InvalidCall, topic: str) -> BaseException:
        async def attempt() -> BaseException:
            producer = await self._new_producer(invalid.config)
            with pytest.raises(invalid.raises) as raised:
                await invalid.call(producer, topic)
            await producer.flush()
            return raised.value

        return self.run(attempt())

    def in_app(self, function: Callable[[], T]) -> T:
        async def call() -> T:
            return function()

        return self.run(call())

    def elsewhere(self, operation: Callable[[], T]) -> T:
        """``operation``, calls of this driver, each awaited in a task of its own."""
        self._fresh_tasks = True
        try:
            return operation()
        finally:
            self._fresh_tasks = False
