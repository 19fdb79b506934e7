"""/v1/vector_stores: create (with files), retrieve, modify, list, delete, expiry, isolation,
and vector stores in assistants' and threads' tool_resources."""

from __future__ import annotations

import time
from typing import Any

import httpx
import openai
import pytest
import sqlalchemy as sa

from assistd.store import tables
from tests.api.vs_support import stores, upload, wait_until
from tests.conftest import ClientFactory, LiveServer, assert_error

DAY = 86_400
STORE_FIELDS = {
    "id",
    "object",
    "created_at",
    "name",
    "usage_bytes",
    "file_counts",
    "status",
    "expires_after",
    "expires_at",
    "last_active_at",
    "metadata",
}
ZERO_COUNTS = {"in_progress": 0, "completed": 0, "failed": 0, "cancelled": 0, "total": 0}


def completed_store(client: openai.OpenAI, vector_store_id: str) -> Any:
    def probe() -> Any:
        store = stores(client).retrieve(vector_store_id)
        return store if store.status == "completed" else None

    return wait_until(probe)


# ---- create and retrieve ------------------------------------------------------------------


def test_create_and_retrieve(client: openai.OpenAI, http: httpx.Client) -> None:
    before = int(time.time())
    store = stores(client).create(
        name="Support FAQ",
        metadata={"team": "support"},
        expires_after={"anchor": "last_active_at", "days": 3},
    )
    assert store.id.startswith("vs_")
    assert store.object == "vector_store"
    assert store.name == "Support FAQ"
    assert store.metadata == {"team": "support"}
    assert store.status == "completed"
    assert store.usage_bytes == 0
    assert store.file_counts.model_dump() == ZERO_COUNTS
    assert before - 1 <= store.created_at <= int(time.time()) + 1
    assert store.last_active_at == store.created_at
    assert store.expires_after is not None
    assert store.expires_after.anchor == "last_active_at"
    assert store.expires_after.days == 3
    assert store.expires_at == store.last_active_at + 3 * DAY

    raw = http.get(f"/vector_stores/{store.id}")
    assert raw.status_code == 200
    assert set(raw.json()) == STORE_FIELDS
    assert stores(client).retrieve(store.id) == store


def test_unnamed_store_has_empty_name_and_no_expiry(http: httpx.Client) -> None:
    body = http.post("/vector_stores", json={}).json()
    assert body["name"] == ""
    assert body["metadata"] == {}
    assert body["expires_after"] is None
    assert body["expires_at"] is None
    assert body["file_counts"] == ZERO_COUNTS


def test_create_with_files_ingests_them_with_the_strategy(client: openai.OpenAI) -> None:
    first = upload(client, "a.txt", "The quick brown fox jumps over the lazy dog. " * 80)
    second = upload(client, "b.md", "# Notes\n\nPaid leave is 25 days a year.\n")
    store = stores(client).create(
        name="docs",
        file_ids=[first, second],
        chunking_strategy={
            "type": "static",
            "static": {"max_chunk_size_tokens": 300, "chunk_overlap_tokens": 100},
        },
    )
    assert store.file_counts.total == 2
    done = completed_store(client, store.id)
    assert done.file_counts.model_dump() == {**ZERO_COUNTS, "completed": 2, "total": 2}
    listed = stores(client).files.list(store.id)
    assert {f.id for f in listed} == {first, second}
    for item in listed:
        assert item.chunking_strategy is not None
        assert item.chunking_strategy.type == "static"
        assert item.chunking_strategy.static.max_chunk_size_tokens == 300
        assert item.chunking_strategy.static.chunk_overlap_tokens == 100
    assert done.usage_bytes == sum(item.usage_bytes for item in listed) > 0


