"""In-process event bus: a bounded log per channel, one asyncio queue per subscriber."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from assistd.events.base import Delivery, Event, InvalidEventId

# Events kept per channel: a run's stream is a few hundred events; a runaway one must not
# hold memory without bound (its oldest events go first).
MAX_EVENTS = 10_000


class MemorySubscription:
    """Deliveries waiting for one subscriber. ``get`` waits on a bare future rather than
    ``asyncio.wait_for(queue.get())``, which (Python 3.11) starts a task per event: a
    run's stream is one get per token."""

    __slots__ = ("_ready", "_waiter")

    def __init__(self) -> None:
        self._ready: deque[Delivery] = deque()
        self._waiter: asyncio.Future[None] | None = None

    def put(self, delivery: Delivery) -> None:
        self._ready.append(delivery)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def get_nowait(self) -> Delivery | None:
        return self._ready.popleft() if self._ready else None

    async def get(self, wait: float | None = None) -> Delivery | None:
        if self._ready:
            return self._ready.popleft()
        if wait is not None and wait <= 0:
            return None
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        timer = None if wait is None else loop.call_later(wait, _expire, waiter)
        try:
            await waiter
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()
        return self._ready.popleft() if self._ready else None


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class _Log:
    __slots__ = ("events", "last", "subscribers", "touched")

    def __init__(self) -> None:
        self.events: deque[Delivery] = deque(maxlen=MAX_EVENTS)
        self.last = 0
        self.subscribers: set[MemorySubscription] = set()
        self.touched = time.monotonic()


class MemoryEventBus:
    """Ids are the event's number in its channel ("1", "2", ...). A channel's log is
    dropped once nobody listens and ``retention`` seconds passed since its last event."""

    def __init__(self, retention: float = 60.0) -> None:
        self.retention = retention
        self._logs: dict[str, _Log] = {}
        self._next_sweep = time.monotonic() + retention

    async def publish(self, channel: str, event: Event) -> str:
        now = time.monotonic()
        if now >= self._next_sweep:
            self._sweep(now)
        log = self._logs.get(channel)
        if log is None:
            log = self._logs[channel] = _Log()
        log.last += 1
        log.touched = now
        delivery = Delivery(str(log.last), event)
        log.events.append(delivery)
        for subscription in log.subscribers:
            subscription.put(delivery)
        return delivery.id

    @asynccontextmanager
    async def subscribe(
        self, channel: str, *, start: str | None = None
    ) -> AsyncIterator[MemorySubscription]:
        first = _parse(start) if start is not None else None
        subscription = MemorySubscription()
        log = self._logs.get(channel)
        if log is None:
            log = self._logs[channel] = _Log()
        if first is not None:
            for delivery in log.events:
                if int(delivery.id) >= first:
                    subscription.put(delivery)
        log.subscribers.add(subscription)
        try:
            yield subscription
        finally:
            log.subscribers.discard(subscription)
            if not log.subscribers and not log.events:
                self._logs.pop(channel, None)

    def _sweep(self, now: float) -> None:
        self._next_sweep = now + self.retention
        stale = [
            channel
            for channel, log in self._logs.items()
            if not log.subscribers and now - log.touched >= self.retention
        ]
        for channel in stale:
            del self._logs[channel]

    async def aclose(self) -> None:
        self._logs.clear()


def _parse(start: str) -> int:
    if not start.isdigit():
        raise InvalidEventId(start)
    return int(start)
