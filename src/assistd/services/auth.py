"""API keys and projects: which project a bearer key belongs to.

Keys come from settings (``ASSISTD_API_KEYS``) or from the database (``assistd keys
create``), where only their SHA-256 is stored. With no key configured anywhere the server
is in open mode: any key (or none) maps to the default project, and ``serve`` refuses to
bind anything but loopback in that mode.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

import sqlalchemy as sa

from assistd import clock
from assistd.config import DEFAULT_PROJECT
from assistd.errors import AuthenticationError
from assistd.store import tables
from assistd.store.database import Database

KEY_PREFIX = "sk-assistd-"


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

    async def has_keys(self) -> bool:
        if self._static:
            return True
        if self._has_keys is not None and time.monotonic() - self._has_keys[0] < CACHE_SECONDS:
            return self._has_keys[1]
        async with self.db.read() as conn:
            found = await conn.execute(sa.select(sa.literal(1)).select_from(tables.api_keys))
            result = found.first() is not None
        self._has_keys = (time.monotonic(), result)
        return result

    async def _stored_project(self, digest: str) -> str | None:
        cached = self._projects.get(digest)
        if cached is not None and time.monotonic() - cached[0] < CACHE_SECONDS:
            return cached[1]
        async with self.db.read() as conn:
            result = await conn.execute(
                sa.select(tables.api_keys.c.project).where(tables.api_keys.c.key_hash == digest)
            )
            row = result.first()
        project = str(row[0]) if row is not None else None
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
            async with self.db.read() as conn:
                result = await conn.execute(
                    sa.select(tables.api_keys.c.project).where(tables.api_keys.c.key_hash == digest)
                )
                project_row = result.first()
            if project_row is not None:
                return str(project_row[0])
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
        async with self.db.write() as conn:
            await conn.execute(
                sa.insert(tables.api_keys).values(
                    id="key_" + secrets.token_hex(8),
                    project=project,
                    key_hash=hash_key(key),
                    prefix=key[: len(KEY_PREFIX) + 4],
                    created_at=clock.now(),
                )
            )
        self._projects.pop(hash_key(key), None)
        self._has_keys = None
        return key


def _bearer(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()
