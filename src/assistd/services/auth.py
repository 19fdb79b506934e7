"""API keys and projects: which project a bearer key belongs to.

Keys come from settings (``ASSISTD_API_KEYS``) or from the database (``assistd keys
create``), where only their SHA-256 is stored. With no key configured anywhere the server
is in open mode: any key (or none) maps to the default project, and ``serve`` refuses to
bind anything but loopback in that mode.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from assistd.config import DEFAULT_PROJECT
from assistd.errors import AuthenticationError
from assistd.store import api_keys
from assistd.store.database import Database

KEY_PREFIX = "sk-assistd-"
T = TypeVar("T")


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


# Database lookups are cached this long: every request authenticates, and a key made by
# `assistd keys create` in another process must still be seen within seconds.
CACHE_SECONDS = 5.0


class AuthService:
    def __init__(self, db: Database, static_keys: list[tuple[str, str]]) -> None:
        self.db = db
        self._static = [(hash_key(key), project) for project, key in static_keys]
        self._projects: dict[str, tuple[float, str | None]] = {}
        self._has_keys: tuple[float, bool] | None = None
        # Lookups under way, by what they look up: when a cached answer expires, the
        # requests that arrive meanwhile wait for one lookup instead of each making one
        # (at 200 runs at once, hundreds of reads every expiry).
        self._lookups: dict[str, asyncio.Future[Any]] = {}
        # Moves on with every key made here: a lookup begun before keeps what it found out
        # of the cache.
        self._generation = 0

    async def has_keys(self) -> bool:
        if self._static:
            return True
        if self._has_keys is not None and time.monotonic() - self._has_keys[0] < CACHE_SECONDS:
            return self._has_keys[1]
        return bool(await self._once(":any", self._look_up_any))  # no digest looks like it

    async def _look_up_any(self) -> bool:
        generation = self._generation
        async with self.db.read() as conn:
            result = await api_keys.any_stored(conn)
        if generation == self._generation:
            self._has_keys = (time.monotonic(), result)
        return result

    async def _once(self, key: str, look_up: Callable[[], Awaitable[T]]) -> T:
        """``look_up()``, or the result of the one already under way for ``key``."""
        pending = self._lookups.get(key)
        if pending is None:
            pending = self._lookups[key] = asyncio.ensure_future(look_up())

            def forget(done: asyncio.Future[Any]) -> None:
                if self._lookups.get(key) is done:
                    del self._lookups[key]

            pending.add_done_callback(forget)
        # Shielded: a waiter that goes away (its client disconnected) leaves the lookup
        # to the others.
        result: T = await asyncio.shield(pending)
        return result

    async def _stored_project(self, digest: str) -> str | None:
        cached = self._projects.get(digest)
        if cached is not None and time.monotonic() - cached[0] < CACHE_SECONDS:
            return cached[1]
        return await self._once(digest, lambda: self._look_up_project(digest))

    async def _look_up_project(self, digest: str) -> str | None:
        generation = self._generation
        async with self.db.read() as conn:
            project = await api_keys.project_of(conn, digest)
        if generation != self._generation:
            return project
        if len(self._projects) > 10_000:  # bound memory against floods of random keys
            self._projects.clear()
        self._projects[digest] = (time.monotonic(), project)
        return project

    async def project_for(self, authorization: str | None) -> str:
        """The project of the bearer key in an ``Authorization`` header value."""
        key = _bearer(authorization)
        if key is not None:
            digest = hash_key(key)
            for known, project in self._static:
                if hmac.compare_digest(known, digest):
                    return project
            stored = await self._stored_project(digest)
            if stored is not None:
                return stored
        if not await self.has_keys():
            return DEFAULT_PROJECT
        if key is None:
            raise AuthenticationError(
                "You didn't provide an API key. You need to provide your API key in an "
                "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                code="missing_api_key",
            )
        # Never echo the key back: responses and logs must not carry secrets.
        raise AuthenticationError("Incorrect API key provided.", code="invalid_api_key")

    async def create_key(self, project: str) -> str:
        """Make a new key for ``project``; returns it once, stores only its hash."""
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        digest = hash_key(key)
        async with self.db.write() as conn:
            await api_keys.create(conn, project, key_hash=digest, prefix=key[: len(KEY_PREFIX) + 4])
        # A lookup of this key made before it existed must not keep refusing it, and open
        # mode ends with the first key.
        self._projects.pop(digest, None)
        self._has_keys = None
        self._lookups.clear()
        self._generation += 1
        return key


def _bearer(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()
