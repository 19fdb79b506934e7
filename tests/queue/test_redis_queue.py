"""The Redis Streams run queue against the real Redis and real SQLite and PostgreSQL stores.

Each test has its own key prefix (its keys deleted afterwards) in a database shared by the
module, whose unfinished runs are ended first. A worker process is a ``RedisRunQueue`` with
its own worker id; a dead one is a queue that stops renewing, with a short lease.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from assistd import ids
from assistd.config import Settings
from assistd.queue.base import Abandoned, NewRun, RunQueue
from assistd.queue.factory import build_queue
from assistd.queue.inprocess import InProcessRunQueue
from assistd.queue.redis import RedisRunQueue
from assistd.store import runs
from assistd.store.database import Database
from tests.queue_support import lease_of, set_status, settle_all, stored_run
from tests.redis_support import redis_prefix, redis_url
from tests.store_support import migrated_url, run_on

LEASE = 30.0
SHORT = 1.0  # the lease of a worker that is going to die
PAST = 1.0
A, B, C = "wrk_a", "wrk_b", "wrk_c"
PATIENCE = 30.0  # how long a condition that must come true may take on a busy machine


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    redis_url()  # skip before making a database
    with migrated_url(request.param, tmp_path_factory.mktemp(f"rq-{request.param}")) as made:
        yield made


@pytest.fixture
def prefix() -> Iterator[str]:
    with redis_prefix() as made:
        yield made


class Harness:
    """Queues (worker processes) on one prefix, and a look at the prefix's keys."""

    def __init__(self, db: Database, prefix: str, redis_at: str) -> None:
        self.db = db
        self.prefix = prefix
        self.redis_at = redis_at
        self.raw = Redis.from_url(redis_at, decode_responses=True)
        self.queues: list[RedisRunQueue] = []

    def queue(self, worker_id: str, lease: float = LEASE) -> RedisRunQueue:
        made = RedisRunQueue.from_url(
            self.redis_at, self.db, worker_id=worker_id, lease_seconds=lease, prefix=self.prefix
        )
        self.queues.append(made)
        return made

    async def close(self) -> None:
        for queue in self.queues:
            await queue.close()
        await self.raw.aclose()

    async def entries(self) -> list[str]:
        """The run of every entry in the stream, oldest first (read or not)."""
        found: Any = await self.raw.xrange(f"{self.prefix}:runs")
        return [fields["run"] for _, fields in found]

    async def unread(self) -> list[str]:
        """The runs of the entries no consumer has read yet."""
        groups = await self.raw.xinfo_groups(f"{self.prefix}:runs")
        last = groups[0]["last-delivered-id"] if groups else "0-0"
        found: Any = await self.raw.xrange(f"{self.prefix}:runs", min=f"({last}")
        return [fields["run"] for _, fields in found]

    async def pending(self) -> dict[str, str]:
        """Read, unacked entries: entry id → consumer."""
        found = await self.raw.xpending_range(
            f"{self.prefix}:runs", f"{self.prefix}:workers", "-", "+", 100
        )
        return {str(p["message_id"]): str(p["consumer"]) for p in found}

    async def lose_everything(self) -> None:
        """What a Redis restart without persistence does to the queue."""
        await self.raw.delete(f"{self.prefix}:runs", f"{self.prefix}:runs:latest")


Scenario = Callable[[Harness], Awaitable[None]]


def scenario(url: str, prefix: str, body: Scenario, redis_at: str | None = None) -> None:
    async def main(db: Database) -> None:
        await settle_all(db)
        harness = Harness(db, prefix, redis_at or redis_url())
        try:
            await body(harness)
        finally:
            await harness.close()

    run_on(url, main)


async def next_run(queue: RunQueue) -> str:
    """The next run ``get`` hands out (one must be there)."""
    return await asyncio.wait_for(queue.get(), PATIENCE)


async def eventually(check: Callable[[], Awaitable[Any]], pause: float = 0.2) -> Any:
    """Poll ``check`` until it returns something truthy (and return that)."""
    deadline = time.monotonic() + PATIENCE
    while True:
        result = await check()
        if result:
            return result
        assert time.monotonic() < deadline, "the condition never came true"
        await asyncio.sleep(pause)


async def lapsed(db: Database, run_id: str) -> bool:
    until = (await lease_of(db, run_id))[1]
    return until is not None and until < time.time()


def fresh(lease_until: float | None, lease: float = LEASE) -> bool:
    return lease_until is not None and time.time() < lease_until <= time.time() + lease


# --- the plain path ------------------------------------------------------------------------


