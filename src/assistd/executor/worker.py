"""The worker: takes runs from the queue, executes them, keeps their leases, recovers.

A run a worker holds carries ``worker_id`` and ``lease_until``; the worker renews the lease
while it holds the run. The sweeper (in every worker) treats a run whose lease lapsed as
abandoned by a dead process: a queued run is taken over, an interrupted in-progress run
fails with a clear ``last_error`` (its partial message is kept, marked incomplete), a
cancelling run is cancelled. It also expires runs left in ``requires_action`` too long.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time

import sqlalchemy as sa

from assistd import clock
from assistd.executor.run_loop import RunExecutor
from assistd.executor.state import Emitter, end_run, lease_deadline
from assistd.queue.base import RunQueue
from assistd.store import tables
from assistd.store.database import Database

logger = logging.getLogger("assistd.worker")

INTERRUPTED = {
    "code": "server_error",
    "message": "The run was interrupted because the server processing it stopped; "
    "please create a new run.",
}


def new_worker_id() -> str:
    return "wrk_" + secrets.token_hex(8)


class Worker:
    def __init__(
        self,
        db: Database,
        queue: RunQueue,
        executor: RunExecutor,
        *,
        concurrency: int,
        lease_seconds: float,
    ) -> None:
        self.db = db
        self.queue = queue
        self.executor = executor
        self.worker_id = executor.config.worker_id
        self.emit: Emitter = executor.emit
        self.lease_seconds = lease_seconds
        self.slots = asyncio.Semaphore(concurrency)
        self.owned: set[str] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self._loops: list[asyncio.Task[None]] = []

    async def enqueue(self, run_id: str) -> None:
        """Queue a run this process just created or resumed; it holds the lease meanwhile."""
        self.owned.add(run_id)
        await self.queue.put(run_id)

    async def start(self, *, recover_all: bool) -> None:
        """Recover what a previous process left, then start the loops.

        ``recover_all`` (single-process stores) treats every unfinished run as abandoned
        at once instead of waiting for leases to lapse.
        """
        await self.sweep(ignore_leases=recover_all)
        self._loops = [
            asyncio.create_task(self._dispatch(), name="assistd-dispatch"),
            asyncio.create_task(self._maintain(), name="assistd-leases"),
        ]

    async def stop(self) -> None:
        for task in [*self._loops, *self.tasks]:
            task.cancel()
        for task in [*self._loops, *self.tasks]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _dispatch(self) -> None:
        while True:
            run_id = await self.queue.get()
            await self.slots.acquire()
            task = asyncio.create_task(self._execute(run_id), name=f"assistd-run-{run_id}")
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _execute(self, run_id: str) -> None:
        try:
            await self.executor.execute(run_id)
        except Exception:
            logger.exception("executing run %s crashed", run_id)
        finally:
            self.owned.discard(run_id)
            self.slots.release()

    async def _maintain(self) -> None:
        interval = max(1.0, self.lease_seconds / 3)
        while True:
            await asyncio.sleep(interval)
            try:
                await self.renew()
                await self.sweep()
            except Exception:
                logger.exception("run maintenance failed; retrying")

    async def renew(self) -> None:
        if not self.owned:
            return
        runs = tables.runs
        async with self.db.write() as conn:
            await conn.execute(
                sa.update(runs)
                .where(
                    runs.c.id.in_(list(self.owned)), runs.c.status.in_(("queued", "in_progress"))
                )
                .values(worker_id=self.worker_id, lease_until=lease_deadline(self.lease_seconds))
            )

    async def sweep(self, *, ignore_leases: bool = False) -> None:
        """Expire overdue runs; take over or end runs whose worker is gone."""
        runs = tables.runs
        now = clock.now()
        async with self.db.read() as conn:
            overdue = await conn.execute(
                sa.select(runs.c.id).where(
                    runs.c.status == "requires_action", runs.c.expires_at <= now
                )
            )
            expired = [r[0] for r in overdue]
            stale_filter: list[sa.ColumnElement[bool]] = [
                runs.c.status.in_(("queued", "in_progress", "cancelling"))
            ]
            if not ignore_leases:
                stale_filter.append(
                    sa.or_(runs.c.lease_until.is_(None), runs.c.lease_until < time.time())
                )
            stale = await conn.execute(sa.select(runs.c.id, runs.c.status).where(*stale_filter))
            abandoned = [(r[0], r[1]) for r in stale if r[0] not in self.owned]
        for run_id in expired:
            await end_run(self.db, self.emit, run_id, "expired", only_from=("requires_action",))
        for run_id, status in abandoned:
            if status == "queued":
                await self._adopt(run_id)
            elif status == "in_progress":
                logger.warning("run %s was interrupted; failing it", run_id)
                await end_run(
                    self.db,
                    self.emit,
                    run_id,
                    "failed",
                    only_from=("in_progress",),
                    last_error=INTERRUPTED,
                )
            else:
                await end_run(self.db, self.emit, run_id, "cancelled", only_from=("cancelling",))

    async def _adopt(self, run_id: str) -> None:
        runs = tables.runs
        async with self.db.write() as conn:
            result = await conn.execute(
                sa.update(runs)
                .where(runs.c.id == run_id, runs.c.status == "queued")
                .values(worker_id=self.worker_id, lease_until=lease_deadline(self.lease_seconds))
            )
        if result.rowcount:
            logger.info("resuming queued run %s", run_id)
            await self.enqueue(run_id)
