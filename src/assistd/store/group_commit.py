"""Group commit for SQLite: the write blocks of many callers share one transaction.

SQLite has one writer at a time, and each write transaction pays a BEGIN, a COMMIT (a WAL
append of every page it touched) and a turn on the writer lock. Here one connection does
every write of this process: callers' blocks run one after another on it, inside one open
transaction, each in a SAVEPOINT so a block that raises undoes only itself. The block that
finds no other block waiting (or fills the batch) commits, and only then does ``write()``
return to every caller of the batch: a caller never sees its change as done (and never
publishes an event about it) before it is durable. A failed COMMIT raises in all of them.

The connection passes from block to block as a baton, without a task in between: the
block that ends grants the next waiting one directly, which saves a loop iteration per
write compared to a writer task handing out turns.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

# Marks the writer's connection: the engine's ``begin`` hook leaves BEGIN to the writer.
WRITER_OPTION = "assistd_sqlite_writer"
MAX_BATCH = 100
# Reads and other processes' writes wait this long for a lock in SQLite's busy handler;
# the writer waits as long, but asleep on the loop.
BUSY_TIMEOUT_S = 30.0


@dataclass(eq=False)
class _Batch:
    committed: asyncio.Future[None]
    members: int = 0
    began: bool = False


@dataclass(eq=False)
class _Grant:
    batch: _Batch
    conn: AsyncConnection


class BatchFailed(Exception):
    """The shared transaction was lost (a block's undo failed); its writes did not land."""


@dataclass(eq=False)
class GroupCommitWriter:
    engine: AsyncEngine
    max_batch: int = MAX_BATCH
    busy_timeout: float = BUSY_TIMEOUT_S
    _waiting: deque[asyncio.Future[_Grant]] = field(default_factory=deque)
    _busy: bool = False  # a block (or its commit) holds the connection
    _batch: _Batch | None = None
    _conn: AsyncConnection | None = None
    _raw: Any = None  # the sqlite3 connection under _conn
    _opening: asyncio.Lock = field(default_factory=asyncio.Lock)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """A turn on the write connection inside the open batch; returns once committed."""
        if self._conn is None:
            await self._open()
        turn: asyncio.Future[_Grant] = asyncio.get_running_loop().create_future()
        self._waiting.append(turn)
        if not self._busy:
            self._grant_next()
        try:
            grant = await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                # Granted as we were cancelled: hand the turn on unused.
                await self._end_turn(turn.result().batch, usable=True)
            raise
        batch, conn = grant.batch, grant.conn
        savepoint: str | None = None
        try:
            if batch.began:
                # Straight to sqlite3: SQLAlchemy's nested transaction is two statements
                # through its execution per block, more than most blocks' own writes.
                savepoint = f"block_{batch.members}"
                self._raw.execute(f"SAVEPOINT {savepoint}")
            else:
                # The batch's first block needs no savepoint: if it raises, the whole
                # transaction (only its own writes) goes.
                await self._begin(conn)
                batch.began = True
            yield conn
        except BaseException:
            await self._end_turn(batch, usable=self._undo(savepoint))
            raise
        if savepoint is not None:
            try:
                self._raw.execute(f"RELEASE {savepoint}")
            except BaseException:
                await self._end_turn(batch, usable=self._undo(savepoint))
                raise
        await self._end_turn(batch, usable=True)
        # Shielded: one caller giving up must not cancel the others' commit.
        await asyncio.shield(batch.committed)

    def _undo(self, savepoint: str | None) -> bool:
        """Roll a block back to its savepoint; False when there is none (the batch's first
        block) or that failed: then the whole transaction must go."""
        if savepoint is None:
            return False
        try:
            self._raw.execute(f"ROLLBACK TO {savepoint}")
            self._raw.execute(f"RELEASE {savepoint}")
            return True
        except sqlite3.Error:
            return False

    def _grant_next(self) -> None:
        """Give the connection to the next waiting caller, if any (the connection is free)."""
        while self._waiting:
            turn = self._waiting.popleft()
            if turn.done():
                continue  # its caller was cancelled while waiting
            assert self._conn is not None
            if self._batch is None:
                self._batch = _Batch(asyncio.get_running_loop().create_future())
            self._batch.members += 1
            self._busy = True
            turn.set_result(_Grant(self._batch, self._conn))
            return
        self._busy = False

    def _others_waiting(self) -> bool:
        while self._waiting and self._waiting[0].done():
            self._waiting.popleft()
        return bool(self._waiting)

    async def _end_turn(self, batch: _Batch, *, usable: bool) -> None:
        """After a block: commit (nobody else waiting, or the batch is full) or fail the
        batch (its transaction is lost), then pass the connection on."""
        try:
            if not batch.began:
                # Its first block never began it (BEGIN failed, or the caller left): nobody
                # else is in it, and the next caller begins a new one.
                self._batch = None
            elif not usable:
                await self._close_batch(batch, BatchFailed("the write transaction was lost"))
            elif batch.members >= self.max_batch or not self._others_waiting():
                await self._close_batch(batch, None)
        finally:
            self._grant_next()

    async def _close_batch(self, batch: _Batch, failure: BaseException | None) -> None:
        self._batch = None
        assert self._conn is not None
        if failure is None:
            try:
                await self._conn.commit()
            except BaseException as exc:
                failure = exc
        if failure is not None:
            with suppress(Exception):
                await self._conn.rollback()
            # A COMMIT that failed (a deferred constraint) leaves SQLite's transaction open
            # though SQLAlchemy counts it as over.
            if self._raw.in_transaction:
                self._raw.execute("ROLLBACK")
            batch.committed.set_exception(failure)
            # Marks it retrieved: callers whose blocks raised never await it.
            batch.committed.exception()
        else:
            batch.committed.set_result(None)

    async def _begin(self, conn: AsyncConnection) -> None:
        """BEGIN IMMEDIATE, waiting for another process's write lock asleep on the loop,
        not in SQLite's busy handler (which would block the loop)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.busy_timeout
        delay = 0.001
        while True:
            try:
                self._raw.execute("BEGIN IMMEDIATE")
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or loop.time() >= deadline:
                    raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)
        try:
            # SQLAlchemy's bookkeeping only: the begin hook skips the writer's connection.
            await conn.begin()
        except BaseException:
            self._raw.execute("ROLLBACK")
            raise

    async def _open(self) -> None:
        async with self._opening:
            if self._conn is not None:
                return
            conn = await self.engine.execution_options(**{WRITER_OPTION: True}).connect()
            raw = await conn.get_raw_connection()
            driver: Any = raw.driver_connection
            self._raw = driver.raw
            self._raw.execute("PRAGMA busy_timeout=0")
            self._conn = conn

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        batch = self._batch
        if batch is not None and not batch.committed.done():
            await self._close_batch(batch, BatchFailed("the database was closed"))
        with suppress(Exception):
            self._raw.execute(f"PRAGMA busy_timeout={int(self.busy_timeout * 1000)}")
        await conn.close()