def test_create_with_a_missing_file_is_400(client: openai.OpenAI, http: httpx.Client) -> None:
    good = upload(client, "a.txt", "fine")
    response = http.post("/vector_stores", json={"file_ids": [good, "file-missing"]})
    error = assert_error(response, 400, param="file_ids[1]", code="invalid_value")
    assert "file-missing" in error["message"]
    assert http.get("/vector_stores").json()["data"] == []


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"expires_after": {"anchor": "created_at", "days": 1}}, "expires_after.anchor"),
        ({"expires_after": {"anchor": "last_active_at", "days": 0}}, "expires_after.days"),
        ({"expires_after": {"anchor": "last_active_at", "days": 366}}, "expires_after.days"),
        ({"expires_after": {"anchor": "last_active_at"}}, "expires_after.days"),
        ({"chunking_strategy": {"type": "fancy"}}, "chunking_strategy.type"),
        (
            {
                "chunking_strategy": {
                    "type": "static",
                    "static": {"max_chunk_size_tokens": 200, "chunk_overlap_tokens": 150},
                }
            },
            "chunking_strategy.static.chunk_overlap_tokens",
        ),
        (
            {
                "chunking_strategy": {
                    "type": "static",
                    "static": {"max_chunk_size_tokens": 99, "chunk_overlap_tokens": 0},
                }
            },
            "chunking_strategy.static.max_chunk_size_tokens",
        ),
        ({"metadata": {f"k{i}": "v" for i in range(17)}}, "metadata"),
        ({"name": "n" * 257}, "name"),
        ({"file_ids": "file-1"}, "file_ids"),
    ],
)
def test_invalid_create_is_400(http: httpx.Client, body: dict[str, Any], param: str) -> None:
    assert_error(http.post("/vector_stores", json=body), 400, param=param)


# ---- modify -------------------------------------------------------------------------------


def test_modify_name_metadata_and_expiry(client: openai.OpenAI, http: httpx.Client) -> None:
    store = stores(client).create(name="old", metadata={"a": "1", "b": "2"})
    changed = stores(client).update(
        store.id,
        name="new",
        metadata={"c": "3"},
        expires_after={"anchor": "last_active_at", "days": 10},
    )
    assert changed.name == "new"
    assert changed.metadata == {"c": "3"}
    assert changed.expires_after is not None
    assert changed.expires_after.days == 10
    assert changed.expires_at == store.last_active_at + 10 * DAY
    assert stores(client).retrieve(store.id) == changed

    # An explicit null removes the policy; fields not given are left alone.
    cleared = http.post(f"/vector_stores/{store.id}", json={"expires_after": None}).json()
    assert cleared["expires_after"] is None
    assert cleared["expires_at"] is None
    assert cleared["name"] == "new"
    assert cleared["metadata"] == {"c": "3"}


def test_modify_missing_store_is_404(http: httpx.Client) -> None:
    response = http.post("/vector_stores/vs_missing", json={"name": "x"})
    error = assert_error(response, 404)
    assert error["message"] == "No vector store found with id 'vs_missing'."


# ---- list and delete ----------------------------------------------------------------------


def test_list_pages_in_creation_order(client: openai.OpenAI, http: httpx.Client) -> None:
    made = [stores(client).create(name=f"s{i}").id for i in range(5)]
    body = http.get("/vector_stores", params={"limit": 2, "order": "asc"}).json()
    assert [s["id"] for s in body["data"]] == made[:2]
    assert body["first_id"] == made[0]
    assert body["last_id"] == made[1]
    assert body["has_more"] is True
    after = http.get("/vector_stores", params={"limit": 2, "order": "asc", "after": made[1]})
    assert [s["id"] for s in after.json()["data"]] == made[2:4]
    before = http.get("/vector_stores", params={"limit": 2, "before": made[1]}).json()
    assert [s["id"] for s in before["data"]] == [made[3], made[2]]
    assert [s.id for s in stores(client).list(limit=2)] == made[::-1]
    assert_error(http.get("/vector_stores", params={"limit": 101}), 400, param="limit")


def test_list_reports_each_stores_counts(client: openai.OpenAI) -> None:
    file_id = upload(client, "a.txt", "counted text")
    with_file = stores(client).create(file_ids=[file_id]).id
    empty = stores(client).create().id
    completed_store(client, with_file)
    listed = {s.id: s for s in stores(client).list()}
    assert listed[with_file].file_counts.completed == 1
    assert listed[with_file].usage_bytes > 0
    assert listed[empty].file_counts.total == 0


