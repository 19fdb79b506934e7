"""Per-key request rate limits: a token bucket per API key, ``rate_limit_rpm`` deep,
refilled at ``rate_limit_rpm`` a minute (so a key may burst up to its limit, then goes at
the limit's pace).

In one process the buckets are a dictionary; with Redis configured they live in Redis
(one hash per key, updated by a script, atomically), so every API process of a
deployment counts against the same bucket. Keys are SHA-256 digests, never the keys.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class Decision:
    """One request's outcome, and what the ``x-ratelimit-*`` headers report."""

    allowed: bool
    limit: int
    remaining: int
    # Seconds until the bucket is full again (x-ratelimit-reset-requests).
    reset_seconds: float
    # Seconds until one request is allowed again (retry-after); 0 when allowed.
    retry_after: float


class RequestLimiter(Protocol):
    limit: int

    async def take(self, key: str) -> Decision: ...

    async def aclose(self) -> None: ...


def _decide(limit: int, tokens: float, allowed: bool) -> Decision:
    rate = limit / 60.0
    return Decision(
        allowed=allowed,
        limit=limit,
        remaining=max(0, math.floor(tokens)),
        reset_seconds=(limit - tokens) / rate,
        retry_after=0.0 if allowed else (1.0 - tokens) / rate,
    )


class LocalBuckets:
    """Buckets in this process (a deployment of several processes gives each its own)."""

    MAX_KEYS = 100_000  # bound memory; a dropped bucket starts full again

    def __init__(self, limit: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, as of)

    async def take(self, key: str) -> Decision:
        now = self.clock()
        tokens, stamp = self._buckets.get(key, (float(self.limit), now))
        tokens = min(float(self.limit), tokens + (now - stamp) * self.limit / 60.0)
        allowed = tokens >= 1.0
        if allowed:
            tokens -= 1.0
        if len(self._buckets) >= self.MAX_KEYS and key not in self._buckets:
            self._buckets.clear()
        self._buckets[key] = (tokens, now)
        return _decide(self.limit, tokens, allowed)

    async def aclose(self) -> None:
        return None


# KEYS[1]: the bucket; ARGV: limit, now (seconds), refill per second. Returns
# {allowed (0/1), tokens as a string (Lua numbers come back as integers)}.
_TAKE = """
local limit = tonumber(ARGV[1])
local now = tonumber(ARGV[2])
local rate = tonumber(ARGV[3])
local held = redis.call('HMGET', KEYS[1], 'tokens', 'stamp')
local tokens = tonumber(held[1]) or limit
local stamp = tonumber(held[2]) or now
tokens = math.min(limit, tokens + math.max(0, now - stamp) * rate)
local allowed = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'stamp', tostring(now))
redis.call('EXPIRE', KEYS[1], 120)
return {allowed, tostring(tokens)}
"""


class RedisBuckets:
    """Buckets shared by every process through Redis. The time is the calling process's
    wall clock: processes of one deployment are assumed to agree on it within a fraction
    of a second (a skew only shifts when a bucket refills)."""

    def __init__(
        self, client: Any, limit: int, *, prefix: str, clock: Callable[[], float] = time.time
    ) -> None:
        self.limit = limit
        self.client = client
        self.prefix = prefix
        self.clock = clock
        self._script = client.register_script(_TAKE)

    async def take(self, key: str) -> Decision:
        allowed, tokens = await self._script(
            keys=[f"{self.prefix}:ratelimit:{key}"],
            args=[self.limit, self.clock(), self.limit / 60.0],
        )
        return _decide(self.limit, float(tokens), bool(int(allowed)))

    async def aclose(self) -> None:
        await self.client.aclose()


def build_limiter(rpm: int | None, redis_url: str | None, prefix: str) -> RequestLimiter | None:
    if rpm is None:
        return None
    if redis_url is None:
        return LocalBuckets(rpm)
    from redis.asyncio import Redis

    return RedisBuckets(Redis.from_url(redis_url), rpm, prefix=prefix)
