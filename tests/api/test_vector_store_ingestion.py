"""Background ingestion under control: a held or failing embedder and a recording chunk
index on servers of their own, batch cancellation, deletion mid-ingestion, and ingestion
that survives restarts and crashes on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import sqlalchemy as sa

from assistd.config import Settings
from assistd.store import tables
from assistd.store.database import Database
from tests.api.vs_support import (
    LONG_TEXT,
    GatedEmbedder,
    RecordingChunkIndex,
    content_text,
    finished,
    registry_of,
    stores,
    upload,
    wait_until,
)
from tests.conftest import LiveServer, _postgres_database, assert_error, make_settings, raw_client

# ---- ingestion under control: a held embedder, a recording index --------------------------


@dataclass
class Rig:
    server: LiveServer
    embedder: GatedEmbedder
    index: RecordingChunkIndex
    client: openai.OpenAI
    http: httpx.Client


def start_rig(settings: Settings, embedder: GatedEmbedder) -> Rig:
    index = RecordingChunkIndex()
    server = LiveServer(settings, embedders=registry_of(embedder), chunk_index=index).start()
    key = server.new_key("proj_" + secrets.token_hex(4))
    client = openai.OpenAI(
        base_url=server.base_url, api_key=key, max_retries=0, _strict_response_validation=True
    )
    return Rig(server, embedder, index, client, raw_client(server, key))


def stop_rig(rig: Rig) -> None:
    rig.http.close()
    rig.client.close()
    rig.server.stop()
    rig.embedder.gate.set()  # after the stop: held work must not finish on the way out


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    """A server of its own whose embedder starts closed."""
    made = start_rig(make_settings(tmp_path), GatedEmbedder(open_gate=False))
    try:
        yield made
    finally:
        stop_rig(made)


def test_chunks_are_indexed_and_removed_with_the_file(rig: Rig) -> None:
    rig.embedder.gate.set()
    store = stores(rig.client).create()
    item = stores(rig.client).files.upload_and_poll(
        vector_store_id=store.id, file=("long.txt", LONG_TEXT.encode())
    )
    assert item.status == "completed"
    chunks = rig.index.chunks[(store.id, item.id)]
    assert len(chunks) > 1
    assert [c.seq for c in chunks] == list(range(len(chunks)))
    assert all(0 < c.token_count <= 800 for c in chunks)
    assert rig.index.vectors[(store.id, item.id)].shape == (len(chunks), GatedEmbedder.DIMENSIONS)

    stores(rig.client).files.delete(item.id, vector_store_id=store.id)
    assert rig.index.files_of(store.id) == set()

    again = stores(rig.client).files.create_and_poll(item.id, vector_store_id=store.id)
    assert again.status == "completed"
    assert rig.index.files_of(store.id) == {item.id}
    rig.client.files.delete(item.id)
    assert rig.index.files_of(store.id) == set()

    other = stores(rig.client).files.upload_and_poll(
        vector_store_id=store.id, file=("x.txt", b"more")
    )
    assert rig.index.files_of(store.id) == {other.id}
    stores(rig.client).delete(store.id)
    assert rig.index.chunks == {}


def test_poll_hint_while_in_progress(rig: Rig) -> None:
    store = stores(rig.client).create()
    file_id = upload(rig.client, "a.txt", "held")
    rig.http.post(f"/vector_stores/{store.id}/files", json={"file_id": file_id})
    response = rig.http.get(f"/vector_stores/{store.id}/files/{file_id}")
    assert response.json()["status"] == "in_progress"
    assert response.headers["openai-poll-after-ms"] == "20"
    assert content_text(rig.http, store.id, file_id) == ""
    assert stores(rig.client).retrieve(store.id).status == "in_progress"
    rig.embedder.gate.set()
    assert finished(rig.client, store.id, file_id).status == "completed"


def test_cancel_a_batch(rig: Rig) -> None:
    store = stores(rig.client).create()
    file_ids = [upload(rig.client, f"{i}.txt", f"text {i}") for i in range(3)]
    batch = stores(rig.client).file_batches.create(vector_store_id=store.id, file_ids=file_ids)
    assert batch.status == "in_progress"
    assert batch.file_counts.in_progress == 3
    wait_until(rig.embedder.waiting.is_set)  # the worker holds at least one of them

    cancelled = stores(rig.client).file_batches.cancel(batch.id, vector_store_id=store.id)
    assert cancelled.status == "cancelled"
    assert cancelled.file_counts.model_dump() == {
        "in_progress": 0,
        "completed": 0,
        "failed": 0,
        "cancelled": 3,
        "total": 3,
    }
    statuses = {
        f.id: f.status
        for f in stores(rig.client).file_batches.list_files(batch.id, vector_store_id=store.id)
    }
    assert statuses == dict.fromkeys(file_ids, "cancelled")
    again = rig.http.post(f"/vector_stores/{store.id}/file_batches/{batch.id}/cancel")
    assert assert_error(again, 400)["message"] == (
        "Cannot cancel vector store file batch with status 'cancelled'."
    )

    # Work that was under way when the batch was cancelled must not bring files back.
    rig.embedder.gate.set()
    time.sleep(0.5)
    for file_id in file_ids:
        item = stores(rig.client).files.retrieve(file_id, vector_store_id=store.id)
        assert item.status == "cancelled"
    assert rig.index.chunks == {}
    summary = stores(rig.client).retrieve(store.id)
    assert summary.status == "completed"
    assert summary.file_counts.cancelled == 3


def test_a_file_deleted_mid_ingestion_stays_deleted(rig: Rig) -> None:
    store = stores(rig.client).create()
    file_id = upload(rig.client, "a.txt", "held then deleted")
    rig.http.post(f"/vector_stores/{store.id}/files", json={"file_id": file_id})
    wait_until(rig.embedder.waiting.is_set)
    stores(rig.client).files.delete(file_id, vector_store_id=store.id)
    rig.embedder.gate.set()
    time.sleep(0.5)
    assert_error(rig.http.get(f"/vector_stores/{store.id}/files/{file_id}"), 404)
    assert rig.index.chunks == {}
    assert stores(rig.client).retrieve(store.id).file_counts.total == 0


def test_an_embedder_failure_fails_the_file(tmp_path: Path) -> None:
    rig = start_rig(make_settings(tmp_path), GatedEmbedder(fail="the embedder is down"))
    try:
        store = stores(rig.client).create()
        item = stores(rig.client).files.upload_and_poll(
            vector_store_id=store.id, file=("a.txt", b"some text")
        )
        assert item.status == "failed"
        assert item.last_error is not None
        assert item.last_error.code == "server_error"
        assert "the embedder is down" in item.last_error.message
        assert rig.index.chunks == {}
    finally:
        stop_rig(rig)


# ---- restarts -----------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    """Settings on a store of the test's own, so two servers can take turns on it."""
    if request.param == "sqlite":
        yield make_settings(tmp_path)
        return
    databases = _postgres_database()
    url = next(databases)
    try:
        yield make_settings(tmp_path, database_url=url)
    finally:
        databases.close()


