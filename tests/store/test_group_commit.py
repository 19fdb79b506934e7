"""SQLite's group-commit writer (``store.group_commit``) on real database files.

Concurrent ``Database.write()`` blocks share one transaction; each caller returns only once
that transaction committed, a block that raises undoes only its own writes, a COMMIT that
fails raises in every caller of the batch, and a write lock held by another connection
(another process) is waited for without blocking the event loop.

Blocks yield (``asyncio.sleep(0)``) inside so the other callers queue up behind them, as
they do when a block awaits something.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy import event

from assistd.store.database import Connection, Database

T = TypeVar("T")

SCHEMA = (
    "CREATE TABLE parent (id INTEGER PRIMARY KEY)",
    "CREATE TABLE child (id INTEGER PRIMARY KEY, "
    "parent_id INTEGER NOT NULL REFERENCES parent (id))",
)


class Failure(Exception):
    pass


def run(tmp_path: Path, scenario: Callable[[Database, Path], Awaitable[T]]) -> T:
    path = tmp_path / "group.db"

    async def main() -> T:
        db = Database(f"sqlite+aiosqlite:///{path}")
        try:
            async with db.write() as conn:
                for statement in SCHEMA:
                    await conn.exec_driver_sql(statement)
            return await scenario(db, path)
        finally:
            await db.dispose()

    return asyncio.run(main())


def committed_ids(path: Path, table: str = "parent") -> set[int]:
    """What another connection (another process) sees as committed."""
    with sqlite3.connect(path) as other:
        return {row[0] for row in other.execute(f"SELECT id FROM {table}")}


def file_size(path: Path) -> int:
    return path.stat().st_size


def count_commits(db: Database) -> list[None]:
    commits: list[None] = []
    event.listen(db.engine.sync_engine, "commit", lambda _conn: commits.append(None))
    return commits


async def insert(conn: Connection, row_id: int, table: str = "parent") -> None:
    await conn.exec_driver_sql(f"INSERT INTO {table} (id) VALUES ({row_id})")


def test_concurrent_writers_share_one_commit_and_return_after_it(tmp_path: Path) -> None:
    async def scenario(db: Database, path: Path) -> tuple[int, dict[int, bool]]:
        commits = count_commits(db)
        seen_on_return: dict[int, bool] = {}

        async def writer(row_id: int) -> None:
            async with db.write() as conn:
                await asyncio.sleep(0)
                await insert(conn, row_id)
            seen_on_return[row_id] = row_id in committed_ids(path)

        await asyncio.gather(*(writer(i) for i in range(1, 11)))
        return len(commits), seen_on_return

    commits, seen_on_return = run(tmp_path, scenario)
    assert commits == 1
    assert seen_on_return == dict.fromkeys(range(1, 11), True)


def test_no_caller_resumes_before_the_commit(tmp_path: Path) -> None:
    async def scenario(db: Database, path: Path) -> list[set[int]]:
        seen: list[set[int]] = []
        first_done = asyncio.Event()

        async def first() -> None:
            async with db.write() as conn:
                await insert(conn, 1)
                await asyncio.sleep(0)
            first_done.set()

        async def second() -> None:
            async with db.write() as conn:
                await insert(conn, 2)
                # The first block ended, but the batch has not committed: its caller waits.
                await asyncio.sleep(0)
                seen.append(committed_ids(path))
                assert not first_done.is_set()

        await asyncio.gather(first(), second())
        seen.append(committed_ids(path))
        return seen

    during, after = run(tmp_path, scenario)
    assert during == set()
    assert after == {1, 2}


@pytest.mark.parametrize("failing", [0, 1, 2], ids=["first", "middle", "last"])
def test_a_failing_block_rolls_back_only_itself(tmp_path: Path, failing: int) -> None:
    async def scenario(db: Database, path: Path) -> tuple[list[Any], set[int]]:
        async def writer(index: int) -> None:
            async with db.write() as conn:
                await insert(conn, index + 1)
                await asyncio.sleep(0)
                if index == failing:
                    raise Failure

        results = await asyncio.gather(*(writer(i) for i in range(3)), return_exceptions=True)
        return results, committed_ids(path)

    results, rows = run(tmp_path, scenario)
    assert [isinstance(r, Failure) for r in results] == [i == failing for i in range(3)]
    assert rows == {1, 2, 3} - {failing + 1}


def test_a_failed_commit_fails_every_caller_of_the_batch(tmp_path: Path) -> None:
    async def scenario(db: Database, path: Path) -> tuple[list[Any], set[int], set[int]]:
        async def good() -> None:
            async with db.write() as conn:
                await insert(conn, 1)
                await asyncio.sleep(0)

        async def orphan() -> None:
            async with db.write() as conn:
                # Checked at COMMIT only: the whole batch's COMMIT fails.
                await conn.exec_driver_sql("PRAGMA defer_foreign_keys = ON")
                await conn.exec_driver_sql("INSERT INTO child (id, parent_id) VALUES (7, 99)")

        results = await asyncio.gather(good(), orphan(), return_exceptions=True)
        # The writer goes on with a fresh transaction.
        async with db.write() as conn:
            await insert(conn, 2)
        return results, committed_ids(path), committed_ids(path, "child")

    results, parents, children = run(tmp_path, scenario)
    assert all(isinstance(r, Exception) and "FOREIGN KEY" in str(r) for r in results), results
    assert parents == {2}
    assert children == set()


def test_a_cancelled_waiter_leaves_the_batch_to_the_others(tmp_path: Path) -> None:
    async def scenario(db: Database, path: Path) -> set[int]:
        release = asyncio.Event()

        async def holder() -> None:
            async with db.write() as conn:
                await insert(conn, 1)
                await release.wait()

        async def waiter(row_id: int) -> None:
            async with db.write() as conn:
                await insert(conn, row_id)

        first = asyncio.create_task(holder())
        await asyncio.sleep(0)
        cancelled = asyncio.create_task(waiter(2))
        kept = asyncio.create_task(waiter(3))
        await asyncio.sleep(0)
        cancelled.cancel()
        release.set()
        await asyncio.gather(first, kept)
        with pytest.raises(asyncio.CancelledError):
            await cancelled
        return committed_ids(path)

    assert run(tmp_path, scenario) == {1, 3}


def test_another_connections_write_lock_is_awaited_without_blocking_the_loop(
    tmp_path: Path,
) -> None:
    async def scenario(db: Database, path: Path) -> tuple[bool, int, set[int]]:
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        other.execute("INSERT INTO parent (id) VALUES (100)")
        write = asyncio.create_task(_write(db, 5))
        ticks = 0
        for _ in range(20):
            await asyncio.sleep(0.005)
            ticks += 1
        done_while_locked = write.done()
        other.execute("COMMIT")
        other.close()
        await write
        return done_while_locked, ticks, committed_ids(path)

    done_while_locked, ticks, rows = run(tmp_path, scenario)
    assert not done_while_locked
    assert ticks == 20
    assert rows == {5, 100}


async def _write(db: Database, row_id: int) -> None:
    async with db.write() as conn:
        await insert(conn, row_id)


def test_checkpoints_run_off_the_loop_and_move_the_wal_into_the_database(tmp_path: Path) -> None:
    """SQLite's automatic checkpoint is off on the writer's connection (it would run inside
    a COMMIT, on the loop); the writer's own, in a thread, copies the WAL into the file."""

    async def scenario(db: Database, path: Path) -> tuple[int, int, int, list[int], set[int]]:
        writer = db._writer
        assert writer is not None
        writer.checkpoint_every = 50
        wal = path.with_name(path.name + "-wal")
        size_before = file_size(path)
        checkpoints = 0
        wal_sizes = []
        for row_id in range(1, 151):
            # Concurrent with the checkpoint: writers wait for it (the WAL starts over).
            await asyncio.gather(_write(db, row_id), _write(db, row_id + 1000))
            if writer._checkpointing is not None:
                checkpoints += 1
                await writer.settle()
                wal_sizes.append(file_size(wal))
        assert writer._raw.execute("PRAGMA wal_autocheckpoint").fetchone() == (0,)
        return checkpoints, size_before, file_size(path), wal_sizes, committed_ids(path)

    checkpoints, size_before, size_after, wal_sizes, rows = run(tmp_path, scenario)
    assert checkpoints >= 3, wal_sizes
    # The database file itself (not only the WAL) now holds the rows, and the WAL was
    # written over from its start rather than grown by each 50 commits.
    assert size_after > size_before
    assert wal_sizes[-1] == wal_sizes[1], wal_sizes
    assert rows == set(range(1, 151)) | set(range(1001, 1151))


