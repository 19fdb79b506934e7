"""Runs as workers (or none) left them, for the run queue tests, and their leases."""

from __future__ import annotations

from assistd import ids
from assistd.protocol.runs import RunStatus
from assistd.store import runs, tables
from assistd.store.database import Database
from assistd.store.records import Thread
from assistd.store.repository import RecordRepository
from tests.store_support import run_record


async def stored_run(
    db: Database,
    status: RunStatus = "queued",
    *,
    worker_id: str | None = None,
    lease_until: float | None = None,
    run_id: str | None = None,
) -> str:
    """A run on its own thread, as some worker (or none) left it (a fresh id unless
    given)."""
    thread_id = ids.new_id("thread")
    key = ids.sort_key_of(thread_id, "thread")
    assert key is not None
    thread = Thread(
        id=thread_id, sort_key=key, project="proj", created_at=0, tool_resources=None, metadata={}
    )
    made = run_record(
        id=run_id, thread_id=thread_id, assistant_id="asst_x", status=status, model="m"
    )
    run = made.but(worker_id=worker_id, lease_until=lease_until)
    async with db.write() as conn:
        await RecordRepository(tables.threads, "thread", Thread).add(conn, thread)
        assert await runs.create(conn, run)
    return run.id


async def lease_of(db: Database, run_id: str) -> tuple[str | None, float | None]:
    async with db.read() as conn:
        run = await runs.get(conn, run_id)
    assert run is not None
    return run.worker_id, run.lease_until


async def set_status(db: Database, run_id: str, status: RunStatus) -> None:
    async with db.write() as conn:
        await conn.execute(
            tables.runs.update().where(tables.runs.c.id == run_id).values(status=status)
        )


async def settle_all(db: Database) -> None:
    """End every unfinished run (another test's, in a shared database): recovery, which
    looks at all runs, then sees only the current test's."""
    runs_table = tables.runs
    async with db.write() as conn:
        await conn.execute(
            runs_table.update()
            .where(runs_table.c.status.in_(("queued", "in_progress", "cancelling")))
            .values(status="completed", worker_id=None, lease_until=None)
        )
