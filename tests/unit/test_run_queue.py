"""The in-process run queue against a real SQLite store: holds, leases, recovery.

Each test builds its own database; a "dead worker" is simulated by writing another
worker's id and a lease in the past straight into the runs table.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from assistd import ids
from assistd.queue.base import Abandoned, NewRun, RunQueue
from assistd.queue.inprocess import InProcessRunQueue
from assistd.store import runs
from assistd.store.database import Database
from tests.queue_support import lease_of, set_status, stored_run
from tests.store_support import migrated_url, run_on

LEASE = 30.0
ME, DEAD, ALIVE = "wrk_me", "wrk_dead", "wrk_alive"
PAST = 1.0  # a lease that lapsed long ago

Scenario = Callable[[Database, InProcessRunQueue], Awaitable[None]]


def scenario(tmp_path: Path, body: Scenario) -> None:
    with migrated_url("sqlite", tmp_path, "queue.db") as url:
        run_on(url, lambda db: body(db, InProcessRunQueue(db, worker_id=ME, lease_seconds=LEASE)))


def fresh(lease_until: float | None) -> bool:
    """A lease this queue just wrote (or renewed)."""
    return lease_until is not None and time.time() + LEASE - 5 < lease_until <= time.time() + LEASE


async def taken(queue: InProcessRunQueue) -> list[str]:
    """Every run id waiting on the queue now, taken off it."""
    out: list[str] = []
    while True:
        try:
            out.append(await asyncio.wait_for(queue.get(), 0.05))
        except TimeoutError:
            return out


def test_the_in_process_queue_is_a_run_queue(tmp_path: Path) -> None:
    async def body(db: Database, queue: InProcessRunQueue) -> None:
        typed: RunQueue = queue  # mypy checks the protocol
        assert typed.held == set()

    scenario(tmp_path, body)


def test_reserve_leases_the_run_in_the_transaction_that_queues_it(tmp_path: Path) -> None:
    async def body(db: Database, queue: InProcessRunQueue) -> None:
        run_id = await stored_run(db)
        assert await lease_of(db, run_id) == (None, None)
        async with db.write() as conn:
            await queue.reserve(conn, run_id)
        worker, until = await lease_of(db, run_id)
        assert worker == ME
        assert fresh(until)
        # Reserved is not yet put: nothing to take, nothing held.
        assert queue.held == set()
        assert await taken(queue) == []

    scenario(tmp_path, body)


def test_a_new_run_is_stored_with_the_lease_of_lease_new(tmp_path: Path) -> None:
    async def body(db: Database, queue: InProcessRunQueue) -> None:
        run_id = ids.new_id("run")
        lease = queue.lease_new(run_id)
        assert lease.worker_id == ME
        assert fresh(lease.until)
        await stored_run(db, worker_id=lease.worker_id, lease_until=lease.until, run_id=run_id)
        # Held from its creation: recovery leaves it alone until it is put and taken.
        assert await queue.recover() == []
        assert await taken(queue) == []
        await queue.put(run_id)
        assert await taken(queue) == [run_id]
        assert queue.held == {run_id}

    scenario(tmp_path, body)


async def waiting_get(queue: InProcessRunQueue) -> asyncio.Task[str]:
    """A worker waiting in ``get`` (as one with a free slot does)."""
    getter = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    return getter


def test_a_new_run_a_waiting_worker_takes_is_handed_over_once(tmp_path: Path) -> None:
    async def body(db: Database, queue: InProcessRunQueue) -> None:
        handed, plain, dropped = [await stored_run(db) for _ in range(3)]
        async with db.read() as conn:
            rows = [await runs.load(conn, r) for r in (handed, dropped)]
        created = NewRun(rows[0])
        getter = await waiting_get(queue)
        await queue.put(handed, created)
        assert await getter == handed
        assert queue.created(handed) is created
        assert queue.created(handed) is None  # once: a later put of it is read again
        getter = await waiting_get(queue)
        await queue.put(plain)
        assert await getter == plain
        assert queue.created(plain) is None
        # Acked before its worker asked: nothing is kept for it.
        getter = await waiting_get(queue)
        await queue.put(dropped, NewRun(rows[1]))
        assert await getter == dropped
        await queue.ack(dropped)
        assert queue.created(dropped) is None

    scenario(tmp_path, body)


def test_a_new_run_that_waits_for_a_free_worker_is_not_handed_over(tmp_path: Path) -> None:
    async def body(db: Database, queue: InProcessRunQueue) -> None:
        first, second = [await stored_run(db) for _ in range(2)]
        async with db.read() as conn:
            rows = [await runs.load(conn, r) for r in (first, second)]
        # One worker waits: it takes the first run at once; the second waits for a slot,
        # and may be cancelled meanwhile, so its worker reads it.
        getter = await waiting_get(queue)
        await queue.put(first, NewRun(rows[0]))
        await queue.put(second, NewRun(rows[1]))
        assert await getter == first
        assert await taken(queue) == [second]
        assert queue.created(first) == NewRun(rows[0])
        assert queue.created(second) is None

    scenario(tmp_path, body)


def test_a_run_starts_before_its_creation_commits_only_with_a_free_worker(
    tmp_path: Path,
) -> None:
    async def body(db: Database, queue: InProcessRunQueue) -> None:
        first, second = [await stored_run(db) for _ in range(2)]
        async with db.read() as conn:
            rows = [await runs.load(conn, r) for r in (first, second)]
        committed = asyncio.get_running_loop().create_future()
        # No worker waits: the creation stores the run queued and puts it after its commit.
        assert not queue.start_now(first, NewRun(rows[0], committed=committed))
        assert queue.held == frozenset()
        getter = await waiting_get(queue)
        created = NewRun(rows[0], committed=committed)
        assert queue.start_now(first, created)
        assert first in queue.held
        assert await getter == first
        assert queue.created(first) is created
        # The worker is busy now: the next one waits, not started.
        assert not queue.start_now(second, NewRun(rows[1], committed=committed))
        await queue.ack(first)
        assert queue.held == frozenset()

    scenario(tmp_path, body)


def test_a_rolled_back_reservation_leaves_no_lease(tmp_path: Path) -> None:
    async def body(db: Database, queue: InProcessRunQueue) -> None:
        run_id = await stored_run(db)

        async def failing_request() -> None:
            async with db.write() as conn:
                await queue.reserve(conn, run_id)
                raise RuntimeError("the request failed after reserving")

        with pytest.raises(RuntimeError):
            await failing_request()
        assert await lease_of(db, run_id) == (None, None)

    scenario(tmp_path, body)


def test_reserve_leases_only_queued_runs(tmp_path: Path) -> None:
    async def body(db: Database, queue: InProcessRunQueue) -> None:
        run_id = await stored_run(db, "requires_action")
        async with db.write() as conn:
            await queue.reserve(conn, run_id)
        assert await lease_of(db, run_id) == (None, None)

    scenario(tmp_path, body)


def test_put_get_ack_in_fifo_order(tmp_path: Path) -> None:
    async def body(db: Database, queue: InProcessRunQueue) -> None:
        first, second = await stored_run(db), await stored_run(db)
        await queue.put(first)
        await queue.put(second)
        assert queue.held == {first, second}
        assert await queue.get() == first
        # Taken is still held: the worker executes it under the lease.
        assert queue.held == {first, second}
        await queue.ack(first)
        assert queue.held == {second}
        assert await queue.get() == second
        await queue.ack(second)
        assert queue.held == set()
        assert await taken(queue) == []

    scenario(tmp_path, body)


def test_a_run_put_again_before_its_ack_stays_held(tmp_path: Path) -> None:
    """Tool outputs can resume a run before the worker acked the execution that parked it
    in requires_action; that late ack must not drop the resumed run's hold."""

    async def body(db: Database, queue: InProcessRunQueue) -> None:
        run_id = await stored_run(db)
        await queue.put(run_id)
        assert await queue.get() == run_id
        await queue.put(run_id)  # resumed
        await queue.ack(run_id)  # the first execution ends
        assert queue.held == {run_id}
        assert await queue.get() == run_id
        await queue.ack(run_id)
        assert queue.held == set()

    scenario(tmp_path, body)


