"""/v1/vector_stores/{id}/files and /file_batches: attach, ingest in the background (real
documents, real parsers), fail one file at a time, attributes, lists, removal, batches.
Cancellation, restarts and the chunk index are in test_vector_store_ingestion.py."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest

from tests.api.vs_support import LONG_TEXT, content_text, finished, stores, upload
from tests.conftest import ClientFactory, LiveServer, assert_error, raw_client
from tests.unit.test_parsers import make_docx, make_pdf

FILE_FIELDS = {
    "id",
    "object",
    "usage_bytes",
    "created_at",
    "vector_store_id",
    "status",
    "last_error",
    "chunking_strategy",
    "attributes",
}
AUTO = {"type": "static", "static": {"max_chunk_size_tokens": 800, "chunk_overlap_tokens": 400}}


# ---- attach and ingest --------------------------------------------------------------------


def test_upload_and_poll_a_text_file(client: openai.OpenAI, http: httpx.Client) -> None:
    store = stores(client).create(name="kb")
    item = stores(client).files.upload_and_poll(
        vector_store_id=store.id, file=("leave.txt", LONG_TEXT.encode())
    )
    assert item.id.startswith("file-")
    assert item.object == "vector_store.file"
    assert item.vector_store_id == store.id
    assert item.status == "completed"
    assert item.last_error is None
    text = content_text(http, store.id, item.id)
    assert "Sentence 399 about the annual leave policy." in text
    # usage_bytes is the size of the parsed text the store keeps.
    assert item.usage_bytes == len(text.encode())
    raw = http.get(f"/vector_stores/{store.id}/files/{item.id}").json()
    assert set(raw) == FILE_FIELDS
    assert raw["chunking_strategy"] == AUTO
    assert raw["attributes"] == {}
    after = stores(client).retrieve(store.id)
    assert after.status == "completed"
    assert after.usage_bytes == item.usage_bytes
    assert after.file_counts.completed == after.file_counts.total == 1


def test_create_answers_in_progress_with_a_poll_hint(
    client: openai.OpenAI, http: httpx.Client
) -> None:
    store = stores(client).create()
    file_id = upload(client, "a.txt", LONG_TEXT)
    created = http.post(f"/vector_stores/{store.id}/files", json={"file_id": file_id}).json()
    assert created["status"] == "in_progress"
    assert created["usage_bytes"] == 0
    assert created["last_error"] is None
    finished(client, store.id, file_id)
    response = http.get(f"/vector_stores/{store.id}/files/{file_id}")
    assert "openai-poll-after-ms" not in response.headers


@pytest.mark.parametrize(
    ("name", "data", "expected"),
    [
        ("notes.md", b"# Heading\n\nMarkdown **body** text.\n", "Markdown **body** text."),
        (
            "page.html",
            b"<html><head><script>var x = 1;</script></head>"
            b"<body><h1>Title</h1><p>Visible paragraph.</p></body></html>",
            "Visible paragraph.",
        ),
        ("report.pdf", make_pdf(["First page text", "Second page text"]), "Second page text"),
        ("policy.docx", make_docx(), "Employees get 25 days of paid leave."),
    ],
)
def test_documents_are_parsed(
    client: openai.OpenAI, http: httpx.Client, name: str, data: bytes, expected: str
) -> None:
    store = stores(client).create()
    item = stores(client).files.upload_and_poll(vector_store_id=store.id, file=(name, data))
    assert item.status == "completed", item.last_error
    text = content_text(http, store.id, item.id)
    assert expected in text
    assert "<p>" not in text
    assert "var x" not in text


def test_create_and_poll_with_a_static_strategy(client: openai.OpenAI, http: httpx.Client) -> None:
    store = stores(client).create()
    file_id = upload(client, "a.txt", LONG_TEXT)
    item = stores(client).files.create_and_poll(
        file_id,
        vector_store_id=store.id,
        chunking_strategy={
            "type": "static",
            "static": {"max_chunk_size_tokens": 200, "chunk_overlap_tokens": 50},
        },
    )
    assert item.status == "completed"
    raw = http.get(f"/vector_stores/{store.id}/files/{file_id}").json()
    assert raw["chunking_strategy"] == {
        "type": "static",
        "static": {"max_chunk_size_tokens": 200, "chunk_overlap_tokens": 50},
    }


def test_bad_files_fail_alone_with_last_error(client: openai.OpenAI, http: httpx.Client) -> None:
    good = upload(client, "good.txt", "Perfectly readable text.")
    corrupt = upload(client, "broken.pdf", make_pdf(["cut short"])[:150])
    binary = upload(client, "setup.exe", b"MZ\x90\x00\x03\x00\x00\x00")
    store = stores(client).create()
    batch = stores(client).file_batches.create_and_poll(
        vector_store_id=store.id, file_ids=[good, corrupt, binary]
    )
    assert batch.status == "completed"
    assert batch.file_counts.model_dump() == {
        "in_progress": 0,
        "completed": 1,
        "failed": 2,
        "cancelled": 0,
        "total": 3,
    }
    errors = {f.id: f.last_error for f in stores(client).files.list(store.id) if f.last_error}
    assert set(errors) == {corrupt, binary}
    assert errors[corrupt].code == "invalid_file"
    assert errors[corrupt].message == "Could not parse PDF: the file is corrupt."
    assert errors[binary].code == "unsupported_file"
    assert ".exe" in errors[binary].message
    failed = stores(client).files.list(store.id, filter="failed")
    assert {f.id for f in failed} == {corrupt, binary}
    assert all(f.usage_bytes == 0 for f in failed)
    assert [f.id for f in stores(client).files.list(store.id, filter="completed")] == [good]
    assert list(stores(client).files.list(store.id, filter="in_progress")) == []
    summary = stores(client).retrieve(store.id)
    assert summary.status == "completed"
    assert (summary.file_counts.failed, summary.file_counts.completed) == (2, 1)
    assert content_text(http, store.id, corrupt) == ""
    assert_error(
        http.get(f"/vector_stores/{store.id}/files", params={"filter": "done"}),
        400,
        param="filter",
    )


def test_attach_errors(client: openai.OpenAI, http: httpx.Client) -> None:
    store = stores(client).create()
    missing = http.post(f"/vector_stores/{store.id}/files", json={"file_id": "file-missing"})
    assert_error(missing, 400, param="file_id", code="invalid_value")
    assert_error(http.post(f"/vector_stores/{store.id}/files", json={}), 400, param="file_id")
    file_id = upload(client, "a.txt", "text")
    no_store = http.post("/vector_stores/vs_missing/files", json={"file_id": file_id})
    assert assert_error(no_store, 404)["message"] == "No vector store found with id 'vs_missing'."
    gone = http.get(f"/vector_stores/{store.id}/files/{file_id}")
    assert assert_error(gone, 404)["message"] == (
        f"No file found with id '{file_id}' in vector store '{store.id}'."
    )
    bad_strategy = http.post(
        f"/vector_stores/{store.id}/files",
        json={"file_id": file_id, "chunking_strategy": {"type": "static"}},
    )
    assert_error(bad_strategy, 400, param="chunking_strategy.static")


def test_attaching_a_file_again_starts_it_over(client: openai.OpenAI, http: httpx.Client) -> None:
    store = stores(client).create()
    file_id = upload(client, "a.txt", LONG_TEXT)
    stores(client).files.create_and_poll(file_id, vector_store_id=store.id)
    again = stores(client).files.create_and_poll(
        file_id,
        vector_store_id=store.id,
        chunking_strategy={
            "type": "static",
            "static": {"max_chunk_size_tokens": 100, "chunk_overlap_tokens": 0},
        },
    )
    assert again.status == "completed"
    assert [f.id for f in stores(client).files.list(store.id)] == [file_id]
    raw = http.get(f"/vector_stores/{store.id}/files/{file_id}").json()
    assert raw["chunking_strategy"]["static"]["max_chunk_size_tokens"] == 100
    assert stores(client).retrieve(store.id).file_counts.total == 1


# ---- attributes ---------------------------------------------------------------------------


@pytest.mark.sdk3
def test_attributes_on_create_update_and_content(client: openai.OpenAI, http: httpx.Client) -> None:
    store = stores(client).create()
    file_id = upload(client, "a.txt", "Attribute test text.")
    attributes = {"dept": "hr", "year": 2024, "score": 0.5, "public": True}
    item = stores(client).files.create_and_poll(
        file_id, vector_store_id=store.id, attributes=attributes
    )
    assert item.attributes == attributes
    raw = http.get(f"/vector_stores/{store.id}/files/{file_id}").json()
    assert raw["attributes"] == attributes
    assert isinstance(raw["attributes"]["year"], int)
    updated = stores(client).files.update(
        file_id, vector_store_id=store.id, attributes={"dept": "eng"}
    )
    assert updated.attributes == {"dept": "eng"}
    assert updated.status == "completed"
    fetched = stores(client).files.retrieve(file_id, vector_store_id=store.id)
    assert fetched.attributes == {"dept": "eng"}
    page = stores(client).files.content(file_id, vector_store_id=store.id)
    assert [(p.type, p.text) for p in page] == [("text", "Attribute test text.")]


@pytest.mark.parametrize(
    ("attributes", "param"),
    [
        ({f"k{i}": i for i in range(17)}, "attributes"),
        ({"k" * 65: "v"}, "attributes"),
        ({"k": "v" * 513}, "attributes"),
        ({"k": ["list"]}, "attributes.k"),
        ({"k": {"nested": 1}}, "attributes.k"),
        ({"k": None}, "attributes.k"),
    ],
)
def test_invalid_attributes_are_400(
    client: openai.OpenAI, http: httpx.Client, attributes: dict[str, Any], param: str
) -> None:
    store = stores(client).create()
    file_id = upload(client, "a.txt", "text")
    path = f"/vector_stores/{store.id}/files"
    response = http.post(path, json={"file_id": file_id, "attributes": attributes})
    assert_error(response, 400, param=param)
    assert http.post(path, json={"file_id": file_id}).status_code == 200
    update = http.post(f"{path}/{file_id}", json={"attributes": attributes})
    assert_error(update, 400, param=param)
    assert_error(http.post(f"{path}/{file_id}", json={}), 400, param="attributes")


# ---- list and delete ----------------------------------------------------------------------


def test_files_list_in_attach_order(client: openai.OpenAI, http: httpx.Client) -> None:
    uploaded = [upload(client, f"{i}.txt", f"file {i}") for i in range(4)]
    store = stores(client).create()
    attached = [uploaded[2], uploaded[0], uploaded[3], uploaded[1]]
    for file_id in attached:
        http.post(f"/vector_stores/{store.id}/files", json={"file_id": file_id})
    path = f"/vector_stores/{store.id}/files"
    asc = http.get(path, params={"order": "asc", "limit": 2}).json()
    assert [f["id"] for f in asc["data"]] == attached[:2]
    assert asc["has_more"] is True
    assert (asc["first_id"], asc["last_id"]) == (attached[0], attached[1])
    rest = http.get(path, params={"order": "asc", "after": attached[1]}).json()
    assert [f["id"] for f in rest["data"]] == attached[2:]
    assert rest["has_more"] is False
    before = http.get(path, params={"order": "asc", "before": attached[2]}).json()
    assert [f["id"] for f in before["data"]] == attached[:2]
    assert [f.id for f in stores(client).files.list(store.id, limit=1)] == attached[::-1]
    assert_error(http.get(path, params={"after": "nonsense"}), 400, param="after")


def test_delete_a_file_from_the_store(client: openai.OpenAI, http: httpx.Client) -> None:
    store = stores(client).create()
    kept = stores(client).files.upload_and_poll(vector_store_id=store.id, file=("k.txt", b"kept"))
    dropped = stores(client).files.upload_and_poll(
        vector_store_id=store.id, file=("d.txt", LONG_TEXT.encode())
    )
    deleted = stores(client).files.delete(dropped.id, vector_store_id=store.id)
    assert (deleted.id, deleted.object, deleted.deleted) == (
        dropped.id,
        "vector_store.file.deleted",
        True,
    )
    assert_error(http.get(f"/vector_stores/{store.id}/files/{dropped.id}"), 404)
    assert_error(http.delete(f"/vector_stores/{store.id}/files/{dropped.id}"), 404)
    assert client.files.retrieve(dropped.id).id == dropped.id
    after = stores(client).retrieve(store.id)
    assert after.file_counts.total == 1
    assert after.usage_bytes == kept.usage_bytes


def test_deleting_the_file_removes_it_from_every_store(
    client: openai.OpenAI, http: httpx.Client
) -> None:
    file_id = upload(client, "shared.txt", "in two stores")
    first = stores(client).create(file_ids=[file_id])
    second = stores(client).create(file_ids=[file_id])
    client.files.delete(file_id)
    for store in (first, second):
        assert_error(http.get(f"/vector_stores/{store.id}/files/{file_id}"), 404)
        assert stores(client).retrieve(store.id).file_counts.total == 0


def test_another_project_cannot_reach_the_files(
    client: openai.OpenAI, make_client: ClientFactory, server: LiveServer
) -> None:
    store = stores(client).create()
    item = stores(client).files.upload_and_poll(vector_store_id=store.id, file=("a.txt", b"x"))
    batch = stores(client).file_batches.create(vector_store_id=store.id, file_ids=[item.id])
    other = make_client()
    with raw_client(server, other.api_key) as theirs:
        for method, path, body in (
            ("GET", f"/vector_stores/{store.id}/files", None),
            ("GET", f"/vector_stores/{store.id}/files/{item.id}", None),
            ("POST", f"/vector_stores/{store.id}/files/{item.id}", {"attributes": {}}),
            ("DELETE", f"/vector_stores/{store.id}/files/{item.id}", None),
            ("GET", f"/vector_stores/{store.id}/files/{item.id}/content", None),
            ("POST", f"/vector_stores/{store.id}/files", {"file_id": item.id}),
            ("POST", f"/vector_stores/{store.id}/file_batches", {"file_ids": [item.id]}),
            ("GET", f"/vector_stores/{store.id}/file_batches/{batch.id}", None),
            ("POST", f"/vector_stores/{store.id}/file_batches/{batch.id}/cancel", None),
            ("GET", f"/vector_stores/{store.id}/file_batches/{batch.id}/files", None),
        ):
            response = theirs.request(method, path, json=body)
            error = assert_error(response, 404)
            assert error["message"] == f"No vector store found with id '{store.id}'."
    assert stores(client).files.retrieve(item.id, vector_store_id=store.id).status == "completed"


# ---- batches ------------------------------------------------------------------------------


def test_batch_upload_and_poll(client: openai.OpenAI, http: httpx.Client) -> None:
    store = stores(client).create()
    earlier = upload(client, "pre.txt", "uploaded before the batch")
    batch = stores(client).file_batches.upload_and_poll(
        store.id,
        files=[("a.txt", b"alpha text"), ("b.md", b"# beta\n\ntext")],
        file_ids=[earlier],
    )
    assert batch.id.startswith("vsfb_")
    assert batch.object == "vector_store.files_batch"
    assert batch.vector_store_id == store.id
    assert batch.status == "completed"
    assert batch.file_counts.completed == batch.file_counts.total == 3
    listed = stores(client).file_batches.list_files(batch.id, vector_store_id=store.id)
    assert len(list(listed)) == 3
    assert earlier in {f.id for f in listed}
    assert stores(client).file_batches.retrieve(batch.id, vector_store_id=store.id) == batch
    raw = http.get(f"/vector_stores/{store.id}/file_batches/{batch.id}").json()
    assert set(raw) == {"id", "object", "created_at", "vector_store_id", "status", "file_counts"}


def test_batch_shares_settings_and_dedupes(client: openai.OpenAI, http: httpx.Client) -> None:
    store = stores(client).create()
    file_id = upload(client, "a.txt", "one file")
    response = http.post(
        f"/vector_stores/{store.id}/file_batches",
        json={
            "file_ids": [file_id, file_id],
            "attributes": {"source": "batch"},
            "chunking_strategy": {
                "type": "static",
                "static": {"max_chunk_size_tokens": 400, "chunk_overlap_tokens": 200},
            },
        },
    )
    assert response.status_code == 200, response.text
    batch = response.json()
    assert batch["file_counts"]["total"] == 1
    item = finished(client, store.id, file_id)
    raw = http.get(f"/vector_stores/{store.id}/files/{item.id}").json()
    assert raw["attributes"] == {"source": "batch"}
    assert raw["chunking_strategy"]["static"] == {
        "max_chunk_size_tokens": 400,
        "chunk_overlap_tokens": 200,
    }


@pytest.mark.sdk3
def test_batch_with_per_file_settings(client: openai.OpenAI, http: httpx.Client) -> None:
    store = stores(client).create()
    first = upload(client, "a.txt", "first")
    second = upload(client, "b.txt", "second")
    batch = stores(client).file_batches.create_and_poll(
        vector_store_id=store.id,
        files=[
            {"file_id": first, "attributes": {"n": 1}},
            {
                "file_id": second,
                "chunking_strategy": {
                    "type": "static",
                    "static": {"max_chunk_size_tokens": 100, "chunk_overlap_tokens": 10},
                },
            },
        ],
        # Ignored for `files` entries, as the API documents.
        attributes={"ignored": True},
    )
    assert batch.file_counts.completed == 2
    one = http.get(f"/vector_stores/{store.id}/files/{first}").json()
    two = http.get(f"/vector_stores/{store.id}/files/{second}").json()
    assert (one["attributes"], one["chunking_strategy"]) == ({"n": 1}, AUTO)
    assert two["attributes"] == {}
    assert two["chunking_strategy"]["static"]["max_chunk_size_tokens"] == 100
    completed = stores(client).file_batches.list_files(
        batch.id, vector_store_id=store.id, filter="completed", order="asc"
    )
    assert [f.id for f in completed] == [first, second]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({}, "file_ids"),
        ({"file_ids": []}, "file_ids"),
        ({"file_ids": ["file-missing"]}, "file_ids[0]"),
        ({"files": [{"file_id": "file-missing"}]}, "files[0].file_id"),
        ({"files": [{"attributes": {}}]}, "files[0].file_id"),
        ({"file_ids": ["x"], "files": [{"file_id": "x"}]}, "files"),
        (
            {"files": [{"file_id": "x", "chunking_strategy": {"type": "nope"}}]},
            "files[0].chunking_strategy.type",
        ),
    ],
)
def test_invalid_batches_are_400(
    client: openai.OpenAI, http: httpx.Client, body: dict[str, Any], param: str
) -> None:
    store = stores(client).create()
    assert_error(http.post(f"/vector_stores/{store.id}/file_batches", json=body), 400, param=param)


def test_missing_batch_is_404(client: openai.OpenAI, http: httpx.Client) -> None:
    store = stores(client).create()
    elsewhere = stores(client).create()
    file_id = upload(client, "a.txt", "text")
    batch = http.post(
        f"/vector_stores/{store.id}/file_batches", json={"file_ids": [file_id]}
    ).json()
    for path in (
        f"/vector_stores/{store.id}/file_batches/vsfb_missing",
        f"/vector_stores/{elsewhere.id}/file_batches/{batch['id']}",
    ):
        error = assert_error(http.get(path), 404)
        assert error["message"].startswith("No vector store file batch found with id")