def test_ingestion_survives_a_restart(fresh_settings: Settings) -> None:
    first = start_rig(fresh_settings, GatedEmbedder(open_gate=False))
    try:
        store = stores(first.client).create()
        file_id = upload(first.client, "a.txt", LONG_TEXT)
        stores(first.client).files.create(vector_store_id=store.id, file_id=file_id)
        wait_until(first.embedder.waiting.is_set)
        api_key = first.client.api_key
    finally:
        stop_rig(first)  # the embedder is still held: the file is mid-ingestion

    second = start_rig(fresh_settings, GatedEmbedder())
    try:
        client = openai.OpenAI(base_url=second.server.base_url, api_key=api_key, max_retries=0)
        with client:
            item = finished(client, store.id, file_id)
            assert item.status == "completed"
            assert stores(client).retrieve(store.id).file_counts.completed == 1
        assert second.index.files_of(store.id) == {file_id}
    finally:
        stop_rig(second)


def leave_as_a_crash_would(settings: Settings, file_id: str, **values: Any) -> None:
    """Set a file's ingestion columns directly, with no server running."""

    async def update() -> None:
        db = Database(settings.resolved_database_url)
        try:
            async with db.write() as conn:
                await conn.execute(
                    sa.update(tables.vector_store_files)
                    .where(tables.vector_store_files.c.file_id == file_id)
                    .values(**values)
                )
        finally:
            await db.dispose()

    asyncio.run(update())


def held_file(settings: Settings) -> tuple[str, str, str]:
    """(api key, store, file): a file a server was ingesting when it stopped."""
    first = start_rig(settings, GatedEmbedder(open_gate=False))
    try:
        store = stores(first.client).create()
        file_id = upload(first.client, "a.txt", "orphaned by a crash")
        stores(first.client).files.create(vector_store_id=store.id, file_id=file_id)
        wait_until(first.embedder.waiting.is_set)
        return first.client.api_key, store.id, file_id
    finally:
        stop_rig(first)


def test_a_file_a_dead_worker_held_is_taken_over(fresh_settings: Settings) -> None:
    """A crash leaves the lease in place: SQLite (one process) takes every unfinished file
    at start-up whatever its lease; PostgreSQL takes it once the lease has lapsed."""
    api_key, store_id, file_id = held_file(fresh_settings)
    sqlite = fresh_settings.resolved_database_url.startswith("sqlite")
    lease = time.time() + 3600 if sqlite else time.time() - 1
    leave_as_a_crash_would(
        fresh_settings, file_id, worker_id="wrk_dead", lease_until=lease, attempts=1
    )
    second = start_rig(fresh_settings, GatedEmbedder())
    try:
        client = openai.OpenAI(base_url=second.server.base_url, api_key=api_key, max_retries=0)
        with client:
            assert finished(client, store_id, file_id).status == "completed"
    finally:
        stop_rig(second)


def test_a_file_that_keeps_killing_its_worker_fails(fresh_settings: Settings) -> None:
    api_key, store_id, file_id = held_file(fresh_settings)
    leave_as_a_crash_would(
        fresh_settings, file_id, worker_id="wrk_dead", lease_until=time.time() - 1, attempts=3
    )
    second = start_rig(fresh_settings, GatedEmbedder())
    try:
        client = openai.OpenAI(base_url=second.server.base_url, api_key=api_key, max_retries=0)
        with client:
            item = finished(client, store_id, file_id)
        assert item.status == "failed"
        assert item.last_error is not None
        assert item.last_error.code == "server_error"
        assert "3 times" in item.last_error.message
        assert second.embedder.calls == 0
    finally:
        stop_rig(second)
