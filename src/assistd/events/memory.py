"""In-process event bus: one asyncio queue per subscriber."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from assistd.events.base import Event


class MemorySubscription:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[Event] = asyncio.Queue()

    async def get(self, wait: float | None = None) -> Event | None:
        try:
            return await asyncio.wait_for(self.queue.get(), wait)
        except TimeoutError:
            return None


class MemoryEventBus:
    """Subscribers are held weakly: a stream abandoned before it ever ran leaks nothing."""

    def __init__(self) -> None:
        self._channels: dict[str, weakref.WeakSet[MemorySubscription]] = {}

    async def publish(self, channel: str, event: Event) -> None:
        for subscription in list(self._channels.get(channel, ())):
            subscription.queue.put_nowait(event)

    @asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncIterator[MemorySubscription]:
        subscription = MemorySubscription()
        subscribers = self._channels.setdefault(channel, weakref.WeakSet())
        subscribers.add(subscription)
        try:
            yield subscription
        finally:
            subscribers.discard(subscription)
            if not subscribers:
                self._channels.pop(channel, None)
