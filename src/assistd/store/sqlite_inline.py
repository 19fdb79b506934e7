"""SQLite run on the event loop's own thread, for SQLAlchemy's asyncio engine.

aiosqlite sends every statement (and every fetch, begin and commit) to a thread of its
own and back: two context switches and a wake-up of the loop per call, which cost far
more than the statement itself (10-100 µs in WAL mode with ``synchronous=NORMAL``). This
dialect is pysqlite's over a thin adapter of ``sqlite3`` shaped like an async driver: the
engine runs it inside its greenlet as usual, and each statement runs straight through.

What could block the loop for long is waiting on a lock held by another process; the
group-commit writer (``store.group_commit``) takes the write lock without waiting in
SQLite's busy handler, and reads in WAL mode do not wait on writers.
"""

from __future__ import annotations

import sqlite3
import types
from collections import deque
from contextlib import suppress
from typing import Any

from sqlalchemy import pool
from sqlalchemy.dialects import registry
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.util.concurrency import await_

DRIVER = "assistd_inline"


async def _done() -> None:
    return None


class InlineCursor:
    """A ``sqlite3`` cursor whose rows are read out as it executes (as an async driver's
    adapter does), so a result outlives the statement."""

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor
        self._rows: deque[Any] = deque()
        self.description: Any = None
        self.rowcount = -1
        self.lastrowid: int | None = None
        self.arraysize = 1

    def _ran(self) -> None:
        cursor = self._cursor
        self.description = cursor.description
        self.rowcount = cursor.rowcount
        self.lastrowid = cursor.lastrowid
        self._rows = deque(cursor.fetchall()) if cursor.description else deque()
        # The asyncio engine insists that a statement awaited something (to catch a sync
        # driver used by mistake): an awaitable done at once, which yields no loop turn.
        await_(_done())

    def execute(self, operation: str, parameters: Any = ()) -> None:
        self._cursor.execute(operation, parameters or ())
        self._ran()

    def executemany(self, operation: str, parameters: Any) -> None:
        self._cursor.executemany(operation, parameters)
        self._ran()

    def fetchone(self) -> Any:
        return self._rows.popleft() if self._rows else None

    def fetchmany(self, size: int | None = None) -> list[Any]:
        count = self.arraysize if size is None else size
        return [self._rows.popleft() for _ in range(min(count, len(self._rows)))]

    def fetchall(self) -> list[Any]:
        rows = list(self._rows)
        self._rows.clear()
        return rows

    def close(self) -> None:
        self._rows.clear()
        self._cursor.close()

    async def _async_soft_close(self) -> None:
        """The asyncio engine's hook; the rows are read already."""

    def setinputsizes(self, *sizes: Any) -> None:
        return None


class InlineConnection:
    """A ``sqlite3`` connection handing out ``InlineCursor``s; ``raw`` is the connection
    itself, for calls made outside SQLAlchemy."""

    def __init__(self, raw: sqlite3.Connection) -> None:
        self.raw = raw

    def cursor(self) -> InlineCursor:
        return InlineCursor(self.raw.cursor())

    def commit(self) -> None:
        self.raw.commit()

    def rollback(self) -> None:
        self.raw.rollback()

    def close(self) -> None:
        self.raw.close()

    @property
    def isolation_level(self) -> str | None:
        return self.raw.isolation_level

    @isolation_level.setter
    def isolation_level(self, value: Any) -> None:
        self.raw.isolation_level = value

    def create_function(self, *args: Any, **kwargs: Any) -> None:
        self.raw.create_function(*args, **kwargs)

    @property
    def in_transaction(self) -> bool:
        return self.raw.in_transaction


def _connect(*args: Any, **kwargs: Any) -> InlineConnection:
    return InlineConnection(sqlite3.connect(*args, **kwargs))


def _dbapi() -> types.ModuleType:
    module = types.ModuleType("assistd_inline_sqlite3")
    module.__dict__.update({k: v for k, v in vars(sqlite3).items() if not k.startswith("__")})
    module.connect = _connect  # type: ignore[attr-defined]
    return module


class InlineSQLiteDialect(SQLiteDialect_pysqlite):
    driver = DRIVER
    is_async = True
    supports_statement_cache = True

    @classmethod
    def import_dbapi(cls) -> Any:
        return _dbapi()

    @classmethod
    def get_pool_class(cls, url: URL) -> type[pool.Pool]:
        # The asyncio-aware queue pool: a checkout that waits must not block the loop.
        if cls._is_url_file_db(url):
            return pool.AsyncAdaptedQueuePool
        return pool.StaticPool


registry.register(f"sqlite.{DRIVER}", __name__, "InlineSQLiteDialect")


# Transactions begun straight on ``raw`` (SQLAlchemy's begin and commit cost several times
# a short transaction's statements): SQLAlchemy keeps books only once a statement took its
# path, and then its commit or rollback ends both. The inline driver never waits, so its
# sync calls are safe on the loop.


def commit(conn: AsyncConnection, raw: sqlite3.Connection) -> None:
    """COMMIT the transaction begun on ``raw`` under ``conn``."""
    if conn.in_transaction():
        conn.sync_connection.commit()  # type: ignore[union-attr]
    else:
        raw.execute("COMMIT")


def rollback(conn: AsyncConnection, raw: sqlite3.Connection) -> None:
    """Roll back the transaction begun on ``raw`` under ``conn``."""
    with suppress(Exception):
        conn.sync_connection.rollback()  # type: ignore[union-attr]
    # A COMMIT that failed (a deferred constraint) leaves SQLite's transaction open though
    # SQLAlchemy counts it as over.
    if raw.in_transaction:
        raw.execute("ROLLBACK")


def inline_url(url: URL) -> URL:
    """``url`` (any sqlite driver) served by this dialect."""
    return url.set(drivername=f"sqlite+{DRIVER}")