def test_the_factory_picks_redis_when_configured(url: str, prefix: str, tmp_path: Path) -> None:
    async def body(h: Harness) -> None:
        plain = Settings(data_dir=tmp_path)
        assert isinstance(build_queue(plain, h.db, worker_id=A), InProcessRunQueue)
        redis_settings = Settings(data_dir=tmp_path, redis_url=h.redis_at, redis_prefix=prefix)
        queue = build_queue(redis_settings, h.db, worker_id=A)
        try:
            assert isinstance(queue, RedisRunQueue)
            assert queue.stream == f"{prefix}:runs"
        finally:
            await queue.close()

    scenario(url, prefix, body)


def test_put_get_ack_in_fifo_order(url: str, prefix: str) -> None:
    async def body(h: Harness) -> None:
        api, worker = h.queue(A), h.queue(B)
        typed: RunQueue = worker  # mypy checks the protocol
        first, second = await stored_run(h.db), await stored_run(h.db)
        for run_id in (first, second):
            async with h.db.write() as conn:
                await api.reserve(conn, run_id)
            await api.put(run_id)
        # Put is not held by anyone in particular: any consumer may read it.
        assert api.held == set()
        assert typed.held == set()
        assert await h.unread() == [first, second]
        assert await next_run(worker) == first
        assert worker.held == {first}
        assert list((await h.pending()).values()) == [B]
        await worker.ack(first)
        assert worker.held == set()
        assert await next_run(worker) == second
        await worker.ack(second)
        # Acked entries are gone, and so is the record of each run's newest entry.
        assert await h.entries() == []
        assert await h.pending() == {}
        assert await h.raw.exists(f"{prefix}:runs:latest") == 0

    scenario(url, prefix, body)


async def put_and_taken_over(
    h: Harness, api: RedisRunQueue, worker: RedisRunQueue, run_id: str
) -> None:
    """``api`` puts ``run_id``, held under a long lease of its own: ``worker`` reads it and
    takes the lease over at its first renewal."""
    await api.put(run_id)
    assert await next_run(worker) == run_id
    await worker.renew()
    holder, until = await lease_of(h.db, run_id)
    assert holder == B
    assert fresh(until)


def test_reserve_leases_the_run_and_the_worker_takes_the_lease_over(url: str, prefix: str) -> None:
    async def body(h: Harness) -> None:
        api, worker = h.queue(A), h.queue(B)
        run_id = await stored_run(h.db)
        async with h.db.write() as conn:
            await api.reserve(conn, run_id)
        holder, until = await lease_of(h.db, run_id)
        assert holder == A
        assert fresh(until)
        # The lease from the reservation still has long to run: the first renewal takes it.
        await put_and_taken_over(h, api, worker, run_id)

        # Put without a lease of long enough (a run recovery re-added): taken at once.
        other = await stored_run(h.db, worker_id=A, lease_until=PAST)
        await api.put(other)
        assert await next_run(worker) == other
        holder, until = await lease_of(h.db, other)
        assert holder == B
        assert fresh(until)

    scenario(url, prefix, body)


def test_a_new_run_stored_with_lease_new_is_put_with_that_lease(url: str, prefix: str) -> None:
    async def body(h: Harness) -> None:
        api, worker = h.queue(A), h.queue(B)
        run_id = ids.new_id("run")
        lease = api.lease_new(run_id)
        assert lease.worker_id == A
        assert fresh(lease.until)
        await stored_run(h.db, worker_id=lease.worker_id, lease_until=lease.until, run_id=run_id)
        async with h.db.read() as conn:
            row = await runs.get(conn, run_id)
        assert row is not None
        # As after ``reserve``; the row put with it is not handed to the worker that
        # reads it: that worker may be in any process.
        await api.put(run_id, NewRun(row))
        assert await next_run(worker) == run_id
        assert (api.created(run_id), worker.created(run_id)) == (None, None)
        await worker.renew()
        holder, until = await lease_of(h.db, run_id)
        assert holder == B
        assert fresh(until)

    scenario(url, prefix, body)


def test_a_run_read_again_before_its_ack_stays_held(url: str, prefix: str) -> None:
    """Tool outputs can resume a run before the worker acked the execution that parked it
    in requires_action; that late ack must not drop the resumed run's hold."""

    async def body(h: Harness) -> None:
        queue = h.queue(A)
        run_id = await stored_run(h.db)
        await queue.put(run_id)
        assert await next_run(queue) == run_id
        await queue.put(run_id)  # resumed
        assert await next_run(queue) == run_id
        await queue.ack(run_id)  # the first execution ends
        assert queue.held == {run_id}
        assert len(await h.pending()) == 1
        await queue.ack(run_id)
        assert queue.held == set()
        assert await h.entries() == []

    scenario(url, prefix, body)


# --- leases and reclaiming ------------------------------------------------------------------


