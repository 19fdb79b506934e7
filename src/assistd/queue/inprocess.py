"""In-process run queue: an asyncio queue, with leases in the runs table.

A run this process queues is leased to it in the same transaction (``lease_new``,
``reserve``), then put on the asyncio queue once committed; the lease is renewed while the
run is held, in one write for all of them. Nothing else survives the process: after a
restart (or in another process) ``recover`` finds the runs whose lease lapsed, through the
store.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Set

from assistd.queue.base import Abandoned, Lease, NewRun
from assistd.store import runs
from assistd.store.database import Connection, Database

logger = logging.getLogger("assistd.queue")


class InProcessRunQueue:
    def __init__(self, db: Database, *, worker_id: str, lease_seconds: float) -> None:
        self.db = db
        self.worker_id = worker_id
        self.lease_seconds = lease_seconds
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        # Puts not yet acked, per run: a run resumed with tool outputs can be put again
        # before the worker acked the execution that parked it, and must stay held.
        self._held: Counter[str] = Counter()
        # Runs put with their stored row, until the worker takes it (or the run is acked).
        self._created: dict[str, NewRun] = {}
        self._waiting = 0  # workers waiting in ``get`` (each with a free slot)

    async def close(self) -> None:
        pass

    @property
    def held(self) -> Set[str]:
        return frozenset(self._held)

    def _deadline(self) -> float:
        return time.time() + self.lease_seconds

    def lease_new(self, run_id: str) -> Lease:
        return Lease(self.worker_id, self._deadline())

    async def reserve(self, conn: Connection, run_id: str) -> None:
        await runs.lease_queued(conn, run_id, worker_id=self.worker_id, until=self._deadline())

    async def put(self, run_id: str, created: NewRun | None = None) -> None:
        # Only for a run a worker takes at once: one that waits for a free slot may be
        # cancelled or expire meanwhile, which its worker must see before it sends
        # anything upstream (a request costs tokens), so it claims that run first.
        if created is None or not self.start_now(run_id, created):
            self._enqueue(run_id)

    def start_now(self, run_id: str, created: NewRun) -> bool:
        if self._waiting <= self._queue.qsize():
            return False
        self._created[run_id] = created
        self._enqueue(run_id)
        return True

    def _enqueue(self, run_id: str) -> None:
        self._held[run_id] += 1
        self._queue.put_nowait(run_id)

    def created(self, run_id: str) -> NewRun | None:
        return self._created.pop(run_id, None)

    async def get(self) -> str:
        self._waiting += 1
        try:
            return await self._queue.get()
        finally:
            self._waiting -= 1

    async def ack(self, run_id: str) -> None:
        self._drop(run_id)

    async def release(self, run_id: str) -> None:
        # The lease is in the store and simply no longer renewed.
        self._drop(run_id)

    def _drop(self, run_id: str) -> None:
        self._held[run_id] -= 1
        if self._held[run_id] <= 0:
            del self._held[run_id]
            self._created.pop(run_id, None)

    async def renew(self) -> None:
        if not self._held:
            return
        async with self.db.write() as conn:
            await runs.renew_leases(
                conn, list(self._held), worker_id=self.worker_id, until=self._deadline()
            )

    async def recover(self, *, ignore_leases: bool = False) -> list[Abandoned]:
        now = None if ignore_leases else time.time()
        async with self.db.read() as conn:
            stale = await runs.with_lapsed_lease(conn, now=now)
        abandoned: list[Abandoned] = []
        for run in stale:
            if run.id in self._held:
                continue
            if run.status == "queued":
                await self._adopt(run.id, now)
            else:
                abandoned.append(Abandoned(run.id, run.status))
        return abandoned

    async def _adopt(self, run_id: str, now: float | None) -> None:
        # A compare-and-set on the lapsed lease: of several processes recovering at once,
        # one takes the run.
        async with self.db.write() as conn:
            leased = await runs.take_over_lapsed(
                conn, run_id, "queued", worker_id=self.worker_id, until=self._deadline(), now=now
            )
        if leased:
            logger.info("resuming queued run %s", run_id)
            await self.put(run_id)
