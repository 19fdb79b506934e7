"""PostgreSQL: a pooled connection's liveness checked without a round trip while it is
fresh, statements compiled once run as asyncpg prepared statements, and connections kept
checked out between blocks.

SQLAlchemy's ``pool_pre_ping`` costs three round trips per checkout on asyncpg (BEGIN, a
ping, ROLLBACK), more than many of a run's transactions take themselves (a run's way to
its first token opened four). A connection the server closed (a restart, an idle
timeout) is seen closed by asyncpg as soon as the event loop read its end, so checking
that costs nothing; only a connection idle for longer than ``PING_AFTER_IDLE_S``, which
a silently dropped network could have lost, is pinged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event, exc
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.util.concurrency import await_

logger = logging.getLogger("assistd.store")

PING_AFTER_IDLE_S = 10.0
_IDLE_SINCE = "assistd_idle_since"


def configure(engine: AsyncEngine) -> None:
    """Check each connection as the pool hands it out; a dead one is replaced (the pool
    retries the checkout on ``DisconnectionError``)."""

    @event.listens_for(engine.sync_engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine.sync_engine, "checkout")
    def _on_checkout(_dbapi_connection: Any, record: Any, proxy: Any) -> None:
        driver = proxy.driver_connection  # the asyncpg connection
        if driver is None or driver.is_closed():
            raise exc.DisconnectionError("the connection was closed")
        if driver.is_in_transaction():
            # A transaction its last user never ended (see ``KeptConnections.begin``):
            # statements in it would never commit, and its locks would stay held.
            raise exc.DisconnectionError("the connection was left in a transaction")
        idle_since = record.info.get(_IDLE_SINCE)
        if idle_since is None or _fresh(driver, idle_since):
            return
        try:
            await_(driver.fetchrow(";"))
        except Exception as error:
            raise exc.DisconnectionError("the connection did not answer a ping") from error


def _fresh(driver: Any, idle_since: float) -> bool:
    """Whether an asyncpg connection idle since ``idle_since`` (``time.monotonic()``) may
    be used without a ping: open, outside any transaction, and idle for less than
    ``PING_AFTER_IDLE_S``."""
    return (
        time.monotonic() - idle_since < PING_AFTER_IDLE_S
        and not driver.is_closed()
        and not driver.is_in_transaction()
    )


# What ``fetch`` uses of SQLAlchemy's asyncpg adapter (2.1): its statement lock, its
# lazily begun transaction, its prepared-statement cache and its error translation. Where
# an adapter lacks them (another SQLAlchemy, another driver), statements take
# SQLAlchemy's path.
_ADAPTER_API = ("_execute_mutex", "_transaction", "_start_transaction", "_prepare")


@dataclass(frozen=True, slots=True)
class Fetched:
    keys: list[str]  # the result's column names
    coltypes: tuple[int, ...]  # and their type oids
    rows: list[Any]
    rowcount: int  # how many rows it changed, -1 where unknown


async def fetch(conn: AsyncConnection, sql: str, args: list[Any]) -> Fetched | None:
    """Run ``sql`` (compiled by SQLAlchemy for asyncpg) with ``args`` as SQLAlchemy's
    cursor would, in the connection's transaction. None when the connection's adapter is
    not the one this knows.

    A statement through ``conn.execute`` costs twice asyncpg's own time in SQLAlchemy's
    execution context, parameter handling and result construction: on a run's way to its
    first token that was about 1 ms of the loop's time.
    """
    adapter: Any = conn.sync_connection.connection.dbapi_connection  # type: ignore[union-attr]
    if not all(hasattr(adapter, name) for name in _ADAPTER_API):
        return None
    try:
        async with adapter._execute_mutex:
            if adapter._transaction is None:
                await adapter._start_transaction()  # a no-op in autocommit
            statement, attributes = await adapter._prepare(
                sql,
                conn.dialect._invalidate_schema_cache_asof,  # type: ignore[attr-defined]
            )
            rows = await statement.fetch(*args)
            status = statement.get_statusmsg() or ""
    except Exception as error:
        raise _translated(conn, adapter, sql, args, error) from error
    # "INSERT 0 1", "UPDATE 3", "SELECT 2": the count is the last word.
    count = status.rsplit(" ", 1)[-1]
    return Fetched(
        keys=[attribute.name for attribute in attributes or ()],
        coltypes=tuple(attribute.type.oid for attribute in attributes or ()),
        rows=rows,
        rowcount=int(count) if count.isdigit() else -1,
    )


def _translated(
    conn: AsyncConnection, adapter: Any, sql: str, args: list[Any], error: Exception
) -> Exception:
    """``error`` as SQLAlchemy raises it (IntegrityError, OperationalError...), which
    callers and the error mapping expect."""
    try:
        adapter._handle_exception(error)  # raises the DB-API's translation
    except Exception as translated:
        dbapi: Any = conn.dialect.loaded_dbapi
        return exc.DBAPIError.instance(sql, args, translated, dbapi.Error)
    return error


class KeptConnections:
    """Connections of ``engine`` kept checked out between blocks (up to ``keep`` idle):
    a pool checkout and check-in cost more of the loop's time than a short
    transaction's own statements. One the server closed, or idle for longer than
    ``PING_AFTER_IDLE_S``, goes back to the pool (whose checkout checks it) rather than
    being used; so does one a block failed in, which the pool resets. One a block was
    cancelled in is closed for good."""

    def __init__(self, engine: AsyncEngine, keep: int) -> None:
        self.engine = engine
        self.keep = keep
        self._idle: list[tuple[float, AsyncConnection]] = []

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncConnection]:
        conn = await self._take()
        try:
            async with conn.begin():
                yield conn
        except Exception:
            await _release(conn)
            raise
        except BaseException:
            # Cancelled, perhaps with a statement in flight: the server's state is
            # not known (a BEGIN whose answer had not come yet leaves it in a transaction
            # that the adapter knows nothing of): closed, the server rolls it back.
            await _discard(conn)
            raise
        if conn.invalidated or len(self._idle) >= self.keep or _in_transaction(conn):
            await _release(conn)
        else:
            self._idle.append((time.monotonic(), conn))

    async def _take(self) -> AsyncConnection:
        while self._idle:
            since, conn = self._idle.pop()
            if _fresh(_driver(conn), since):
                return conn
            await _release(conn)
        return await self.engine.connect()

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for _, conn in idle:
            await conn.close()


async def _release(conn: AsyncConnection) -> None:
    """Return ``conn`` to the pool, or close its database connection where a block left
    it in a transaction: never expected (a block ends its transaction, a failed one
    rolls it back), but the pool's reset would not end it, and its statements would
    never commit while their locks stayed held."""
    if not conn.invalidated and _in_transaction(conn):
        logger.warning("a PostgreSQL connection was left in a transaction; closing it")
        await _discard(conn)
    else:
        await conn.close()


def _driver(conn: AsyncConnection) -> Any:
    """``conn``'s asyncpg connection."""
    return conn.sync_connection.connection.driver_connection  # type: ignore[union-attr]


def _in_transaction(conn: AsyncConnection) -> bool:
    return bool(_driver(conn).is_in_transaction())


async def _discard(conn: AsyncConnection) -> None:
    """Close ``conn``'s database connection (the pool opens a new one in its place)."""
    try:
        await conn.invalidate()
    finally:
        await conn.close()