def test_release_stops_holding_and_leaves_the_lease(tmp_path: Path) -> None:
    async def body(db: Database, queue: InProcessRunQueue) -> None:
        run_id = await stored_run(db)
        async with db.write() as conn:
            await queue.reserve(conn, run_id)
        await queue.put(run_id)
        assert await queue.get() == run_id
        before = await lease_of(db, run_id)
        await queue.release(run_id)
        assert queue.held == set()
        # Not cleared: it lapses, and then recovery takes the run.
        assert await lease_of(db, run_id) == before

    scenario(tmp_path, body)


def test_renew_extends_the_leases_of_held_queued_and_executing_runs(tmp_path: Path) -> None:
    async def body(db: Database, queue: InProcessRunQueue) -> None:
        queued = await stored_run(db, worker_id=ME, lease_until=PAST)
        executing = await stored_run(db, "in_progress", worker_id=ME, lease_until=PAST)
        waiting = await stored_run(db, "requires_action", worker_id=ME, lease_until=PAST)
        cancelling = await stored_run(db, "cancelling", worker_id=ME, lease_until=PAST)
        not_held = await stored_run(db, worker_id=DEAD, lease_until=PAST)
        for run_id in (queued, executing, waiting, cancelling):
            await queue.put(run_id)
        await queue.renew()
        for run_id in (queued, executing):
            worker, until = await lease_of(db, run_id)
            assert worker == ME
            assert fresh(until)
        assert await lease_of(db, waiting) == (ME, PAST)
        assert await lease_of(db, cancelling) == (ME, PAST)
        assert await lease_of(db, not_held) == (DEAD, PAST)

    scenario(tmp_path, body)


