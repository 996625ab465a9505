"""Consumers in a group, the same few steps for each client library: subscribe with the
application's own rebalance callbacks or listener (or none), take records, poll, pause, close.
For the lag and consumer-group tests, which measure what these steps leave in the metrics.

The application's callbacks record what they were called with in :class:`AppCalls`, so a test
can check that they still get exactly what the library gives them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Partitions = list[tuple[str, int]]


def _pairs(partitions: Any) -> Partitions:
    return sorted((partition.topic, partition.partition) for partition in partitions)


@dataclass
class AppCalls:
    """What the application's own rebalance callbacks were called with, in order; ``fail`` makes
    the named one raise :class:`AppError` once, when it is given partitions (a group's first
    rebalance may hand out none, as the topic's metadata arrives)."""

    calls: list[tuple[str, Partitions]] = field(default_factory=list)
    fail: str | None = None

    def called(self, name: str, partitions: Any) -> None:
        self.calls.append((name, _pairs(partitions)))
        if self.fail == name and partitions:
            self.fail = None
            raise AppError(name)


class AppError(Exception):
    """Raised by an application callback on purpose."""


class GroupConsumer:
    """One client library's consumer in a group."""

    name: str

    def __init__(self, bootstrap: str, group: str, reset: str = "earliest", **config: Any):
        self.bootstrap, self.group, self.reset, self.config = bootstrap, group, reset, config

    def subscribe(self, topic: str, app: AppCalls | None, **hooks: bool) -> None:
        """Subscribe to ``topic`` with the application's callbacks (None: none)."""
        raise NotImplementedError

    def take(self, most: int, timeout: float) -> list[tuple[int, int]]:
        """(partition, offset) of up to ``most`` records handed over by one call."""
        raise NotImplementedError

    def take_exactly(self, count: int, deadline_polls: int = 100) -> list[tuple[int, int]]:
        taken: list[tuple[int, int]] = []
        for _ in range(deadline_polls):
            if len(taken) == count:
                return taken
            taken += self.take(count - len(taken), 0.5)
        raise AssertionError(f"took {len(taken)} of {count}")

    def assignment(self) -> Partitions:
        raise NotImplementedError

    def pause_all(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    @property
    def client(self) -> Any:
        """The library's consumer object."""
        raise NotImplementedError


class KafkaPythonGroup(GroupConsumer):
    name = "kafka-python"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        import kafka

        self.kafka = kafka
        self.consumer = kafka.KafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=self.group,
            auto_offset_reset=self.reset,
            enable_auto_commit=False,
            **self.config,
        )

    @property
    def client(self) -> Any:
        return self.consumer

    def subscribe(self, topic: str, app: AppCalls | None, **hooks: bool) -> None:
        listener = None
        if app is not None:

            class Listener(self.kafka.ConsumerRebalanceListener):  # type: ignore[name-defined,misc]
                def on_partitions_revoked(self, revoked: Any) -> None:
                    app.called("revoked", revoked)

                def on_partitions_assigned(self, assigned: Any) -> None:
                    app.called("assigned", assigned)

            listener = Listener()
        self.consumer.subscribe([topic], listener=listener)

    def take(self, most: int, timeout: float) -> list[tuple[int, int]]:
        batches = self.consumer.poll(timeout_ms=int(timeout * 1000), max_records=most)
        return [(r.partition, r.offset) for records in batches.values() for r in records]

    def assignment(self) -> Partitions:
        return _pairs(self.consumer.assignment())

    def pause_all(self) -> None:
        self.consumer.pause(*self.consumer.assignment())

    def close(self) -> None:
        self.consumer.close()


def confluent_callbacks(
    app: AppCalls | None, hooks: dict[str, bool], callback: Callable[[str], Callable[..., Any]]
) -> dict[str, Callable[..., Any]]:
    """confluent-kafka's ``subscribe()`` callbacks by name, ``callback(change)`` for each that
    ``hooks`` does not leave out (all by default); none without an application."""
    if app is None:
        return {}
    changes = {"on_assign": "assigned", "on_revoke": "revoked", "on_lost": "lost"}
    return {name: callback(change) for name, change in changes.items() if hooks.get(name, True)}


class ConfluentGroup(GroupConsumer):
    name = "confluent-kafka"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        import confluent_kafka

        self.consumer = confluent_kafka.Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": self.group,
                "auto.offset.reset": self.reset,
                "enable.auto.commit": False,
                **self.config,
            }
        )

    @property
    def client(self) -> Any:
        return self.consumer

    def subscribe(self, topic: str, app: AppCalls | None, **hooks: bool) -> None:
        """``hooks``: which of on_assign, on_revoke, on_lost the application passes (all by
        default)."""

        def called(change: str) -> Callable[[Any, Any], None]:
            return lambda _, partitions: app.called(change, partitions)  # type: ignore[union-attr]

        self.consumer.subscribe([topic], **confluent_callbacks(app, hooks, called))

    def take(self, most: int, timeout: float) -> list[tuple[int, int]]:
        messages = self.consumer.consume(most, timeout)
        return [(m.partition(), m.offset()) for m in messages if m.error() is None]

    def assignment(self) -> Partitions:
        return _pairs(self.consumer.assignment())

    def pause_all(self) -> None:
        self.consumer.pause(self.consumer.assignment())

    def close(self) -> None:
        self.consumer.close()