def test_renewals_keep_an_entry_from_being_reclaimed(url: str, prefix: str) -> None:
    async def body(h: Harness) -> None:
        holder, other = h.queue(A, lease=2.0), h.queue(B, lease=2.0)
        run_id = await stored_run(h.db)
        await holder.put(run_id)
        assert await next_run(holder) == run_id
        for _ in range(10):  # three leases' time
            await asyncio.sleep(0.6)
            await holder.renew()
            assert await other.recover() == []
            assert other.held == set()
        assert list((await h.pending()).values()) == [A]
        assert (await lease_of(h.db, run_id))[0] == A

    scenario(url, prefix, body)


def test_a_queued_run_of_a_dead_worker_is_reclaimed_by_another(url: str, prefix: str) -> None:
    async def body(h: Harness) -> None:
        dead, alive = h.queue(A, lease=SHORT), h.queue(B, lease=SHORT)
        run_id = await stored_run(h.db)
        await dead.put(run_id)
        assert await next_run(dead) == run_id  # and it dies before claiming the run

        async def reclaimed() -> bool:
            assert await alive.recover() == []
            return run_id in alive.held

        await eventually(reclaimed)
        assert await next_run(alive) == run_id
        assert list((await h.pending()).values()) == [B]
        holder, until = await lease_of(h.db, run_id)
        assert holder == B
        assert fresh(until, SHORT)
        # Not added again: the entry was still in Redis.
        assert await h.entries() == [run_id]
        await alive.ack(run_id)
        assert await h.entries() == []

    scenario(url, prefix, body)


def test_an_executing_run_of_a_dead_worker_is_abandoned(url: str, prefix: str) -> None:
    async def body(h: Harness) -> None:
        dead, alive = h.queue(A, lease=SHORT), h.queue(B, lease=SHORT)
        run_id = await stored_run(h.db)
        await dead.put(run_id)
        assert await next_run(dead) == run_id
        await set_status(h.db, run_id, "in_progress")  # claimed, then the process died

        found: list[Abandoned] = []

        async def abandoned() -> bool:
            found.extend(await alive.recover())
            return bool(found) and not await h.pending()

        await eventually(abandoned)
        assert found == [Abandoned(run_id, "in_progress")]
        # Taken over for ending it (another recovery leaves it), its entry dropped.
        assert (await lease_of(h.db, run_id))[0] == B
        assert alive.held == set()
        assert await h.entries() == []

    scenario(url, prefix, body)


def test_a_released_entry_is_reclaimed_after_the_lease(url: str, prefix: str) -> None:
    async def body(h: Harness) -> None:
        crashed, alive = h.queue(A, lease=SHORT), h.queue(B, lease=SHORT)
        run_id = await stored_run(h.db)
        await crashed.put(run_id)
        assert await next_run(crashed) == run_id
        await crashed.release(run_id)  # its execution crashed before claiming the run
        assert crashed.held == set()
        await crashed.renew()  # no longer renews the entry

        async def reclaimed() -> bool:
            await alive.recover()
            return run_id in alive.held

        await eventually(reclaimed)
        assert await next_run(alive) == run_id

    scenario(url, prefix, body)


def test_a_backlog_past_its_leases_is_not_added_again(url: str, prefix: str) -> None:
    """Runs waiting in the stream for a free worker longer than the lease stay as they are:
    Redis has them."""

    async def body(h: Harness) -> None:
        api, worker = h.queue(A, lease=SHORT), h.queue(B, lease=SHORT)
        run_id = await stored_run(h.db)
        async with h.db.write() as conn:
            await api.reserve(conn, run_id)
        await api.put(run_id)
        await eventually(lambda: lapsed(h.db, run_id))
        assert await worker.recover() == []
        assert await h.entries() == [run_id]
        assert (await lease_of(h.db, run_id))[0] == A
        assert await next_run(worker) == run_id
        assert (await lease_of(h.db, run_id))[0] == B

    scenario(url, prefix, body)


# --- Redis losing its data, and concurrent recoveries ----------------------------------------


def test_runs_redis_lost_are_recovered_from_the_database(url: str, prefix: str) -> None:
    async def body(h: Harness) -> None:
        api, worker = h.queue(A, lease=SHORT), h.queue(B, lease=SHORT)
        executing = await stored_run(h.db)
        await api.put(executing)
        assert await next_run(api) == executing
        await set_status(h.db, executing, "in_progress")
        waiting = await stored_run(h.db)
        async with h.db.write() as conn:
            await api.reserve(conn, waiting)
        await api.put(waiting)
        # Redis restarts without its data, and the executing worker dies with it.
        await h.lose_everything()

        found: list[Abandoned] = []

        async def recovered() -> bool:
            found.extend(await worker.recover())
            return bool(found) and await h.unread() == [waiting]

        await eventually(recovered)
        assert found == [Abandoned(executing, "in_progress")]
        assert (await lease_of(h.db, waiting))[0] == B
        assert await next_run(worker) == waiting
        # Once back in the stream, further recoveries leave it.
        assert await worker.recover() == []
        assert await h.entries() == [waiting]

    scenario(url, prefix, body)


