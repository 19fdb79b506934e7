"""PostgreSQL's connection handling: reads outside a transaction, and pooled connections
checked as they are handed out without a round trip while they are fresh."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest
import sqlalchemy as sa
from sqlalchemy import event

from assistd.store import postgres
from assistd.store.database import Database
from tests.store_support import postgres_url, run_on


@pytest.fixture
def url() -> Iterator[str]:
    with postgres_url() as value:
        yield value


async def backend_pid(db: Database) -> int:
    async with db.read() as conn:
        return int(await conn.scalar(sa.text("SELECT pg_backend_pid()")))


def pings(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Pings sent from now on (``fetchrow``, as the checkout check and SQLAlchemy's
    pre-ping send them; the pre-ping would add a BEGIN and a ROLLBACK)."""
    sent: list[str] = []
    original = asyncpg.Connection.fetchrow

    async def fetchrow(self: asyncpg.Connection, query: str, *args: Any, **kwargs: Any) -> Any:
        sent.append(query)
        return await original(self, query, *args, **kwargs)

    monkeypatch.setattr(asyncpg.Connection, "fetchrow", fetchrow)
    return sent


def test_reads_run_outside_a_transaction_and_writes_inside_one(url: str) -> None:
    async def scenario(db: Database) -> None:
        async with db.read() as conn:
            # Each statement is its own transaction: two see two transaction ids.
            first = await conn.scalar(sa.text("SELECT txid_current()"))
            second = await conn.scalar(sa.text("SELECT txid_current()"))
            assert first != second
        # The same pooled connection goes back to transactions for a write.
        for _ in range(2):
            async with db.write() as conn:
                first = await conn.scalar(sa.text("SELECT txid_current()"))
                second = await conn.scalar(sa.text("SELECT txid_current()"))
                assert first == second

    run_on(url, scenario)


def test_a_connection_the_server_closed_is_replaced_on_checkout(url: str) -> None:
    async def scenario(db: Database) -> None:
        doomed = await backend_pid(db)
        dsn = db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        admin = await asyncpg.connect(dsn)  # not one of the pool's
        try:
            assert await admin.fetchval("SELECT pg_terminate_backend($1)", doomed)
        finally:
            await admin.close()
        await asyncio.sleep(0.1)  # the loop reads the closed socket
        # The pool's idle connection is dead: the next block gets a new one, no error.
        assert await backend_pid(db) != doomed

    run_on(url, scenario)


def test_only_a_connection_idle_past_the_threshold_is_pinged(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario(db: Database) -> None:
        await backend_pid(db)
        sent = pings(monkeypatch)
        await backend_pid(db)
        assert sent == []  # fresh: no round trip before the block's own statements
        monkeypatch.setattr(postgres, "PING_AFTER_IDLE_S", 0.0)
        await backend_pid(db)
        assert sent == [";"]

    run_on(url, scenario)


def test_blocks_reuse_kept_connections_without_a_pool_checkout(url: str) -> None:
    async def scenario(db: Database) -> None:
        checkouts: list[int] = []
        event.listen(db.engine.sync_engine, "checkout", lambda *_: checkouts.append(1))
        pid = await backend_pid(db)
        async with db.write() as conn:
            await conn.execute(sa.text("SELECT 1"))
        assert len(checkouts) == 2  # one for reads, one for transactions
        for _ in range(3):
            assert await backend_pid(db) == pid
            async with db.write() as conn:
                await conn.execute(sa.text("SELECT 1"))
        assert len(checkouts) == 2
        # A block that fails gives its connection back to the pool, which resets it: the
        # next block checks one out again.
        with pytest.raises(sa.exc.ProgrammingError):
            async with db.read() as conn:
                await conn.execute(sa.text("SELECT nonsense"))
        await backend_pid(db)
        assert len(checkouts) == 3

    run_on(url, scenario)
