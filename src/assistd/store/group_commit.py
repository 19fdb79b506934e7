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

Checkpoints (copying the WAL into the database file, with an fsync) run in a thread on a
connection of their own: SQLite's automatic checkpoint runs inside the COMMIT that crosses
its threshold, which would stop the event loop (every stream) for milliseconds. Writes
wait meanwhile (reads and streams go on): a checkpoint that writes overtook could never
finish, and the WAL would grow without end instead of starting over.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from assistd.store import sqlite_inline

logger = logging.getLogger("assistd.store")

# Marks the writer's connection: the engine's ``begin`` hook leaves BEGIN to the writer.
WRITER_OPTION = "assistd_sqlite_writer"
MAX_BATCH = 100
# Reads and other processes' writes wait this long for a lock in SQLite's busy handler;
# the writer waits as long, but asleep on the loop.
BUSY_TIMEOUT_S = 30.0
# Commits between checkpoints: about SQLite's own threshold (1,000 WAL pages) for the few
# pages a run's commits touch.
CHECKPOINT_EVERY = 200
# Deferring commits (``_defer_commit``): while deferred batches average this many blocks;
# else one batch in this many, to see whether blocks would come; the average's weight of
# the latest batch.
_DEFER_ABOVE = 1.5
_PROBE_EVERY = 8
_JOINED_WEIGHT = 0.25


@dataclass(eq=False)
class _Batch:
    committed: asyncio.Future[None]
    members: int = 0
    began: bool = False
    commit_due: bool = False  # its commit is scheduled for the loop's next turn


@dataclass(eq=False)
class _Grant:
    batch: _Batch
    conn: AsyncConnection


class BatchFailed(Exception):
    """The shared transaction was lost (a block's undo failed); its writes did not land."""