def test_a_read_entry_no_longer_pending_is_added_again(url: str, prefix: str) -> None:
    """An entry read whose pending record Redis lost (its consumer deleted from the group)
    is never reclaimed: once the run's lease lapses, recovery adds the run again."""

    async def body(h: Harness) -> None:
        dead, alive = h.queue(A, lease=SHORT), h.queue(B, lease=SHORT)
        run_id = await stored_run(h.db)
        await dead.put(run_id)
        assert await next_run(dead) == run_id
        await h.raw.xgroup_delconsumer(f"{prefix}:runs", f"{prefix}:workers", A)

        async def unread() -> bool:
            await alive.recover()
            return await h.unread() == [run_id]

        await eventually(unread)
        assert await next_run(alive) == run_id
        await alive.ack(run_id)
        # The late ack of the lost read deletes its entry all the same.
        await dead.ack(run_id)
        assert await h.entries() == []

    scenario(url, prefix, body)


def test_two_recovering_workers_take_each_run_once(url: str, prefix: str) -> None:
    async def body(h: Harness) -> None:
        dead = h.queue(A, lease=SHORT)
        one, two = h.queue(B, lease=SHORT), h.queue(C, lease=SHORT)
        lost = await stored_run(h.db, worker_id=A, lease_until=PAST)  # not in Redis
        executing = await stored_run(h.db, "in_progress", worker_id=A, lease_until=PAST)
        pending = await stored_run(h.db)
        await dead.put(pending)
        assert await next_run(dead) == pending
        await eventually(lambda: lapsed(h.db, pending))
        # Past the lease for Redis too (its idle time counts from the read, before the
        # database lease was written).
        await asyncio.sleep(0.1)

        found = await asyncio.gather(one.recover(), two.recover())
        assert found[0] + found[1] == [Abandoned(executing, "in_progress")]
        assert sorted(await h.entries()) == sorted([lost, pending])
        assert (await lease_of(h.db, lost))[0] in (B, C)
        # The reclaimed entry went to one of them.
        assert [len(one.held), len(two.held)] in ([1, 0], [0, 1])
        assert (one.held | two.held) == {pending}

    scenario(url, prefix, body)


# --- Redis unreachable ------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_an_unreachable_redis_does_not_fail_the_worker(url: str, prefix: str) -> None:
    async def body(h: Harness) -> None:
        queue = h.queue(A)
        queued = await stored_run(h.db, worker_id=C, lease_until=PAST)
        executing = await stored_run(h.db, "in_progress", worker_id=C, lease_until=PAST)
        # Put logs: the run's database lease lets recovery add it later.
        await queue.put(queued)
        await queue.renew()
        # The database still answers for executing runs; queued ones wait for Redis.
        assert await queue.recover() == [Abandoned(executing, "in_progress")]
        assert await lease_of(h.db, queued) == (C, PAST)
        # Get keeps trying instead of failing the dispatch loop.
        getting = asyncio.create_task(queue.get())
        await asyncio.sleep(0.5)
        assert not getting.done()
        getting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await getting

    scenario(url, prefix, body, redis_at=f"redis://127.0.0.1:{free_port()}/0")


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="no redis-server installed")
def test_a_redis_restart_loses_no_run(url: str, prefix: str, tmp_path: Path) -> None:
    """A Redis of the test's own, restarted without persistence while a worker waits on it."""
    port = free_port()

    def start() -> subprocess.Popen[bytes]:
        server = subprocess.Popen(
            [
                "redis-server",
                "--bind",
                "127.0.0.1",
                "--port",
                str(port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(tmp_path),
            ],
            stdout=subprocess.DEVNULL,
        )
        for _ in range(200):
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    return server
            time.sleep(0.05)
        server.kill()
        raise RuntimeError("redis-server did not start")

    servers = [start()]

    async def body(h: Harness) -> None:
        api, worker = h.queue(A, lease=SHORT), h.queue(B, lease=SHORT)
        run_id = await stored_run(h.db)
        async with h.db.write() as conn:
            await api.reserve(conn, run_id)
        await api.put(run_id)
        servers[0].terminate()
        servers[0].wait()
        getting = asyncio.create_task(worker.get())
        await asyncio.sleep(0.3)  # a read or two fail meanwhile
        servers.append(start())

        async def recovered() -> bool:
            await worker.recover()
            return getting.done()

        await eventually(recovered)
        assert getting.result() == run_id

    try:
        scenario(url, prefix, body, redis_at=f"redis://127.0.0.1:{port}/0")
    finally:
        for server in servers:
            server.terminate()
            server.wait()
