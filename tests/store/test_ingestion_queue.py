"""The ingestion queue's statements on each database: claims, leases, and who may finish.

The API tests drive these through the worker; here each rule is pinned directly, so a
change to a condition (the generation, the holder, the lapse) fails by name. The database
is this module's own: a live test server's worker would claim files of a shared one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import pytest

from assistd.config import Settings
from assistd.store import ingestion_queue as queue
from assistd.store import vector_store_files, vector_stores
from assistd.store.database import Database
from assistd.store.records import VectorStoreFile
from tests.conftest import make_settings
from tests.store_support import attached_file, database_url

PROJECT = "p_queue"
LEASE = 60.0
Scenario = Callable[[Database, str], Coroutine[Any, Any, None]]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def backend(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Settings]:
    data_dir = tmp_path_factory.mktemp(f"queue-{request.param}")
    with database_url(request.param, data_dir) as url:
        yield make_settings(data_dir, database_url=url)


def run(backend: Settings, scenario: Scenario) -> None:
    """Run ``scenario`` with a fresh store, removed afterwards (the queue is shared)."""

    async def main() -> None:
        db = Database(backend.resolved_database_url)
        try:
            await db.migrate()
            store = vector_stores.new_store(
                PROJECT, name=None, description=None, metadata={}, expires_after=None, now=0
            )
            async with db.write() as conn:
                await vector_stores.create(conn, store)
            try:
                await scenario(db, store.id)
            finally:
                async with db.write() as conn:
                    await vector_stores.delete(conn, PROJECT, store.id)
        finally:
            await db.dispose()

    asyncio.run(main())


async def attach(db: Database, store_id: str, *file_ids: str) -> list[VectorStoreFile]:
    made = [attached_file(PROJECT, store_id, file_id) for file_id in file_ids]
    async with db.write() as conn:
        await vector_store_files.add_many(conn, made)
    return made


async def claim(db: Database, worker: str, limit: int, now: float) -> list[queue.Claim]:
    async with db.write() as conn:
        return await queue.claim_next(conn, worker, limit=limit, now=now, lease_until=now + LEASE)


async def read(db: Database, store_id: str, file_id: str) -> VectorStoreFile:
    async with db.read() as conn:
        found = await vector_store_files.get(conn, PROJECT, store_id, file_id)
    assert found is not None
    return found


def test_claims_take_the_oldest_attach_once(backend: Settings) -> None:
    async def scenario(db: Database, store: str) -> None:
        a, b, c = await attach(db, store, "file-a", "file-b", "file-c")
        now = time.time()
        first = await claim(db, "w1", 2, now)
        assert first == [((store, "file-a"), a.sort_key), ((store, "file-b"), b.sort_key)]
        assert await claim(db, "w2", 5, now) == [((store, "file-c"), c.sort_key)]
        assert await claim(db, "w3", 5, now) == []
        held = await read(db, store, "file-a")
        assert (held.worker_id, held.attempts) == ("w1", 1)
        assert held.lease_until == now + LEASE

    run(backend, scenario)


def test_a_lapsed_lease_is_taken_over_and_an_exhausted_file_fails(backend: Settings) -> None:
    async def scenario(db: Database, store: str) -> None:
        await attach(db, store, "file-a")
        now = time.time()
        assert len(await claim(db, "w1", 1, now - 2 * LEASE)) == 1  # its lease has lapsed
        assert len(await claim(db, "w2", 1, now)) == 1
        taken = await read(db, store, "file-a")
        assert (taken.worker_id, taken.attempts) == ("w2", 2)
        error = {"code": "server_error", "message": "gave up"}
        async with db.write() as conn:
            # Still leased: not failed yet, whatever its attempts.
            await queue.fail_exhausted(conn, now=now, max_attempts=2, error=error)
        assert (await read(db, store, "file-a")).status == "in_progress"
        async with db.write() as conn:
            await queue.fail_exhausted(conn, now=now + 2 * LEASE, max_attempts=2, error=error)
        failed = await read(db, store, "file-a")
        assert (failed.status, failed.last_error, failed.worker_id) == ("failed", error, None)

    run(backend, scenario)


def test_only_the_holder_of_this_attach_finishes_it(backend: Settings) -> None:
    async def scenario(db: Database, store: str) -> None:
        await attach(db, store, "file-a")
        [(key, old)] = await claim(db, "w1", 1, time.time())
        async with db.write() as conn:
            assert not await queue.finish(conn, key, old, "w2", parsed_text="x", usage_bytes=1)
            # Attached again (and taken by the same worker): the old claim's generation no
            # longer matches, so it cannot finish the new attach.
            await vector_store_files.remove_from_store(conn, store, ["file-a"])
        [again] = await attach(db, store, "file-a")
        [(key, generation)] = await claim(db, "w1", 1, time.time())
        assert generation == again.sort_key != old
        async with db.write() as conn:
            assert await queue.get_claimed(conn, key, old, "w1") is None
            assert not await queue.finish(conn, key, old, "w1", parsed_text="x", usage_bytes=1)
            await queue.fail(conn, key, old, "w1", {"code": "x", "message": "y"})
        assert (await read(db, store, "file-a")).status == "in_progress"
        async with db.write() as conn:
            assert await queue.get_claimed(conn, key, generation, "w2") is None
            claimed = await queue.get_claimed(conn, key, generation, "w1")
            assert claimed is not None
            assert claimed.file_id == "file-a"
            assert await queue.finish(
                conn, key, generation, "w1", parsed_text="héllo", usage_bytes=6
            )
        done = await read(db, store, "file-a")
        assert (done.status, done.usage_bytes, done.worker_id, done.lease_until) == (
            "completed",
            6,
            None,
            None,
        )
        async with db.read() as conn:
            found = await vector_store_files.get_with_text(conn, PROJECT, store, "file-a")
        assert found is not None
        assert found[1] == "héllo"

    run(backend, scenario)


def test_renewal_release_and_failure_need_the_lease(backend: Settings) -> None:
    async def scenario(db: Database, store: str) -> None:
        await attach(db, store, "file-a", "file-b")
        claims = await claim(db, "w1", 2, time.time())
        keys = [key for key, _ in claims]
        later = time.time() + 10 * LEASE
        async with db.write() as conn:
            assert await queue.renew_leases(conn, "w2", keys, later) == set()
            assert await queue.renew_leases(conn, "w1", keys, later) == set(claims)
        assert (await read(db, store, "file-a")).lease_until == later
        async with db.write() as conn:
            await queue.release(conn, "w1")
        released = await read(db, store, "file-a")
        # A clean stop undoes the attempt.
        assert (released.worker_id, released.lease_until, released.attempts) == (None, None, 0)
        (key, generation) = claims[0]
        async with db.write() as conn:
            await queue.fail(conn, key, generation, "w1", {"code": "x", "message": "y"})
        assert (await read(db, store, "file-a")).status == "in_progress"

    run(backend, scenario)


def test_start_up_frees_every_lease_but_keeps_the_attempts(backend: Settings) -> None:
    async def scenario(db: Database, store: str) -> None:
        await attach(db, store, "file-a")
        await claim(db, "w1", 1, time.time())
        async with db.write() as conn:
            await queue.free_all(conn)
        freed = await read(db, store, "file-a")
        assert (freed.worker_id, freed.lease_until, freed.attempts) == (None, None, 1)

    run(backend, scenario)