def test_delete(client: openai.OpenAI, http: httpx.Client) -> None:
    file_id = upload(client, "a.txt", "soon gone")
    store = stores(client).create(file_ids=[file_id])
    deleted = stores(client).delete(store.id)
    assert deleted.id == store.id
    assert deleted.deleted is True
    assert deleted.object == "vector_store.deleted"
    error = assert_error(http.get(f"/vector_stores/{store.id}"), 404)
    assert error["message"] == f"No vector store found with id '{store.id}'."
    assert_error(http.delete(f"/vector_stores/{store.id}"), 404)
    assert_error(http.get(f"/vector_stores/{store.id}/files"), 404)
    # The file itself stays.
    assert client.files.retrieve(file_id).id == file_id


# ---- expiry -------------------------------------------------------------------------------


def test_a_store_past_its_expiry_is_expired(
    server: LiveServer, client: openai.OpenAI, http: httpx.Client
) -> None:
    store = stores(client).create(expires_after={"anchor": "last_active_at", "days": 1})
    past = int(time.time()) - 10

    async def expire() -> None:
        async with server.services.db.write() as conn:
            await conn.execute(
                sa.update(tables.vector_stores)
                .where(tables.vector_stores.c.id == store.id)
                .values(expires_at=past)
            )

    server.call(expire())
    assert stores(client).retrieve(store.id).status == "expired"
    assert [s["status"] for s in http.get("/vector_stores").json()["data"]] == ["expired"]
    # Adding files is activity, but it does not bring an expired store back.
    file_id = upload(client, "a.txt", "late")
    http.post(f"/vector_stores/{store.id}/files", json={"file_id": file_id})
    after = stores(client).retrieve(store.id)
    assert after.status == "expired"
    assert after.expires_at == past


def test_attaching_files_pushes_expiry_back(
    server: LiveServer, client: openai.OpenAI, http: httpx.Client
) -> None:
    store = stores(client).create(expires_after={"anchor": "last_active_at", "days": 2})
    earlier = store.last_active_at - 1000

    async def age() -> None:
        async with server.services.db.write() as conn:
            await conn.execute(
                sa.update(tables.vector_stores)
                .where(tables.vector_stores.c.id == store.id)
                .values(last_active_at=earlier, expires_at=earlier + 2 * DAY)
            )

    server.call(age())
    file_id = upload(client, "a.txt", "activity")
    http.post(f"/vector_stores/{store.id}/files", json={"file_id": file_id})
    touched = stores(client).retrieve(store.id)
    assert touched.last_active_at >= store.last_active_at
    assert touched.expires_at == touched.last_active_at + 2 * DAY


# ---- projects -----------------------------------------------------------------------------


def test_another_project_cannot_see_or_touch_the_store(
    client: openai.OpenAI, make_client: ClientFactory, server: LiveServer
) -> None:
    file_id = upload(client, "a.txt", "private")
    store = stores(client).create(name="mine", file_ids=[file_id])
    other = make_client()
    assert [s.id for s in stores(other).list()] == []
    for call in (
        lambda: stores(other).retrieve(store.id),
        lambda: stores(other).update(store.id, name="stolen"),
        lambda: stores(other).delete(store.id),
        lambda: stores(other).files.list(store.id),
        lambda: stores(other).files.retrieve(file_id, vector_store_id=store.id),
    ):
        with pytest.raises(openai.NotFoundError):
            call()
    # Nor attach its files to a store of its own.
    own = stores(other).create()
    with pytest.raises(openai.BadRequestError) as exc:
        stores(other).files.create(own.id, file_id=file_id)
    assert_error(exc.value.response, 400, param="file_id")
    assert stores(client).retrieve(store.id).name == "mine"


# ---- tool_resources -----------------------------------------------------------------------


