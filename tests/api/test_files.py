"""/v1/files: upload, retrieve, download, list, delete, expiry, limits and isolation."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any, get_args

import httpx
import openai
import pytest
from openai.types import FileObject

from assistd import clock
from tests.conftest import ClientFactory, LiveServer, assert_error

UPLOAD_PURPOSES = ["assistants", "vision", "user_data", "batch", "fine-tune", "evals"]
BOUNDARY = "assistd-test-boundary-7c1f"
# Purposes the installed SDK's strict FileObject model accepts.
SDK_FILE_PURPOSES = set(get_args(FileObject.model_fields["purpose"].annotation))


def multipart(fields: dict[str, str], file: tuple[str, bytes] | None = None) -> bytes:
    """A multipart/form-data body (boundary ``BOUNDARY``) built by hand."""
    parts: list[bytes] = []
    for name, value in fields.items():
        parts.append(
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
            + value.encode()
            + b"\r\n"
        )
    if file is not None:
        filename, data = file
        parts.append(
            f"--{BOUNDARY}\r\n"
            f'Content-Disposition: form-data; name="file"; filename="{filename}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n".encode()
            + data
            + b"\r\n"
        )
    parts.append(f"--{BOUNDARY}--\r\n".encode())
    return b"".join(parts)


MULTIPART_HEADERS = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}


def upload(client: openai.OpenAI, data: bytes = b"hello", **kwargs: Any) -> Any:
    kwargs.setdefault("purpose", "assistants")
    return client.files.create(file=("notes.txt", data), **kwargs)


def file_not_found(exc: openai.APIStatusError, file_id: str) -> None:
    assert exc.status_code == 404
    body = exc.response.json()
    assert body["error"]["message"] == f"No file found with id '{file_id}'."
    assert body["error"]["type"] == "invalid_request_error"


# --- upload, retrieve, content ------------------------------------------------------------


@pytest.fixture
def lax_client(server: LiveServer, client: openai.OpenAI) -> Iterator[openai.OpenAI]:
    """``client``'s project without strict response validation.

    The SDK's ``FileObject.purpose`` Literal follows the spec's ``OpenAIFile`` enum, which
    lacks ``evals`` (and, in openai 1.59.4, ``user_data``) although both are valid upload
    purposes; a strict client rejects the server's (correct) echo of them.
    """
    with openai.OpenAI(base_url=server.base_url, api_key=client.api_key, max_retries=0) as lax:
        yield lax


@pytest.mark.parametrize("purpose", UPLOAD_PURPOSES)
def test_upload_each_purpose(
    client: openai.OpenAI, lax_client: openai.OpenAI, purpose: str
) -> None:
    data = f"payload for {purpose}\n".encode()
    sdk = client if purpose in SDK_FILE_PURPOSES else lax_client
    before = int(time.time())
    created = sdk.files.create(file=("data.jsonl", data), purpose=purpose)  # type: ignore[arg-type]
    after = int(time.time())

    assert created.id.startswith("file-")
    assert len(created.id) > len("file-")
    assert created.object == "file"
    assert created.bytes == len(data)
    assert created.filename == "data.jsonl"
    assert created.purpose == purpose
    assert created.status == "processed"
    assert created.status_details is None
    assert isinstance(created.created_at, int)
    assert before - 1 <= created.created_at <= after + 1
    assert created.expires_at is None

    fetched = sdk.files.retrieve(created.id)
    assert fetched == created
    assert client.files.content(created.id).content == data
    assert [f.id for f in sdk.files.list(purpose=purpose)] == [created.id]


def test_upload_binary_with_nul_bytes(client: openai.OpenAI) -> None:
    data = b"\x00\x01\x02\xff\xfe\x00\x00PK\x03\x04\x00" + bytes(range(256)) + b"\x00"
    created = client.files.create(file=("blob.bin", data), purpose="assistants")
    assert created.bytes == len(data)
    assert created.filename == "blob.bin"
    response = client.files.content(created.id)
    assert response.content == data
    assert response.response.headers["content-length"] == str(len(data))


def test_upload_large_random_payload(client: openai.OpenAI) -> None:
    data = os.urandom(1024 * 1024 + 17)
    created = client.files.create(file=("random.bin", data), purpose="assistants")
    assert created.bytes == len(data)
    assert client.files.retrieve(created.id).bytes == len(data)
    assert client.files.content(created.id).content == data


def test_upload_empty_file(client: openai.OpenAI) -> None:
    created = client.files.create(file=("empty.txt", b""), purpose="assistants")
    assert created.bytes == 0
    assert client.files.content(created.id).content == b""


def test_upload_exactly_at_limit_is_accepted(client: openai.OpenAI, server: LiveServer) -> None:
    data = b"x" * server.settings.max_upload_bytes
    created = client.files.create(file=("limit.txt", data), purpose="assistants")
    assert created.bytes == len(data)
    assert client.files.content(created.id).content == data


def test_upload_from_path_uses_basename(client: openai.OpenAI, tmp_path: Any) -> None:
    path = tmp_path / "report.md"
    path.write_bytes(b"# Report\n")
    created = client.files.create(file=path, purpose="assistants")
    assert created.filename == "report.md"
    assert client.files.content(created.id).content == b"# Report\n"


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        ("dir/sub/name.txt", "name.txt"),
        ("C:\\Users\\me\\doc.pdf", "doc.pdf"),
        ("../../etc/passwd", "passwd"),
        ("résumé 2024.txt", "résumé 2024.txt"),
    ],
)
def test_filename_path_components_stripped(
    client: openai.OpenAI, http: httpx.Client, sent: str, stored: str
) -> None:
    response = http.post(
        "/files", data={"purpose": "assistants"}, files={"file": (sent, b"abc", "text/plain")}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["filename"] == stored
    assert client.files.retrieve(body["id"]).filename == stored


def test_sdk_tuple_filename_with_directories(client: openai.OpenAI) -> None:
    created = client.files.create(file=("some/dir/x.txt", b"abc"), purpose="assistants")
    assert created.filename == "x.txt"


def test_wait_for_processing_returns_immediately(client: openai.OpenAI) -> None:
    created = upload(client)
    started = time.monotonic()
    done = client.files.wait_for_processing(created.id, poll_interval=30, max_wait_seconds=60)
    assert time.monotonic() - started < 5
    assert done == created
    assert done.status == "processed"


def test_raw_upload_response_is_exact_wire_shape(http: httpx.Client) -> None:
    response = http.post(
        "/files", data={"purpose": "vision"}, files={"file": ("cat.png", b"\x89PNG", "image/png")}
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {
        "id",
        "object",
        "bytes",
        "created_at",
        "expires_at",
        "filename",
        "purpose",
        "status",
        "status_details",
    }
    assert body["object"] == "file"
    assert body["bytes"] == 4
    assert body["filename"] == "cat.png"
    assert body["purpose"] == "vision"
    assert body["status"] == "processed"
    assert body["expires_at"] is None
    assert body["status_details"] is None


def test_upload_without_beta_header(client: openai.OpenAI, server: LiveServer) -> None:
    # The SDK sends no OpenAI-Beta header on /files; the server must not require it.
    with httpx.Client(
        base_url=server.base_url, headers={"Authorization": f"Bearer {client.api_key}"}
    ) as raw:
        response = raw.post(
            "/files", data={"purpose": "assistants"}, files={"file": ("a.txt", b"a")}
        )
        assert response.status_code == 200, response.text
        file_id = response.json()["id"]
        assert raw.get(f"/files/{file_id}").status_code == 200
        assert raw.get(f"/files/{file_id}/content").content == b"a"


# --- expiry ---------------------------------------------------------------------------------


@pytest.mark.sdk3
def test_expires_after_sets_expires_at(client: openai.OpenAI) -> None:
    created = client.files.create(
        file=("tmp.txt", b"short-lived"),
        purpose="assistants",
        expires_after={"anchor": "created_at", "seconds": 3600},
    )
    assert created.expires_at == created.created_at + 3600
    assert client.files.retrieve(created.id) == created


@pytest.mark.parametrize("seconds", [3600, 86400, 2592000])
def test_expires_after_raw_bounds_accepted(http: httpx.Client, seconds: int) -> None:
    response = http.post(
        "/files",
        data={
            "purpose": "assistants",
            "expires_after[anchor]": "created_at",
            "expires_after[seconds]": str(seconds),
        },
        files={"file": ("e.txt", b"e")},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["expires_at"] == body["created_at"] + seconds


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"expires_after[anchor]": "last_active_at", "expires_after[seconds]": "3600"}, "anchor"),
        ({"expires_after[anchor]": "", "expires_after[seconds]": "3600"}, "anchor"),
        ({"expires_after[seconds]": "3600"}, "anchor"),
        ({"expires_after[anchor]": "created_at", "expires_after[seconds]": "3599"}, "seconds"),
        ({"expires_after[anchor]": "created_at", "expires_after[seconds]": "2592001"}, "seconds"),
        ({"expires_after[anchor]": "created_at", "expires_after[seconds]": "0"}, "seconds"),
        ({"expires_after[anchor]": "created_at", "expires_after[seconds]": "-3600"}, "seconds"),
        ({"expires_after[anchor]": "created_at", "expires_after[seconds]": "1h"}, "seconds"),
        ({"expires_after[anchor]": "created_at"}, "seconds"),
    ],
)
def test_expires_after_invalid(
    client: openai.OpenAI, http: httpx.Client, fields: dict[str, str], param: str
) -> None:
    response = http.post(
        "/files", data={"purpose": "assistants", **fields}, files={"file": ("e.txt", b"e")}
    )
    assert_error(response, 400, param=f"expires_after.{param}", code="invalid_value")
    assert client.files.list().data == []


def test_expired_file_disappears(
    client: openai.OpenAI, http: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    response = http.post(
        "/files",
        data={
            "purpose": "assistants",
            "expires_after[anchor]": "created_at",
            "expires_after[seconds]": "3600",
        },
        files={"file": ("e.txt", b"expiring")},
    )
    assert response.status_code == 200, response.text
    expiring = response.json()
    keeper = upload(client, b"keep")

    # Anchored on created_at: the wall clock may have ticked a second since the upload.
    monkeypatch.setattr(clock, "now", lambda: expiring["created_at"] + 3599)
    assert client.files.retrieve(expiring["id"]).id == expiring["id"]

    monkeypatch.setattr(clock, "now", lambda: expiring["expires_at"])
    for call in (client.files.retrieve, client.files.content, client.files.delete):
        with pytest.raises(openai.NotFoundError) as exc_info:
            call(expiring["id"])
        file_not_found(exc_info.value, expiring["id"])
    assert [f.id for f in client.files.list().data] == [keeper.id]
    assert client.files.content(keeper.id).content == b"keep"


# --- list -----------------------------------------------------------------------------------


@pytest.fixture
def three_files(client: openai.OpenAI) -> list[str]:
    return [
        upload(client, b"1", purpose="assistants").id,
        upload(client, b"2", purpose="batch").id,
        upload(client, b"3", purpose="assistants").id,
    ]


def test_list_empty(client: openai.OpenAI, http: httpx.Client) -> None:
    assert client.files.list().data == []
    response = http.get("/files")
    assert response.status_code == 200
    assert response.json() == {
        "object": "list",
        "data": [],
        "first_id": None,
        "last_id": None,
        "has_more": False,
    }


def test_list_default_order_desc(client: openai.OpenAI, three_files: list[str]) -> None:
    page = client.files.list()
    assert [f.id for f in page.data] == three_files[::-1]
    assert page.has_more is False
    assert page.data[0] == client.files.retrieve(three_files[-1])


def test_list_order_asc(client: openai.OpenAI, three_files: list[str]) -> None:
    page = client.files.list(order="asc")
    assert [f.id for f in page.data] == three_files


def test_list_purpose_filter(client: openai.OpenAI, three_files: list[str]) -> None:
    assistants = client.files.list(purpose="assistants")
    assert [f.id for f in assistants.data] == [three_files[2], three_files[0]]
    assert all(f.purpose == "assistants" for f in assistants.data)
    batch = client.files.list(purpose="batch")
    assert [f.id for f in batch.data] == [three_files[1]]
    assert client.files.list(purpose="vision").data == []


def test_list_raw_envelope(http: httpx.Client, three_files: list[str]) -> None:
    response = http.get("/files", params={"limit": 2, "order": "asc"})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"object", "data", "first_id", "last_id", "has_more"}
    assert body["object"] == "list"
    assert [f["id"] for f in body["data"]] == three_files[:2]
    assert body["first_id"] == three_files[0]
    assert body["last_id"] == three_files[1]
    assert body["has_more"] is True


@pytest.mark.parametrize("limit", [1, 10000])
def test_list_limit_bounds_accepted(
    client: openai.OpenAI, three_files: list[str], limit: int
) -> None:
    page = client.files.list(limit=limit)
    assert [f.id for f in page.data] == three_files[::-1][:limit]


@pytest.mark.parametrize("limit", ["0", "10001", "-1", "ten"])
def test_list_limit_out_of_range(http: httpx.Client, limit: str) -> None:
    assert_error(http.get("/files", params={"limit": limit}), 400, param="limit")


def test_list_invalid_order(http: httpx.Client) -> None:
    assert_error(http.get("/files", params={"order": "sideways"}), 400, param="order")


def test_list_after_cursor_paging(
    client: openai.OpenAI, http: httpx.Client, three_files: list[str]
) -> None:
    newest_first = three_files[::-1]
    first = http.get("/files", params={"limit": 1}).json()
    assert [f["id"] for f in first["data"]] == newest_first[:1]
    assert (first["first_id"], first["last_id"], first["has_more"]) == (
        newest_first[0],
        newest_first[0],
        True,
    )
    second = http.get("/files", params={"limit": 1, "after": first["last_id"]}).json()
    assert [f["id"] for f in second["data"]] == newest_first[1:2]
    assert second["has_more"] is True
    third = http.get("/files", params={"limit": 1, "after": second["last_id"]}).json()
    assert [f["id"] for f in third["data"]] == newest_first[2:]
    assert (third["first_id"], third["last_id"], third["has_more"]) == (
        newest_first[2],
        newest_first[2],
        False,
    )

    # The same through the SDK, ascending.
    page = client.files.list(limit=2, order="asc", after=three_files[0])
    assert [f.id for f in page.data] == three_files[1:]
    assert page.has_more is False
    assert client.files.list(order="asc", after=three_files[2]).data == []


def test_list_after_deleted_cursor(client: openai.OpenAI, three_files: list[str]) -> None:
    client.files.delete(three_files[1])
    page = client.files.list(order="asc", after=three_files[1])
    assert [f.id for f in page.data] == [three_files[2]]


def test_list_before_is_not_a_files_parameter(http: httpx.Client, three_files: list[str]) -> None:
    # /files pages with `after` only; a stray `before` does not narrow the list.
    body = http.get("/files", params={"before": three_files[0]}).json()
    assert [f["id"] for f in body["data"]] == three_files[::-1]


def test_sdk_auto_pagination_collects_all(client: openai.OpenAI) -> None:
    made = [upload(client, str(i).encode()).id for i in range(7)]
    collected = [f.id for f in client.files.list(limit=2)]
    assert collected == made[::-1]
    collected_asc = [f.id for f in client.files.list(limit=3, order="asc")]
    assert collected_asc == made

    first = client.files.list(limit=3, order="asc")
    pages = list(first.iter_pages())
    # openai 1.59.4 ignores has_more and stops only on an empty page, so one may trail.
    assert [len(p.data) for p in pages][:3] == [3, 3, 1]
    assert all(not p.data for p in pages[3:])
    assert pages[2].has_more is False


# --- delete ---------------------------------------------------------------------------------


def test_delete(client: openai.OpenAI, http: httpx.Client) -> None:
    created = upload(client, b"to be deleted")
    other = upload(client, b"stays")

    deleted = client.files.delete(created.id)
    assert deleted.id == created.id
    assert deleted.object == "file"
    assert deleted.deleted is True

    for call in (client.files.retrieve, client.files.content, client.files.delete):
        with pytest.raises(openai.NotFoundError) as exc_info:
            call(created.id)
        file_not_found(exc_info.value, created.id)

    assert [f.id for f in client.files.list().data] == [other.id]
    assert client.files.content(other.id).content == b"stays"


def test_delete_raw_shape(client: openai.OpenAI, http: httpx.Client) -> None:
    created = upload(client)
    response = http.delete(f"/files/{created.id}")
    assert response.status_code == 200
    assert response.json() == {"id": created.id, "object": "file", "deleted": True}
    again = http.delete(f"/files/{created.id}")
    error = assert_error(again, 404)
    assert error["message"] == f"No file found with id '{created.id}'."


def test_unknown_file_id(client: openai.OpenAI, http: httpx.Client) -> None:
    missing = "file-doesnotexist000000000000"
    for call in (client.files.retrieve, client.files.content, client.files.delete):
        with pytest.raises(openai.NotFoundError) as exc_info:
            call(missing)
        file_not_found(exc_info.value, missing)
    error = assert_error(http.get(f"/files/{missing}/content"), 404)
    assert error["message"] == f"No file found with id '{missing}'."


# --- upload errors --------------------------------------------------------------------------


def test_missing_purpose(client: openai.OpenAI, http: httpx.Client) -> None:
    response = http.post("/files", files={"file": ("a.txt", b"a")})
    assert_error(response, 400, param="purpose", code="missing_required_parameter")
    empty = http.post("/files", data={"purpose": ""}, files={"file": ("a.txt", b"a")})
    assert_error(empty, 400, param="purpose", code="missing_required_parameter")
    assert client.files.list().data == []


@pytest.mark.parametrize("purpose", ["assistants_output", "batch_output", "fine-tune-results"])
def test_output_purposes_cannot_be_uploaded(http: httpx.Client, purpose: str) -> None:
    response = http.post("/files", data={"purpose": purpose}, files={"file": ("a.txt", b"a")})
    assert_error(response, 400, param="purpose", code="invalid_value")


def test_invalid_purpose(client: openai.OpenAI, http: httpx.Client) -> None:
    response = http.post("/files", data={"purpose": "bogus"}, files={"file": ("a.txt", b"a")})
    error = assert_error(response, 400, param="purpose", code="invalid_value")
    assert "bogus" in error["message"]
    with pytest.raises(openai.BadRequestError) as exc_info:
        client.files.create(file=("a.txt", b"a"), purpose="bogus")  # type: ignore[arg-type]
    assert exc_info.value.param == "purpose"
    assert client.files.list().data == []


def test_missing_file(client: openai.OpenAI, http: httpx.Client) -> None:
    response = http.post("/files", data={"purpose": "assistants"}, files={"other": ("a", b"a")})
    assert_error(response, 400, param="file", code="missing_required_parameter")
    only_fields = http.post(
        "/files", content=multipart({"purpose": "assistants"}), headers=MULTIPART_HEADERS
    )
    assert_error(only_fields, 400, param="file")
    # A text field named `file` is not a file.
    text_file = http.post(
        "/files",
        content=multipart({"purpose": "assistants", "file": "not a file"}),
        headers=MULTIPART_HEADERS,
    )
    assert_error(text_file, 400, param="file")
    assert client.files.list().data == []


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b'{"purpose": "assistants", "file": "abc"}', "application/json"),
        (b"purpose=assistants&file=abc", "application/x-www-form-urlencoded"),
        (b"raw bytes", "application/octet-stream"),
    ],
)
def test_non_multipart_body(
    client: openai.OpenAI, http: httpx.Client, content: bytes, content_type: str
) -> None:
    response = http.post("/files", content=content, headers={"Content-Type": content_type})
    assert_error(response, 400)
    assert client.files.list().data == []


def test_malformed_multipart_body(client: openai.OpenAI, http: httpx.Client) -> None:
    response = http.post(
        "/files",
        content=b"--not-the-boundary\r\ngarbage",
        headers=MULTIPART_HEADERS,
    )
    assert_error(response, 400)
    assert client.files.list().data == []


# --- size limit -----------------------------------------------------------------------------


def assert_too_large(response: httpx.Response, server: LiveServer) -> None:
    error = assert_error(response, 413, param="file", code="file_too_large")
    assert str(server.settings.max_upload_bytes) in error["message"]


def assert_server_still_works(client: openai.OpenAI) -> None:
    assert client.files.list().data == []
    created = upload(client, b"after the refusal")
    assert client.files.content(created.id).content == b"after the refusal"
    assert [f.id for f in client.files.list().data] == [created.id]


def test_upload_too_large_with_content_length(
    client: openai.OpenAI, http: httpx.Client, server: LiveServer
) -> None:
    body = multipart({"purpose": "assistants"}, ("big.bin", b"\x00" * (3 * 1024 * 1024)))
    response = http.post("/files", content=body, headers=MULTIPART_HEADERS)
    assert "content-length" in {k.lower() for k in response.request.headers}
    assert_too_large(response, server)
    assert_server_still_works(client)


def test_upload_too_large_chunked(
    client: openai.OpenAI, http: httpx.Client, server: LiveServer
) -> None:
    body = multipart({"purpose": "assistants"}, ("big.bin", os.urandom(3 * 1024 * 1024)))

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 64 * 1024):
            yield body[start : start + 64 * 1024]

    response = http.post("/files", content=chunks(), headers=MULTIPART_HEADERS)
    assert "content-length" not in {k.lower() for k in response.request.headers}
    assert response.request.headers["transfer-encoding"] == "chunked"
    assert_too_large(response, server)
    assert_server_still_works(client)


def test_upload_just_over_limit(
    client: openai.OpenAI, http: httpx.Client, server: LiveServer
) -> None:
    # Small enough to pass the framing allowance, so the stored size decides.
    data = b"y" * (server.settings.max_upload_bytes + 1)
    response = http.post("/files", data={"purpose": "assistants"}, files={"file": ("b", data)})
    assert_too_large(response, server)
    with pytest.raises(openai.APIStatusError) as exc_info:
        client.files.create(file=("b.bin", data), purpose="assistants")
    assert exc_info.value.status_code == 413
    assert exc_info.value.code == "file_too_large"
    assert_server_still_works(client)


# --- isolation ------------------------------------------------------------------------------


def test_project_isolation(client: openai.OpenAI, make_client: ClientFactory) -> None:
    mine = upload(client, b"private")
    other = make_client()
    theirs = upload(other, b"theirs")

    for call in (other.files.retrieve, other.files.content, other.files.delete):
        with pytest.raises(openai.NotFoundError) as exc_info:
            call(mine.id)
        file_not_found(exc_info.value, mine.id)
    assert [f.id for f in other.files.list().data] == [theirs.id]
    assert [f.id for f in other.files.list(purpose="assistants", order="asc").data] == [theirs.id]

    # The owner is unaffected by the other project's attempts.
    assert client.files.retrieve(mine.id) == mine
    assert client.files.content(mine.id).content == b"private"
    assert [f.id for f in client.files.list().data] == [mine.id]
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(theirs.id)


def test_unauthenticated(server: LiveServer) -> None:
    with httpx.Client(base_url=server.base_url) as raw:
        assert raw.get("/files").status_code == 401
        response = raw.post(
            "/files", data={"purpose": "assistants"}, files={"file": ("a.txt", b"a")}
        )
        assert response.status_code == 401
