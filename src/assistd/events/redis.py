"""Event bus on Redis: one stream per channel for the log, pub/sub for live delivery.

``publish`` is one script call: XADD to the channel's stream (bounded length), EXPIRE it
(``retention`` after its last event) and PUBLISH the event with its stream id, so every
process listening gets it at once and anyone can later read the log from any id. Each
process has one pub/sub connection, shared by all its subscriptions: a subscription
waits until Redis confirmed the channel, then reads the retained history it asked for,
and skips live events it already had from the history (ids increase). After a lost
connection the listener resubscribes and re-reads, per subscription, what came after
the last event it delivered, so a Redis hiccup costs latency, not events.

A publish that cannot reach Redis is logged and dropped: the database, not the bus, is
the source of truth, and streams re-read the run's state when no event comes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from assistd.events.base import CancelRequest, Delivery, Event, InvalidEventId
from assistd.events.memory import MemorySubscription
from assistd.protocol.event_codec import decode, encode_data

logger = logging.getLogger("assistd.events")

MAX_EVENTS = 10_000
# How long a subscription waits for Redis's confirmation before asking again.
CONFIRM_SECONDS = 5.0
_ID = re.compile(r"^\d+(-\d+)?$")
_CONTROL = {CancelRequest.event: CancelRequest}
_PUBLISH = """
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'e', ARGV[2], 'd', ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('PUBLISH', KEYS[1], id .. '\\n' .. ARGV[2] .. '\\n' .. ARGV[3])
return id
"""


def _order(event_id: str) -> tuple[int, int]:
    ms, _, seq = event_id.partition("-")
    return int(ms), int(seq or 0)


def _decode(event_id: str, name: str, data: str) -> Delivery:
    return Delivery(event_id, decode(name, data, _CONTROL))


class RedisSubscription(MemorySubscription):
    """The in-memory subscription's waiting, plus what ordering the log and the live
    events needs: the last id delivered, and live events held while history is read."""

    __slots__ = ("held", "last")

    def __init__(self) -> None:
        super().__init__()
        self.last: tuple[int, int] = (0, 0)
        # Live events held back while the history is read.
        self.held: list[Delivery] | None = []

    def deliver(self, delivery: Delivery) -> None:
        if self.held is not None:
            self.held.append(delivery)
            return
        order = _order(delivery.id)
        if order > self.last:
            self.last = order
            self.put(delivery)

    def hold(self) -> None:
        if self.held is None:
            self.held = []

    def release_held(self, history: Sequence[Delivery] = ()) -> None:
        """Deliver ``history`` read from the log, then the live events held meanwhile,
        skipping any already delivered."""
        held, self.held = self.held or [], None
        for delivery in [*history, *held]:
            self.deliver(delivery)


class RedisEventBus:
    def __init__(
        self,
        client: Redis,
        *,
        prefix: str = "assistd",
        retention: float = 60.0,
        max_events: int = MAX_EVENTS,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.retention = max(1, int(retention))
        self.max_events = max_events
        self._publish = client.register_script(_PUBLISH)
        self._subscribers: dict[str, set[RedisSubscription]] = {}
        self._confirmed: dict[str, asyncio.Future[None]] = {}
        self._pubsub: PubSub | None = None
        self._listener: asyncio.Task[None] | None = None
        # Set when a channel is subscribed: the listener sleeps on it while none is.
        self._wake = asyncio.Event()
        self._catching_up: set[asyncio.Task[None]] = set()
        self._commands = asyncio.Lock()

    def _key(self, channel: str) -> str:
        return f"{self.prefix}:events:{channel}"

    async def publish(self, channel: str, event: Event) -> str:
        data = "" if event.data is None else encode_data(event)
        args: list[Any] = [self.max_events, event.event, data, self.retention]
        try:
            event_id = await self._publish(keys=[self._key(channel)], args=args)
        except RedisError as exc:
            logger.warning("event %s on %s not published: %s", event.event, channel, exc)
            return ""
        return event_id.decode() if isinstance(event_id, bytes) else str(event_id)

    @asynccontextmanager
    async def subscribe(
        self, channel: str, *, start: str | None = None
    ) -> AsyncIterator[RedisSubscription]:
        if start is not None and not _ID.match(start):
            raise InvalidEventId(start)
        key = self._key(channel)
        subscription = RedisSubscription()
        subscribers = self._subscribers.setdefault(key, set())
        subscribers.add(subscription)
        try:
            await self._listen_to(key)
            history = [] if start is None else await self._history(key, start, inclusive=True)
            subscription.release_held(history)
            yield subscription
        finally:
            subscribers.discard(subscription)
            if not subscribers:
                self._subscribers.pop(key, None)
                await self._unlisten(key)

    async def _history(self, key: str, start: str, *, inclusive: bool) -> list[Delivery]:
        low = "-" if start == "0" else (start if inclusive else f"({start}")
        entries = await self.client.xrange(key, min=low, max="+")
        deliveries = []
        for raw_id, raw in entries or []:
            fields = {_text(k): _text(v) for k, v in (raw or {}).items()}
            deliveries.append(_decode(_text(raw_id), fields["e"], fields.get("d", "")))
        return deliveries

    async def _listen_to(self, key: str) -> None:
        confirmed = self._confirmed.get(key)
        if confirmed is None:
            confirmed = self._confirmed[key] = asyncio.get_running_loop().create_future()
            await self._command("subscribe", key)
        while True:
            try:
                await asyncio.wait_for(asyncio.shield(confirmed), CONFIRM_SECONDS)
                return
            except TimeoutError:
                logger.warning("Redis did not confirm the subscription to %s; again", key)
                await self._command("subscribe", key)

    async def _unlisten(self, key: str) -> None:
        confirmed = self._confirmed.pop(key, None)
        if confirmed is not None and not confirmed.done():
            confirmed.cancel()
        with contextlib.suppress(RedisError, OSError):
            await self._command("unsubscribe", key)

    async def _command(self, name: str, *keys: str) -> None:
        """(Un)subscribe, one command at a time: two first subscriptions at once would
        each open the pub/sub connection, and one of them would be lost."""
        async with self._commands:
            pubsub = await self._ensure_listener()
            await getattr(pubsub, name)(*keys)
        self._wake.set()

    async def _ensure_listener(self) -> PubSub:
        if self._pubsub is None:
            self._pubsub = self.client.pubsub()
        if self._listener is None or self._listener.done():
            self._listener = asyncio.create_task(self._listen(), name="assistd-event-listener")
        return self._pubsub

    async def _listen(self) -> None:
        while True:
            pubsub = self._pubsub
            assert pubsub is not None
            try:
                if not pubsub.subscribed:
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                message = await pubsub.get_message(timeout=1.0)
            except (RedisError, OSError) as exc:
                logger.warning("event listener lost Redis (%s); reconnecting", exc)
                await self._recover()
                continue
            if message is not None:
                self._dispatch(message)

    def _dispatch(self, message: dict[str, Any]) -> None:
        key = _text(message["channel"])
        if message["type"] == "subscribe":
            confirmed = self._confirmed.get(key)
            if confirmed is not None and not confirmed.done():
                confirmed.set_result(None)
            elif key in self._subscribers:
                # Subscribed again after a lost connection (by redis-py's own reconnect or
                # ours): what was published meanwhile is only in the log.
                task = asyncio.create_task(self._catch_up(key))
                self._catching_up.add(task)
                task.add_done_callback(self._catching_up.discard)
            return
        if message["type"] != "message":
            return
        subscribers = self._subscribers.get(key)
        if not subscribers:
            return
        try:
            event_id, name, data = _text(message["data"]).split("\n", 2)
            delivery = _decode(event_id, name, data)
        except ValueError:
            logger.exception("dropping an event on %s that does not decode", key)
            return
        for subscription in subscribers:
            subscription.deliver(delivery)

    async def _catch_up(self, key: str) -> None:
        subscriptions = list(self._subscribers.get(key, ()))
        for subscription in subscriptions:
            subscription.hold()
        for subscription in subscriptions:
            last = "{}-{}".format(*subscription.last)
            try:
                history = await self._history(key, last, inclusive=False)
            except RedisError as exc:
                logger.warning("could not re-read %s after reconnecting: %s", key, exc)
                history = []
            subscription.release_held(history)

    async def _recover(self) -> None:
        """Resubscribe on a new connection; each confirmation then re-reads what the
        channel's subscriptions missed (``_catch_up``)."""
        broken, self._pubsub = self._pubsub, self.client.pubsub()
        if broken is not None:
            # Its connection is dead: closing it must not hold up the recovery.
            task = asyncio.create_task(asyncio.wait_for(broken.aclose(), 5))
            task.add_done_callback(lambda done: done.cancelled() or done.exception())
        while True:
            await asyncio.sleep(0.5)
            try:
                if self._subscribers:
                    await self._command("subscribe", *self._subscribers)
                return
            except (RedisError, OSError) as exc:
                logger.warning("Redis still unreachable (%s)", exc)

    async def aclose(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._listener
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()


def _text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else value
