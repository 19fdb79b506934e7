"""Key lookups are cached: a request with a key seen moments ago does not query ``api_keys``.

Queries are counted for real, with a ``before_cursor_execute`` listener on the engine that
serves them: on the live server (both databases), and on a bare ``AuthService`` over its own
SQLite database for the cases a shared server cannot set up (open mode, a key tried before
it existed).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Coroutine, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, TypeVar, cast

import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from assistd.config import DEFAULT_PROJECT
from assistd.errors import AuthenticationError
from assistd.services import auth
from assistd.services.auth import AuthService
from assistd.store.database import Connection, Database
from tests.conftest import STATIC_KEY, LiveServer, raw_client

T = TypeVar("T")


@contextmanager
def statements(engine: AsyncEngine) -> Iterator[list[str]]:
    """Every SQL statement ``engine`` sends while the block runs, in order."""
    seen: list[str] = []

    def record(*args: Any) -> None:
        seen.append(str(args[2]))  # (conn, cursor, statement, parameters, context, many)

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)


def key_queries(seen: list[str]) -> list[str]:
    return [s for s in seen if "api_keys" in s]


def test_second_request_with_a_stored_key_does_no_key_query(server: LiveServer) -> None:
    key = server.new_key("proj_" + secrets.token_hex(6))
    with raw_client(server, key) as http, statements(server.services.db.engine) as seen:
        assert http.get("/assistants").status_code == 200
        after_first = len(seen)
        assert http.get("/assistants").status_code == 200
    first, second = seen[:after_first], seen[after_first:]
    # The listener does see this server's queries: the first request looked the key up.
    assert len(key_queries(first)) == 1, first
    assert any("assistants" in s for s in second), second
    assert key_queries(second) == [], second


def test_static_keys_never_query(server: LiveServer) -> None:
    with raw_client(server, STATIC_KEY) as http, statements(server.services.db.engine) as seen:
        for _ in range(2):
            assert http.get("/assistants").status_code == 200
    assert key_queries(seen) == []


def _run(db: Database, body: Coroutine[Any, Any, T]) -> T:
    async def run() -> T:
        await db.migrate()
        try:
            return await body
        finally:
            await db.dispose()

    return asyncio.run(run())


@pytest.fixture
def db(tmp_path: Path) -> Database:
    return Database(f"sqlite+aiosqlite:///{tmp_path / 'auth.db'}")


def test_open_mode_ends_at_once_when_a_key_is_created(db: Database) -> None:
    service = AuthService(db, [])

    async def check() -> None:
        assert await service.project_for("Bearer anything") == DEFAULT_PROJECT
        key = await service.create_key("first")
        # No wait for the cached "no keys" answer to expire.
        with pytest.raises(AuthenticationError):
            await service.project_for("Bearer anything")
        assert await service.project_for(f"Bearer {key}") == "first"

    _run(db, check())


def test_a_key_refused_before_it_existed_is_accepted_once_created(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = AuthService(db, [("static", "sk-static")])
    # Fix the key create_key will make, so it can be tried before it exists.
    monkeypatch.setattr(auth.secrets, "token_urlsafe", lambda _n: "fixed")
    key = auth.KEY_PREFIX + "fixed"

    async def check() -> None:
        with pytest.raises(AuthenticationError):
            await service.project_for(f"Bearer {key}")
        assert await service.create_key("later") == key
        assert await service.project_for(f"Bearer {key}") == "later"

    _run(db, check())


def test_lookups_are_cached_per_key_until_they_expire(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = AuthService(db, [])

    async def check() -> tuple[list[str], list[str]]:
        first, second = await service.create_key("a"), await service.create_key("b")
        with statements(db.engine) as cached:
            for key in (first, second, first, second):
                await service.project_for(f"Bearer {key}")
        monkeypatch.setattr(auth, "CACHE_SECONDS", 0.0)
        with statements(db.engine) as expired:
            for key in (first, first):
                assert await service.project_for(f"Bearer {key}") == "a"
        return cached, expired

    cached, expired = _run(db, check())
    assert len(key_queries(cached)) == 2, cached  # one per key, none on repeats
    assert len(key_queries(expired)) == 2, expired


class RemoteReads:
    """``db`` whose reads wait on the network first, as PostgreSQL's do (SQLite's never
    yield, so concurrent lookups could not overlap)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    @asynccontextmanager
    async def read(self) -> AsyncIterator[Connection]:
        await asyncio.sleep(0.01)
        async with self.db.read() as conn:
            yield conn

    def write(self) -> AbstractAsyncContextManager[Connection]:
        return self.db.write()


def test_concurrent_requests_on_a_cold_cache_share_one_lookup(db: Database) -> None:
    service = AuthService(cast(Database, RemoteReads(db)), [])

    async def check() -> tuple[list[str], list[str]]:
        key = await service.create_key("a")
        with statements(db.engine) as seen:
            found = await asyncio.gather(
                *(service.project_for(f"Bearer {key}") for _ in range(20)),
                *(service.project_for("Bearer unknown") for _ in range(20)),
                return_exceptions=True,
            )
        assert found[:20] == ["a"] * 20
        assert all(isinstance(refused, AuthenticationError) for refused in found[20:])
        return seen, key_queries(seen)

    seen, queries = _run(db, check())
    # One lookup per key, and one for whether any key exists (the unknown key's).
    assert len(queries) == 3, seen
