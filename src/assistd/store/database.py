"""The database handle: engine set-up per dialect, transactions, and migrations."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeAlias

from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.engine import Connection as SyncConnection
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from assistd.store import postgres, sqlite_inline
from assistd.store.group_commit import BUSY_TIMEOUT_S, WRITER_OPTION, GroupCommitWriter
from assistd.store.prepared import sqlite_connection

logger = logging.getLogger("assistd.store")

# The connection type services and the executor hold between store calls; they never build
# statements on it themselves.
Connection: TypeAlias = AsyncConnection

_MIGRATIONS = Path(__file__).parent / "migrations"
# Any constant, the same in every process of a deployment ("assistd" in ASCII).
_MIGRATION_LOCK = 0x61737369737464
_IMMEDIATE = "assistd_sqlite_immediate"
# Idle connections kept open (per kind: SQLite's reads; PostgreSQL's reads and writes).
_KEEP_IDLE = 4


class Database:
    """Owns the engine. ``read()`` and ``write()`` give a connection inside a transaction;
    ``write()`` returns once that transaction committed.

    On SQLite, statements run on the event loop's thread (``store.sqlite_inline``), and
    every write of the process goes through one connection that commits the blocks of
    concurrent callers together (``store.group_commit``); its transactions start with
    ``BEGIN IMMEDIATE``, so another process's writer makes it wait rather than fail. Reads
    stay concurrent with writes thanks to WAL. On PostgreSQL a write block has a connection
    in a transaction of its own, and a read block (or ``write_one``) one in autocommit; a few
    of each stay checked out between blocks (``store.postgres``).
    """

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        self.dialect = make_url(url).get_backend_name()
        kwargs: dict[str, Any] = {"echo": echo}
        engine_url = make_url(url)
        self._writer: GroupCommitWriter | None = None
        self._write_lock: asyncio.Lock | None = None
        self._readers: list[AsyncConnection] = []  # idle read connections (SQLite on disk)
        if self.dialect == "sqlite":
            database = engine_url.database
            on_disk = bool(database) and database != ":memory:"
            if on_disk:
                Path(str(database)).parent.mkdir(parents=True, exist_ok=True)
            engine_url = sqlite_inline.inline_url(engine_url)
            kwargs["connect_args"] = {"timeout": BUSY_TIMEOUT_S, "check_same_thread": False}
            # Every use is a begin() block that commits or rolls back itself; the pool's own
            # rollback on check-in would only be one more statement per transaction.
            kwargs["pool_reset_on_return"] = None
        else:
            # Connections are kept rather than opened per burst: an overflow connection is
            # closed as it comes back, and a new one costs a TLS attempt, authentication,
            # SQLAlchemy's set-up queries and every statement prepared again (at 200 runs
            # at once that churn was a tenth of the CPU). The cache holds every statement
            # of the run path with room to spare.
            kwargs.update(
                pool_size=20,
                max_overflow=10,
                connect_args={"prepared_statement_cache_size": 500},
            )
        self.engine: AsyncEngine = create_async_engine(engine_url, **kwargs)
        self._write_engine = self.engine.execution_options(**{_IMMEDIATE: True})
        # PostgreSQL: connections kept between blocks, for reads (and single-statement
        # writes) in autocommit and for transactions. Reads run outside a transaction: each
        # statement of a READ COMMITTED transaction takes a snapshot of its own anyway, so
        # BEGIN and COMMIT would only be two more round trips. (Reads never lock rows; the
        # writes that do use ``write``.)
        self._pg_autocommit: postgres.KeptConnections | None = None
        self._pg_transactions: postgres.KeptConnections | None = None
        if self.dialect == "postgresql":
            postgres.configure(self.engine)
            autocommit = self.engine.execution_options(isolation_level="AUTOCOMMIT")
            self._pg_autocommit = postgres.KeptConnections(autocommit, _KEEP_IDLE)
            self._pg_transactions = postgres.KeptConnections(self.engine, _KEEP_IDLE)
        if self.dialect == "sqlite":
            _configure_sqlite(self.engine)
            if on_disk:
                self._writer = GroupCommitWriter(self.engine, str(database))
            else:
                # One shared in-memory connection: no separate writer, writes take turns.
                self._write_lock = asyncio.Lock()

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        if self._pg_autocommit is not None:
            async with self._pg_autocommit.begin() as conn:
                yield conn
            return
        if self._writer is None:
            # In memory: one connection shared with the writes, SQLAlchemy's way.
            async with self.engine.begin() as conn:
                yield conn
            return
        # Kept open between reads, and BEGIN and COMMIT straight to sqlite3: a checkout,
        # SQLAlchemy's begin and commit and a check-in cost several times a read's SELECTs.
        # Nothing here yields (inline SQLite), so a cancellation cannot cut it short.
        conn = self._readers.pop() if self._readers else await self.engine.connect()
        raw = sqlite_connection(conn)
        assert raw is not None
        raw.execute("BEGIN")
        try:
            yield conn
        except BaseException:
            sqlite_inline.rollback(conn, raw)
            await conn.close()
            raise
        sqlite_inline.commit(conn, raw)
        if len(self._readers) < _KEEP_IDLE:
            self._readers.append(conn)
        else:
            await conn.close()

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        if self._writer is not None:
            async with self._writer.transaction() as conn:
                yield conn
        elif self._write_lock is not None:
            async with self._write_lock, self._write_engine.begin() as conn:
                yield conn
        else:
            assert self._pg_transactions is not None
            async with self._pg_transactions.begin() as conn:
                yield conn

    @asynccontextmanager
    async def write_one(self) -> AsyncIterator[AsyncConnection]:
        """``write`` for a block of one statement, which is atomic by itself: on
        PostgreSQL it runs outside a transaction (BEGIN and COMMIT would be two more round
        trips). Two statements in it would not be one transaction there."""
        if self._pg_autocommit is None:
            async with self.write() as conn:
                yield conn
            return
        async with self._pg_autocommit.begin() as conn:
            yield conn

    async def ping(self) -> None:
        """Round-trip to the database (health checks)."""
        async with self.engine.connect() as conn:
            await conn.exec_driver_sql("SELECT 1")

    async def migrate(self) -> None:
        """Apply every Alembic migration up to head."""
        async with self.engine.begin() as conn:
            if self.dialect == "postgresql":
                # Several processes start at once (serve --workers, workers): one migrates,
                # the others wait for its transaction and then find the schema at head.
                await conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})")
            await conn.run_sync(_upgrade)

    async def dispose(self) -> None:
        if self._writer is not None:
            await self._writer.close()
        readers, self._readers = self._readers, []
        for conn in readers:
            await conn.close()
        for kept in (self._pg_autocommit, self._pg_transactions):
            if kept is not None:
                await kept.close()
        await self.engine.dispose()


def alembic_config(connection: SyncConnection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def _upgrade(connection: SyncConnection) -> None:
    command.upgrade(alembic_config(connection), "head")


def _configure_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take over transaction control from pysqlite so BEGIN is ours to emit.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: SyncConnection) -> None:
        options = conn.get_execution_options()
        if options.get(WRITER_OPTION, False):
            return  # the group-commit writer began it already
        driver: Any = conn.connection.dbapi_connection
        if driver.raw.in_transaction:
            return  # a read began it (``Database.read``), and a statement took this path
        driver.raw.execute("BEGIN IMMEDIATE" if options.get(_IMMEDIATE, False) else "BEGIN")
