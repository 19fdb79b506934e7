"""The worker: takes runs from the queue, executes them, acks them, recovers.

The queue holds each run for this worker, under a lease the queue keeps fresh while the
run is held. Recovery (in every worker) treats a run whose lease lapsed as abandoned by a
dead process: the queue takes a queued run over, and the worker ends the others: an
interrupted in-progress run fails with a clear ``last_error`` (its partial message is kept,
marked incomplete), a cancelling run is cancelled. The worker also expires runs still
queued, in progress or in ``requires_action`` at their ``expires_at``, as OpenAI does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Set

from assistd import clock
from assistd.events.base import CancelRequest, control_channel
from assistd.executor.run_loop import RunExecutor
from assistd.executor.state import Emitter, end_run
from assistd.queue.base import RunQueue
from assistd.store import runs
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
        self.emit: Emitter = executor.emit
        self.bus = executor.bus
        self.lease_seconds = lease_seconds
        self.slots = asyncio.Semaphore(concurrency)
        self.tasks: set[asyncio.Task[None]] = set()
        self._loops: list[asyncio.Task[None]] = []

    @property
    def owned(self) -> Set[str]:
        """The runs this worker holds: queued for it or executing."""
        return self.queue.held

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
            # A slot first: a busy worker leaves queued runs to other workers' free slots.
            await self.slots.acquire()
            try:
                run_id = await self.queue.get()
            except asyncio.CancelledError:
                self.slots.release()
                raise
            except Exception:
                self.slots.release()
                logger.exception("taking a run from the queue failed; retrying")
                await asyncio.sleep(1.0)
                continue
            task = asyncio.create_task(self._execute(run_id), name=f"assistd-run-{run_id}")
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _execute(self, run_id: str) -> None:
        # Cancelled (shutdown): neither acked nor released; the lease lapses and recovery
        # ends the run.
        try:
            finished = True
            try:
                await self.executor.execute(run_id, self.queue.created(run_id))
            except Exception:
                logger.exception("executing run %s crashed", run_id)
                finished = False
            try:
                await (self.queue.ack if finished else self.queue.release)(run_id)
            except Exception:
                logger.exception("could not hand run %s back to the queue", run_id)
        finally:
            self.slots.release()

    async def _maintain(self) -> None:
        interval = max(1.0, self.lease_seconds / 3)
        while True:
            await asyncio.sleep(interval)
            try:
                await self.queue.renew()
                await self.executor.save_streamed()
                await self.relay_missed_cancels()
                await self.sweep()
            except Exception:
                logger.exception("run maintenance failed; retrying")

    async def relay_missed_cancels(self) -> None:
        """Stop the held runs that are ``cancelling``: the cancel request is sent on the
        bus, which does not reach this process when the bus is in-process and the cancel
        came to another one (or when Redis lost it)."""
        held = list(self.queue.held)
        if not held:
            return
        async with self.db.read() as conn:
            cancelling = await runs.cancelling_among(conn, held)
        for run_id in cancelling:
            await self.executor.bus.publish(control_channel(run_id), CancelRequest())

    async def sweep(self, *, ignore_leases: bool = False) -> None:
        """Expire overdue runs; have the queue take over, or end, runs whose worker is
        gone."""
        async with self.db.read() as conn:
            overdue = await runs.overdue(conn, clock.now())
        for run_id in overdue:
            ended = await end_run(
                self.db, self.emit, run_id, "expired", only_from=("queued", "requires_action")
            )
            if ended is None:
                # In progress: the worker executing it (in any process) stops it and ends
                # it expired, as it does a cancelled run, keeping the text it streamed.
                await self.bus.publish(control_channel(run_id), CancelRequest())
        for run in await self.queue.recover(ignore_leases=ignore_leases):
            if run.status == "in_progress":
                logger.warning("run %s was interrupted; failing it", run.run_id)
                await end_run(
                    self.db,
                    self.emit,
                    run.run_id,
                    "failed",
                    only_from=("in_progress",),
                    last_error=INTERRUPTED,
                )
            else:
                await end_run(
                    self.db, self.emit, run.run_id, "cancelled", only_from=("cancelling",)
                )