async def _concurrent_writes(db: Database, row_ids: range) -> None:
    await asyncio.gather(*(_write(db, row_id) for row_id in row_ids))


def test_under_load_blocks_run_in_one_loop_turn_share_the_commit(tmp_path: Path) -> None:
    """Blocks that never wait inside (the usual kind) share a transaction once the writer
    has seen that blocks come while a commit is deferred to the loop's next turn; alone, a
    block commits at once."""

    async def scenario(db: Database, path: Path) -> tuple[int, int, set[int]]:
        commits = count_commits(db)
        # The schema's block was the first batch; each of the next six commits at once,
        # the eighth (a probe) is deferred and the remaining 14 blocks join it.
        await _concurrent_writes(db, range(1, 21))
        first = len(commits)
        await _concurrent_writes(db, range(21, 41))
        return first, len(commits) - first, committed_ids(path)

    first, second, rows = run(tmp_path, scenario)
    assert first == 7
    assert second == 1
    assert rows == set(range(1, 41))


def test_closing_commits_the_open_batch(tmp_path: Path) -> None:
    async def scenario(db: Database, path: Path) -> tuple[bool, set[int]]:
        writer = db._writer
        assert writer is not None
        await _concurrent_writes(db, range(2, 22))  # commits are deferred from now on
        write = asyncio.create_task(_write(db, 1))
        for _ in range(100):
            await asyncio.sleep(0)
            if writer._batch is not None and writer._batch.commit_due:
                break  # the block ran; its commit is due in the loop's next turn
        pending = writer._batch is not None
        await writer.close()
        await write
        return pending, committed_ids(path)

    pending, rows = run(tmp_path, scenario)
    assert pending
    assert 1 in rows


def test_writes_wait_while_a_checkpoint_runs(tmp_path: Path) -> None:
    """A checkpoint that writes overtook could never copy the whole WAL, which would then
    grow without end: writes wait for it, reads do not."""

    async def scenario(db: Database, path: Path) -> tuple[bool, set[int], set[int]]:
        writer = db._writer
        assert writer is not None
        writer.checkpoint_every = 1
        release = threading.Event()
        checkpoint = writer._checkpoint

        def held_checkpoint() -> None:
            release.wait(10)
            checkpoint()

        writer._checkpoint = held_checkpoint  # type: ignore[method-assign]
        await _write(db, 1)  # its commit starts the checkpoint
        assert writer._checkpointing is not None
        waiting = asyncio.create_task(_write(db, 2))
        for _ in range(10):
            await asyncio.sleep(0)
        async with db.read() as conn:
            read = {row[0] for row in await conn.exec_driver_sql("SELECT id FROM parent")}
        during = committed_ids(path)
        blocked = not waiting.done()
        release.set()
        await writer.settle()
        await waiting
        return blocked, read | during, committed_ids(path)

    blocked, during, after = run(tmp_path, scenario)
    assert blocked
    assert during == {1}
    assert after == {1, 2}