def test_assistant_and_thread_accept_an_existing_store(client: openai.OpenAI) -> None:
    store = stores(client).create(name="kb")
    assistant = client.beta.assistants.create(
        model="gpt-4o",
        tools=[{"type": "file_search"}],
        tool_resources={"file_search": {"vector_store_ids": [store.id]}},
    )
    assert assistant.tool_resources is not None
    assert assistant.tool_resources.file_search is not None
    assert assistant.tool_resources.file_search.vector_store_ids == [store.id]
    thread = client.beta.threads.create(
        tool_resources={"file_search": {"vector_store_ids": [store.id]}}
    )
    assert thread.tool_resources is not None
    assert thread.tool_resources.file_search is not None
    assert thread.tool_resources.file_search.vector_store_ids == [store.id]
    updated = client.beta.assistants.update(
        assistant.id, tool_resources={"file_search": {"vector_store_ids": []}}
    )
    assert updated.tool_resources is not None
    assert updated.tool_resources.file_search is not None
    assert updated.tool_resources.file_search.vector_store_ids == []


def test_another_projects_store_is_400_in_tool_resources(
    client: openai.OpenAI, make_client: ClientFactory
) -> None:
    foreign = stores(make_client()).create().id
    with pytest.raises(openai.BadRequestError) as exc:
        client.beta.assistants.create(
            model="gpt-4o", tool_resources={"file_search": {"vector_store_ids": [foreign]}}
        )
    error = assert_error(
        exc.value.response, 400, param="tool_resources.file_search.vector_store_ids[0]"
    )
    assert foreign in error["message"]
    with pytest.raises(openai.BadRequestError):
        client.beta.threads.create(tool_resources={"file_search": {"vector_store_ids": [foreign]}})


def test_more_than_one_store_is_400(client: openai.OpenAI, http: httpx.Client) -> None:
    ids = [stores(client).create().id for _ in range(2)]
    response = http.post(
        "/assistants",
        json={"model": "gpt-4o", "tool_resources": {"file_search": {"vector_store_ids": ids}}},
    )
    assert_error(response, 400, param="tool_resources.file_search.vector_store_ids")


def test_thread_helper_creates_a_store_that_expires_after_a_week(
    client: openai.OpenAI,
) -> None:
    file_id = upload(client, "policy.txt", "Remote work is allowed two days a week.")
    thread = client.beta.threads.create(
        tool_resources={
            "file_search": {
                "vector_stores": [
                    {
                        "file_ids": [file_id],
                        "chunking_strategy": {"type": "auto"},
                        "metadata": {"from": "thread"},
                    }
                ]
            }
        }
    )
    assert thread.tool_resources is not None
    assert thread.tool_resources.file_search is not None
    (store_id,) = thread.tool_resources.file_search.vector_store_ids or []
    store = stores(client).retrieve(store_id)
    assert store.metadata == {"from": "thread"}
    assert store.expires_after is not None
    assert (store.expires_after.anchor, store.expires_after.days) == ("last_active_at", 7)
    assert store.expires_at == store.last_active_at + 7 * DAY
    done = completed_store(client, store_id)
    assert done.file_counts.completed == 1
    (item,) = stores(client).files.list(store_id)
    assert item.id == file_id
    assert client.beta.threads.retrieve(thread.id).tool_resources == thread.tool_resources


def test_assistant_helper_store_does_not_expire(client: openai.OpenAI) -> None:
    file_id = upload(client, "a.txt", "assistant knowledge")
    assistant = client.beta.assistants.create(
        model="gpt-4o",
        tool_resources={"file_search": {"vector_stores": [{"file_ids": [file_id]}]}},
    )
    assert assistant.tool_resources is not None
    assert assistant.tool_resources.file_search is not None
    (store_id,) = assistant.tool_resources.file_search.vector_store_ids or []
    store = stores(client).retrieve(store_id)
    assert store.expires_after is None
    assert store.expires_at is None
    assert completed_store(client, store_id).file_counts.completed == 1


def test_helper_with_a_missing_file_is_400_and_creates_nothing(
    client: openai.OpenAI, http: httpx.Client
) -> None:
    response = http.post(
        "/threads",
        json={
            "tool_resources": {"file_search": {"vector_stores": [{"file_ids": ["file-missing"]}]}}
        },
    )
    assert_error(response, 400, param="tool_resources.file_search.vector_stores[0].file_ids[0]")
    assert http.get("/vector_stores").json()["data"] == []
