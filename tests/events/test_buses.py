"""Both event buses behave alike: a per-channel log with increasing ids, live delivery,
replay from any retained id. The Redis bus runs against the real test Redis, across two
bus instances standing for two processes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest
from redis.asyncio import Redis

from assistd.events.base import (
    CancelRequest,
    Delivery,
    EventBus,
    InvalidEventId,
    Subscription,
    control_channel,
    run_channel,
)
from assistd.events.memory import MemoryEventBus
from assistd.events.redis import RedisEventBus
from assistd.protocol.events import (
    RunCompleted,
    StreamEvent,
    message_delta,
    run_event,
    step_event,
)
from tests.redis_support import REDIS_URL, redis_key_prefix  # noqa: F401
from tests.store_support import run_object, step_object

Buses = Callable[[], AsyncIterator[tuple[EventBus, EventBus]]]


def _run_event(status: str = "queued") -> StreamEvent:
    run = run_object(
        status=status,
        created_at=1,
        assistant_id="asst_1",
        thread_id="thread_1",
        temperature=1.0,
        top_p=1.0,
    )
    return run_event(run)


def _events() -> list[StreamEvent]:
    return [
        _run_event("queued"),
        _run_event("in_progress"),
        step_event(step_object(status="in_progress")),
        message_delta("msg_1", {"index": 0, "type": "text", "text": {"value": "héllo"}}),
        _run_event("completed"),
    ]


@pytest.fixture(params=["memory", "redis"])
def buses(request: pytest.FixtureRequest) -> Buses:
    """Two handles on one bus: the same object in memory, two clients on Redis."""

    @asynccontextmanager
    async def memory() -> AsyncIterator[tuple[EventBus, EventBus]]:
        bus = MemoryEventBus(retention=60)
        yield bus, bus
        await bus.aclose()

    prefix = request.getfixturevalue("redis_key_prefix") if request.param == "redis" else ""

    @asynccontextmanager
    async def redis() -> AsyncIterator[tuple[EventBus, EventBus]]:
        one = RedisEventBus(Redis.from_url(REDIS_URL), prefix=prefix, retention=60)
        two = RedisEventBus(Redis.from_url(REDIS_URL), prefix=prefix, retention=60)
        try:
            yield one, two
        finally:
            for bus in (one, two):
                await bus.aclose()
                await bus.client.aclose()

    return memory if request.param == "memory" else redis  # type: ignore[return-value]


async def _take(subscription: Subscription, count: int) -> list[Delivery]:
    taken = []
    for _ in range(count):
        delivery = await subscription.get(10)
        assert delivery is not None, f"only {len(taken)} of {count} events arrived"
        taken.append(delivery)
    return taken


def _order(event_id: str) -> tuple[int, ...]:
    return tuple(int(part) for part in event_id.split("-"))


def run(scenario: Callable[[EventBus, EventBus], Awaitable[None]], buses: Buses) -> None:
    async def main() -> None:
        async with buses() as (publisher, reader):  # type: ignore[attr-defined]
            await scenario(publisher, reader)

    asyncio.run(main())


def test_live_events_arrive_in_order_with_increasing_ids(buses: Buses) -> None:
    async def scenario(publisher: EventBus, reader: EventBus) -> None:
        channel = run_channel("run_live")
        await publisher.publish(channel, _run_event("queued"))  # before: not delivered
        async with reader.subscribe(channel) as subscription:
            ids = [await publisher.publish(channel, event) for event in _events()]
            got = await _take(subscription, len(ids))
            assert await subscription.get(0) is None
        assert [d.id for d in got] == ids
        assert [_order(i) for i in ids] == sorted(_order(i) for i in ids)
        assert len(set(ids)) == len(ids)
        assert [d.event for d in got] == _events()

    run(scenario, buses)


def test_a_late_subscriber_replays_the_log_from_the_start_or_from_an_id(buses: Buses) -> None:
    async def scenario(publisher: EventBus, reader: EventBus) -> None:
        channel = run_channel("run_replay")
        events = _events()
        ids = [await publisher.publish(channel, event) for event in events[:3]]
        async with (
            reader.subscribe(channel, start="0") as everything,
            reader.subscribe(channel, start=ids[1]) as from_second,
        ):
            ids += [await publisher.publish(channel, event) for event in events[3:]]
            whole = await _take(everything, 5)
            tail = await _take(from_second, 4)
            assert await everything.get(0) is None
            assert await from_second.get(0) is None
        assert [d.id for d in whole] == ids
        assert [d.event for d in whole] == events
        # ``start`` is inclusive: the relay drops the event the client saw itself.
        assert [d.id for d in tail] == ids[1:]

    run(scenario, buses)


def test_control_requests_round_trip(buses: Buses) -> None:
    async def scenario(publisher: EventBus, reader: EventBus) -> None:
        channel = control_channel("run_ctl")
        async with reader.subscribe(channel) as subscription:
            await publisher.publish(channel, CancelRequest())
            (got,) = await _take(subscription, 1)
        assert got.event == CancelRequest()

    run(scenario, buses)


def test_a_malformed_start_is_refused(buses: Buses) -> None:
    async def scenario(publisher: EventBus, reader: EventBus) -> None:
        with pytest.raises(InvalidEventId):
            async with reader.subscribe(run_channel("run_x"), start="abc"):
                pass

    run(scenario, buses)


def test_every_subscriber_of_a_channel_gets_every_event(buses: Buses) -> None:
    async def scenario(publisher: EventBus, reader: EventBus) -> None:
        channel = run_channel("run_fan")
        async with (
            reader.subscribe(channel) as one,
            publisher.subscribe(channel) as two,
            reader.subscribe(run_channel("run_other")) as other,
        ):
            await publisher.publish(channel, RunCompleted(_run_event().data))
            assert [d.event.event for d in await _take(one, 1)] == ["thread.run.completed"]
            assert [d.event.event for d in await _take(two, 1)] == ["thread.run.completed"]
            assert await other.get(0.2) is None

    run(scenario, buses)


def test_memory_logs_are_dropped_after_retention_without_subscribers() -> None:
    async def scenario() -> None:
        bus = MemoryEventBus(retention=0.05)
        await bus.publish(run_channel("run_old"), _run_event())
        await asyncio.sleep(0.1)
        await bus.publish(run_channel("run_new"), _run_event())  # sweeps on publish
        async with bus.subscribe(run_channel("run_old"), start="0") as subscription:
            assert await subscription.get(0) is None

    asyncio.run(scenario())


def test_redis_logs_expire_after_retention_and_stay_bounded(redis_key_prefix: str) -> None:  # noqa: F811
    async def scenario() -> None:
        client = Redis.from_url(REDIS_URL)
        bus = RedisEventBus(client, prefix=redis_key_prefix, retention=30, max_events=100)
        try:
            for _ in range(500):
                await bus.publish(run_channel("run_long"), _run_event())
            key = f"{redis_key_prefix}:events:run:run_long"
            assert 0 < await client.ttl(key) <= 30
            # MAXLEN ~ trims whole nodes: bounded near the limit, never the 500 written.
            assert 100 <= await client.xlen(key) < 500
        finally:
            await bus.aclose()
            await client.aclose()

    asyncio.run(scenario())


def test_redis_subscribers_get_what_was_published_while_their_connection_was_down(
    redis_key_prefix: str,  # noqa: F811
) -> None:
    async def scenario() -> None:
        publisher = RedisEventBus(Redis.from_url(REDIS_URL), prefix=redis_key_prefix)
        reader = RedisEventBus(Redis.from_url(REDIS_URL), prefix=redis_key_prefix)
        admin = Redis.from_url(REDIS_URL)
        channel = run_channel("run_cut")
        events = _events()
        try:
            async with reader.subscribe(channel) as subscription:
                await publisher.publish(channel, events[0])
                await _take(subscription, 1)
                # Cut the reader's pub/sub connection, publish meanwhile: the listener
                # reconnects and reads what it missed from the log, once each.
                await admin.client_kill_filter(_type="pubsub")
                ids = [await publisher.publish(channel, event) for event in events[1:]]
                got = await _take(subscription, len(events) - 1)
                assert [d.id for d in got] == ids
                assert [d.event for d in got] == events[1:]
                assert await subscription.get(0.3) is None
        finally:
            for bus in (publisher, reader):
                await bus.aclose()
                await bus.client.aclose()
            await admin.aclose()

    asyncio.run(scenario())