def test_renew_with_nothing_held_writes_nothing(tmp_path: Path) -> None:
    async def body(db: Database, queue: InProcessRunQueue) -> None:
        run_id = await stored_run(db, worker_id=ME, lease_until=PAST)
        await queue.renew()
        assert await lease_of(db, run_id) == (ME, PAST)

    scenario(tmp_path, body)


def test_acked_runs_are_no_longer_renewed(tmp_path: Path) -> None:
    async def body(db: Database, queue: InProcessRunQueue) -> None:
        run_id = await stored_run(db, "in_progress", worker_id=ME, lease_until=PAST)
        await queue.put(run_id)
        await queue.get()
        await queue.ack(run_id)
        await queue.renew()
        assert await lease_of(db, run_id) == (ME, PAST)

    scenario(tmp_path, body)


def test_recover_takes_over_lapsed_runs(tmp_path: Path) -> None:
    async def body(db: Database, queue: InProcessRunQueue) -> None:
        queued = await stored_run(db, worker_id=DEAD, lease_until=PAST)
        never_leased = await stored_run(db)
        executing = await stored_run(db, "in_progress", worker_id=DEAD, lease_until=PAST)
        cancelling = await stored_run(db, "cancelling", worker_id=DEAD, lease_until=PAST)
        waiting = await stored_run(db, "requires_action", worker_id=DEAD, lease_until=PAST)
        done = await stored_run(db, "completed", worker_id=DEAD, lease_until=PAST)
        alive_lease = time.time() + 60
        alive = await stored_run(db, worker_id=ALIVE, lease_until=alive_lease)

        abandoned = await queue.recover()

        # Queued runs are now this queue's: leased, held, and on the queue.
        assert set(await taken(queue)) == {queued, never_leased}
        assert queue.held == {queued, never_leased}
        for run_id in (queued, never_leased):
            worker, until = await lease_of(db, run_id)
            assert worker == ME
            assert fresh(until)
        # The others are for the worker to end; their leases are left as they were.
        assert sorted(abandoned, key=lambda a: a.run_id) == sorted(
            [Abandoned(executing, "in_progress"), Abandoned(cancelling, "cancelling")],
            key=lambda a: a.run_id,
        )
        assert await lease_of(db, executing) == (DEAD, PAST)
        # Runs nobody needs to hold, and runs a live worker holds, are left alone.
        for run_id in (waiting, done):
            assert await lease_of(db, run_id) == (DEAD, PAST)
        assert await lease_of(db, alive) == (ALIVE, alive_lease)

    scenario(tmp_path, body)


def test_recover_leaves_the_runs_this_queue_holds(tmp_path: Path) -> None:
    """Held runs are this process's own, even with a lapsed lease (a stalled renewal)."""

    async def body(db: Database, queue: InProcessRunQueue) -> None:
        queued = await stored_run(db, worker_id=ME, lease_until=PAST)
        executing = await stored_run(db, "in_progress", worker_id=ME, lease_until=PAST)
        await queue.put(queued)
        await queue.put(executing)
        assert await taken(queue) == [queued, executing]
        assert await queue.recover() == []
        assert await queue.recover(ignore_leases=True) == []
        assert await taken(queue) == []
        assert await lease_of(db, queued) == (ME, PAST)

    scenario(tmp_path, body)


