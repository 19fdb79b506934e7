"""The test Redis (127.0.0.1:6379 unless ASSISTD_TEST_REDIS_URL says otherwise): a key
prefix of one's own, its keys deleted afterwards; skipped (failed on CI) when no Redis
answers."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import redis

REDIS_URL = os.environ.get("ASSISTD_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def redis_url() -> str:
    """The test Redis's URL, once it answered a PING."""
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        reason = f"no Redis on 127.0.0.1:6379 ({REDIS_URL}: {exc!r}); run `make services`"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    finally:
        client.close()
    return REDIS_URL


@contextmanager
def redis_prefix() -> Iterator[str]:
    """A fresh key prefix on the test Redis; every key under it is deleted afterwards."""
    url = redis_url()
    prefix = "assistd_test_" + secrets.token_hex(6)
    try:
        yield prefix
    finally:
        client = redis.Redis.from_url(url)
        try:
            keys = list(client.scan_iter(match=f"{prefix}:*"))
            if keys:
                client.delete(*keys)
        finally:
            client.close()


def require_redis() -> None:
    redis_url()


def drop_keys(prefix: str) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture
def redis_key_prefix() -> Iterator[str]:
    """``redis_prefix`` as a fixture."""
    with redis_prefix() as prefix:
        yield prefix