class AIOKafkaGroup(GroupConsumer):
    """Each step run to its end on the consumer's own event loop."""

    name = "aiokafka"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        import aiokafka
        from aiokafka.abc import ConsumerRebalanceListener

        self.listener_base = ConsumerRebalanceListener
        self.loop = asyncio.new_event_loop()

        async def make() -> Any:
            return aiokafka.AIOKafkaConsumer(
                bootstrap_servers=self.bootstrap,
                group_id=self.group,
                auto_offset_reset=self.reset,
                enable_auto_commit=False,
                **self.config,
            )

        self.consumer = self.loop.run_until_complete(make())
        self.started = False

    @property
    def client(self) -> Any:
        return self.consumer

    def subscribe(self, topic: str, app: AppCalls | None, **hooks: bool) -> None:
        """``hooks``: ``asynchronous`` for coroutine listener methods."""
        listener = None
        if app is not None:
            if hooks.get("asynchronous", False):

                class Listener(self.listener_base):  # type: ignore[name-defined,misc]
                    async def on_partitions_revoked(self, revoked: Any) -> None:
                        await asyncio.sleep(0)
                        app.called("revoked", revoked)

                    async def on_partitions_assigned(self, assigned: Any) -> None:
                        await asyncio.sleep(0)
                        app.called("assigned", assigned)

            else:

                class Listener(self.listener_base):  # type: ignore[name-defined,misc,no-redef]
                    def on_partitions_revoked(self, revoked: Any) -> None:
                        app.called("revoked", revoked)

                    def on_partitions_assigned(self, assigned: Any) -> None:
                        app.called("assigned", assigned)

            listener = Listener()
        self.consumer.subscribe([topic], listener=listener)
        if not self.started:
            self.loop.run_until_complete(self.consumer.start())
            self.started = True

    def take(self, most: int, timeout: float) -> list[tuple[int, int]]:
        async def take() -> list[tuple[int, int]]:
            """Handled in the task, as an application does: a record's process span is
            current in the task that iterates it."""
            batches = await self.consumer.getmany(timeout_ms=int(timeout * 1000), max_records=most)
            return [(r.partition, r.offset) for records in batches.values() for r in records]

        return self.loop.run_until_complete(take())

    def assignment(self) -> Partitions:
        return _pairs(self.consumer.assignment())

    def pause_all(self) -> None:
        async def pause() -> None:
            self.consumer.pause(*self.consumer.assignment())

        self.loop.run_until_complete(pause())

    def close(self) -> None:
        self.loop.run_until_complete(self.consumer.stop())
        self.loop.close()


class ConfluentAioGroup(GroupConsumer):
    """confluent-kafka's ``AIOConsumer``, each step run to its end on the consumer's own event
    loop; the application's callbacks are coroutine functions, given by keyword."""

    name = "confluent-kafka-aio"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        from confluent_kafka.aio import AIOConsumer

        self.loop = asyncio.new_event_loop()

        async def make() -> Any:
            return AIOConsumer(
                {
                    "bootstrap.servers": self.bootstrap,
                    "group.id": self.group,
                    "auto.offset.reset": self.reset,
                    "enable.auto.commit": False,
                    **self.config,
                }
            )

        self.consumer = self.loop.run_until_complete(make())

    @property
    def client(self) -> Any:
        return self.consumer

    def subscribe(self, topic: str, app: AppCalls | None, **hooks: bool) -> None:
        """``hooks``: which of on_assign, on_revoke, on_lost the application passes (all by
        default)."""

        def awaited(change: str) -> Callable[[Any, Any], Any]:
            async def callback(consumer: Any, partitions: Any) -> None:
                await asyncio.sleep(0)
                app.called(change, partitions)  # type: ignore[union-attr]

            return callback

        callbacks = confluent_callbacks(app, hooks, awaited)
        self.loop.run_until_complete(self.consumer.subscribe([topic], **callbacks))

    def take(self, most: int, timeout: float) -> list[tuple[int, int]]:
        async def take() -> list[tuple[int, int]]:
            messages = await self.consumer.consume(most, timeout)
            return [(m.partition(), m.offset()) for m in messages if m.error() is None]

        return self.loop.run_until_complete(take())

    def assignment(self) -> Partitions:
        return _pairs(self.loop.run_until_complete(self.consumer.assignment()))

    def pause_all(self) -> None:
        async def pause() -> None:
            await self.consumer.pause(await self.consumer.assignment())

        self.loop.run_until_complete(pause())

    def close(self) -> None:
        self.loop.run_until_complete(self.consumer.close())
        self.loop.close()


GROUP_CLIENTS: dict[str, type[GroupConsumer]] = {
    cls.name: cls for cls in (KafkaPythonGroup, ConfluentGroup, AIOKafkaGroup, ConfluentAioGroup)
}