@dataclass(eq=False)
class GroupCommitWriter:
    engine: AsyncEngine
    path: str  # the database file
    max_batch: int = MAX_BATCH
    busy_timeout: float = BUSY_TIMEOUT_S
    _waiting: deque[asyncio.Future[_Grant]] = field(default_factory=deque)
    _busy: bool = False  # a block (or its commit, or a checkpoint) holds the connection
    _batch: _Batch | None = None
    _conn: AsyncConnection | None = None
    _raw: Any = None  # the sqlite3 connection under _conn
    _opening: asyncio.Lock = field(default_factory=asyncio.Lock)
    checkpoint_every: int = CHECKPOINT_EVERY
    _commits: int = 0  # since the last checkpoint began
    _batches: int = 0  # batches closed with nobody waiting to join them
    _joined: float = 1.0  # blocks per deferred batch, moving average
    _checkpointing: asyncio.Future[None] | None = None
    _checkpointer: sqlite3.Connection | None = None  # used in the checkpoint's thread only

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
                await self._begin()
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
        if self._checkpointing is not None:
            self._busy = True  # until the checkpoint is over
            return
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
        """After a block: fail the batch (its transaction is lost), commit it (full), or
        leave it open to whoever waits or comes before the commit; then pass the
        connection on."""
        try:
            if not batch.began:
                # Its first block never began it (BEGIN failed, or the caller left): nobody
                # else is in it, and the next caller begins a new one.
                self._batch = None
            elif not usable:
                self._close_batch(batch, BatchFailed("the write transaction was lost"))
            elif batch.members >= self.max_batch:
                self._close_batch(batch, None)
            elif not self._others_waiting() and not batch.commit_due:
                if self._defer_commit():
                    batch.commit_due = True
                    asyncio.get_running_loop().call_soon(self._commit_due, batch)
                else:
                    self._close_batch(batch, None)
        finally:
            self._grant_next()

    def _defer_commit(self) -> bool:
        """Whether a batch nobody waits to join commits in the loop's next turn rather
        than now, so that the blocks other tasks run meantime join it.

        Blocks rarely wait inside, so a caller seldom finds the connection busy: without
        this, under load each block was a transaction (a COMMIT and its WAL pages) of its
        own. But a deferred commit also waits for whatever else is ready (a response to
        start, say), for nothing when no block comes: so only while deferred batches have
        been gaining members, and on every ``_PROBE_EVERY``-th batch to find out."""
        self._batches += 1
        return self._joined >= _DEFER_ABOVE or self._batches % _PROBE_EVERY == 0

    def _commit_due(self, batch: _Batch) -> None:
        batch.commit_due = False
        if self._batch is batch and not self._busy:
            self._joined += (batch.members - self._joined) * _JOINED_WEIGHT
            self._close_batch(batch, None)
        # Else a block holds the connection (it awaits inside): its end commits the batch.

    def _close_batch(self, batch: _Batch, failure: BaseException | None) -> None:
        self._batch = None
        assert self._conn is not None
        if failure is None:
            try:
                sqlite_inline.commit(self._conn, self._raw)
            except BaseException as exc:
                failure = exc
            else:
                self._commits += 1
                if self._commits >= self.checkpoint_every and self._checkpointing is None:
                    self._start_checkpoint()
        if failure is not None:
            sqlite_inline.rollback(self._conn, self._raw)
            batch.committed.set_exception(failure)
            # Marks it retrieved: callers whose blocks raised never await it.
            batch.committed.exception()
        else:
            batch.committed.set_result(None)

    def _start_checkpoint(self) -> None:
        self._commits = 0
        done = asyncio.get_running_loop().run_in_executor(None, self._checkpoint)
        self._checkpointing = done

        def finished(future: asyncio.Future[None]) -> None:
            self._checkpointing = None
            if not future.cancelled() and future.exception() is not None:
                # Not fatal: the WAL only grows until a later checkpoint succeeds.
                logger.warning("WAL checkpoint failed: %s", future.exception())
            if self._conn is not None:
                self._grant_next()
            else:
                self._busy = False  # closed meanwhile

        done.add_done_callback(finished)

    def _checkpoint(self) -> None:
        """PASSIVE: copies what no reader still needs, never waiting on a lock."""
        if self._checkpointer is None:
            self._checkpointer = sqlite3.connect(self.path, check_same_thread=False)
        self._checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)")

    async def settle(self) -> None:
        """Return once no checkpoint is running."""
        if self._checkpointing is not None:
            with suppress(Exception):
                await asyncio.shield(self._checkpointing)

    async def _begin(self) -> None:
        """BEGIN IMMEDIATE, waiting for another process's write lock asleep on the loop,
        not in SQLite's busy handler (which would block the loop).

        Straight to ``sqlite3``, as is the COMMIT: SQLAlchemy's begin and commit cost
        several times SQLite's. SQLAlchemy begins its bookkeeping only if a block's
        statement takes its path (its begin hook leaves the writer's connection alone)."""
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

    async def _open(self) -> None:
        async with self._opening:
            if self._conn is not None:
                return
            conn = await self.engine.execution_options(**{WRITER_OPTION: True}).connect()
            raw = await conn.get_raw_connection()
            driver: Any = raw.driver_connection
            self._raw = driver.raw
            self._raw.execute("PRAGMA busy_timeout=0")
            self._raw.execute("PRAGMA wal_autocheckpoint=0")  # ours run in a thread
            self._conn = conn

    async def close(self) -> None:
        if self._conn is None:
            return
        batch = self._batch
        if batch is not None and not batch.committed.done():
            # Committed if no block is inside it: its callers wait for that commit.
            self._close_batch(batch, BatchFailed("the database was closed") if self._busy else None)
        conn, self._conn = self._conn, None
        await self.settle()
        if self._checkpointer is not None:
            self._checkpointer.close()
            self._checkpointer = None
        with suppress(Exception):
            self._raw.execute(f"PRAGMA busy_timeout={int(self.busy_timeout * 1000)}")
            self._raw.execute("PRAGMA wal_autocheckpoint=1000")
        await conn.close()
