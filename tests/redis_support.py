"""The test Redis (127.0.0.1:6379, started by `make test`): skipped, or failed on CI, if
absent; each user gets its own key prefix and removes its keys afterwards."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Iterator

import pytest
from redis.asyncio import Redis
from redis.exceptions import RedisError

REDIS_URL = os.environ.get("ASSISTD_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def require_redis() -> None:
    async def ping() -> None:
        client = Redis.from_url(REDIS_URL, socket_connect_timeout=2)
        try:
            await client.ping()
        finally:
            await client.aclose()

    try:
        asyncio.run(ping())
    except (OSError, RedisError) as exc:
        reason = f"no Redis at {REDIS_URL} ({exc!r}); run `make test`, which starts one"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)


def drop_keys(prefix: str) -> None:
    async def drop() -> None:
        client = Redis.from_url(REDIS_URL)
        try:
            keys = [key async for key in client.scan_iter(match=f"{prefix}:*", count=1000)]
            if keys:
                await client.delete(*keys)
        finally:
            await client.aclose()

    asyncio.run(drop())


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A key prefix of this test's own on the test Redis."""
    require_redis()
    prefix = "assistd-test-" + secrets.token_hex(4)
    try:
        yield prefix
    finally:
        drop_keys(prefix)
