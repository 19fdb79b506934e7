"""The event bus a process uses: Redis when ``redis_url`` is set, else in memory."""

from __future__ import annotations

from assistd.config import Settings
from assistd.events.base import EventBus
from assistd.events.memory import MemoryEventBus


def build_bus(settings: Settings) -> EventBus:
    if settings.redis_url is None:
        return MemoryEventBus(retention=settings.stream_retention_seconds)
    from redis.asyncio import Redis

    from assistd.events.redis import RedisEventBus

    client = Redis.from_url(settings.redis_url, health_check_interval=30)
    return RedisEventBus(
        client, prefix=settings.redis_prefix, retention=settings.stream_retention_seconds
    )