def test_recover_ignoring_leases_takes_every_unfinished_run(tmp_path: Path) -> None:
    """At start-up on SQLite (one process) whatever is unfinished was abandoned."""

    async def body(db: Database, queue: InProcessRunQueue) -> None:
        later = time.time() + 60
        queued = await stored_run(db, worker_id=ALIVE, lease_until=later)
        executing = await stored_run(db, "in_progress", worker_id=ALIVE, lease_until=later)
        assert await queue.recover() == []
        abandoned = await queue.recover(ignore_leases=True)
        assert abandoned == [Abandoned(executing, "in_progress")]
        assert await taken(queue) == [queued]
        assert (await lease_of(db, queued))[0] == ME

    scenario(tmp_path, body)


def test_only_one_queue_takes_over_a_lapsed_run(tmp_path: Path) -> None:
    async def body(db: Database, queue: InProcessRunQueue) -> None:
        other = InProcessRunQueue(db, worker_id=ALIVE, lease_seconds=LEASE)
        run_id = await stored_run(db, worker_id=DEAD, lease_until=PAST)
        await queue.recover()
        await other.recover()
        assert await taken(queue) == [run_id]
        assert await taken(other) == []
        assert other.held == set()
        assert (await lease_of(db, run_id))[0] == ME

    scenario(tmp_path, body)


def test_of_two_queues_recovering_at_once_one_takes_over_a_lapsed_run(tmp_path: Path) -> None:
    """Both read the run as lapsed; the lease write is a compare-and-set on it."""

    async def body(db: Database, queue: InProcessRunQueue) -> None:
        other = InProcessRunQueue(db, worker_id=ALIVE, lease_seconds=LEASE)
        run_id = await stored_run(db, worker_id=DEAD, lease_until=PAST)
        await asyncio.gather(queue.recover(), other.recover())
        assert len(await taken(queue) + await taken(other)) == 1
        assert len(queue.held) + len(other.held) == 1
        holder = (await lease_of(db, run_id))[0]
        assert holder in (ME, ALIVE)
        # A recovery that read the run before that lease was written loses its write.
        async with db.write() as conn:
            assert not await runs.take_over_lapsed(
                conn, run_id, "queued", worker_id=DEAD, until=PAST, now=time.time()
            )
        assert (await lease_of(db, run_id))[0] == holder

    scenario(tmp_path, body)


def test_a_run_that_left_the_queue_is_not_taken_over(tmp_path: Path) -> None:
    """Adoption is a compare-and-set on ``queued``: a run cancelled (or claimed) between
    recovery's read and its lease write stays with whoever changed it."""

    async def body(db: Database, queue: InProcessRunQueue) -> None:
        run_id = await stored_run(db, worker_id=DEAD, lease_until=PAST)
        async with db.write() as conn:
            assert await runs.lease_queued(conn, run_id, worker_id=ME, until=time.time() + 1)
        await set_status(db, run_id, "cancelled")
        async with db.write() as conn:
            assert not await runs.lease_queued(conn, run_id, worker_id=ALIVE, until=PAST)
        assert (await lease_of(db, run_id))[0] == ME

    scenario(tmp_path, body)


def test_a_lapsed_lease_is_taken_over_once_renewals_stop(tmp_path: Path) -> None:
    """End to end with real time: a short lease kept by renewals, then left to lapse."""

    async def body(db: Database, queue: InProcessRunQueue) -> None:
        short = InProcessRunQueue(db, worker_id=DEAD, lease_seconds=1.0)
        run_id = await stored_run(db)
        async with db.write() as conn:
            await short.reserve(conn, run_id)
        await short.put(run_id)
        for _ in range(3):
            await asyncio.sleep(0.3)
            await short.renew()
            assert await queue.recover() == []
        assert await taken(queue) == []
        await asyncio.sleep(1.2)  # the holder died: no more renewals
        await queue.recover()
        assert await taken(queue) == [run_id]
        assert (await lease_of(db, run_id))[0] == ME

    scenario(tmp_path, body)
