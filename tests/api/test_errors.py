"""OpenAI's error envelope on every error path, and what the server must tolerate."""

from __future__ import annotations

import io
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import httpx
import openai
import pytest

from assistd.config import Settings
from assistd.http import deps
from assistd.store.blobs import LocalBlobStore, StoredBlob
from tests.conftest import ClientFactory, LiveServer, assert_error, make_settings

REQUEST_ID = re.compile(r"^req_[0-9a-f]{32}$")
SERVER_ERROR_MESSAGE = "The server had an error while processing your request. Sorry about that!"


def assert_no_fastapi_shape(response: httpx.Response) -> None:
    body = response.json()
    assert "detail" not in body, body
    assert response.status_code != 422


# ---- 400: request validation ------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "param", "code", "message"),
    [
        ({}, "model", "missing_required_parameter", "Missing required parameter: 'model'."),
        (
            {"name": "x"},
            "model",
            "missing_required_parameter",
            "Missing required parameter: 'model'.",
        ),
        (
            {"model": 5},
            "model",
            "invalid_type",
            "Invalid type for 'model': expected a string, but got an integer instead.",
        ),
        (
            {"model": "gpt-4o", "temperature": "hot"},
            "temperature",
            "invalid_type",
            "Invalid type for 'temperature': expected a decimal, but got a string instead.",
        ),
        (
            {"model": "gpt-4o", "tools": "code_interpreter"},
            "tools",
            "invalid_type",
            "Invalid type for 'tools': expected an array, but got a string instead.",
        ),
        (
            {"model": "gpt-4o", "metadata": []},
            "metadata",
            "invalid_type",
            "Invalid type for 'metadata': expected an object, but got an array instead.",
        ),
        (
            {"model": "gpt-4o", "name": "n" * 257},
            "name",
            "string_above_max_length",
            "Invalid 'name': string too long. Expected a string with maximum length 256, "
            "but got a string with length 257 instead.",
        ),
        (
            {"model": "gpt-4o", "description": "d" * 513},
            "description",
            "string_above_max_length",
            "Invalid 'description': string too long. Expected a string with maximum length "
            "512, but got a string with length 513 instead.",
        ),
        (
            {"model": "gpt-4o", "reasoning_effort": "extreme"},
            "reasoning_effort",
            "invalid_value",
            "Invalid value for 'reasoning_effort': 'extreme'. Supported values are: 'none', "
            "'minimal', 'low', 'medium', 'high', 'xhigh' or 'max'.",
        ),
        (
            {"model": "gpt-4o", "temperature": 2.5},
            "temperature",
            "decimal_above_max_value",
            "Invalid 'temperature': decimal above maximum value. Expected a value <= 2.0, "
            "but got 2.5 instead.",
        ),
        (
            {"model": "gpt-4o", "tools": [{"type": "retrieval"}]},
            "tools[0].type",
            "invalid_value",
            "Invalid value for 'tools[0].type': 'retrieval'. Supported values are: "
            "'code_interpreter', 'file_search', 'function'.",
        ),
        (
            {"model": "gpt-4o", "tools": [{"type": "function", "function": {"name": "a b"}}]},
            "tools[0].function.name",
            "invalid_value",
            "Invalid name 'a b': it must be 1 to 64 characters of a-z, A-Z, 0-9, "
            "underscores or dashes.",
        ),
    ],
)
def test_validation_errors_are_400_envelopes(
    http: httpx.Client, body: dict[str, Any], param: str, code: str, message: str
) -> None:
    response = http.post("/assistants", json=body)
    error = assert_error(response, 400, param=param, code=code)
    assert error["message"] == message
    assert_no_fastapi_shape(response)


def test_validation_error_in_a_nested_message(http: httpx.Client) -> None:
    body = {"messages": [{"role": "user", "content": "ok"}, {"role": "robot", "content": "x"}]}
    response = http.post("/threads", json=body)
    error = assert_error(response, 400, param="messages[1].role", code="invalid_value")
    assert error["message"].startswith("Invalid value for 'messages[1].role': 'robot'.")


def test_message_content_array_errors_point_inside_the_array(http: httpx.Client) -> None:
    thread = http.post("/threads").json()
    response = http.post(
        f"/threads/{thread['id']}/messages",
        json={"role": "user", "content": [{"type": "text", "text": 7}]},
    )
    error = assert_error(response, 400, param="content[0].text", code="invalid_type")
    assert error["message"] == (
        "Invalid type for 'content[0].text': expected a string, but got an integer instead."
    )


@pytest.mark.parametrize(
    ("query", "param", "code"),
    [
        ({"limit": "0"}, "limit", "integer_below_min_value"),
        ({"limit": "101"}, "limit", "integer_above_max_value"),
        ({"limit": "ten"}, "limit", "invalid_type"),
        ({"order": "sideways"}, "order", "invalid_value"),
    ],
)
def test_query_validation_errors(
    http: httpx.Client, query: dict[str, str], param: str, code: str
) -> None:
    response = http.get("/assistants", params=query)
    assert_error(response, 400, param=param, code=code)
    assert_no_fastapi_shape(response)


def test_query_limit_message(http: httpx.Client) -> None:
    error = assert_error(http.get("/assistants", params={"limit": "0"}), 400, param="limit")
    assert error["message"] == (
        "Invalid 'limit': integer below minimum value. Expected a value >= 1, but got 0 instead."
    )


@pytest.mark.parametrize(
    "raw",
    [b"{not json", b'{"model": "gpt-4o",}', b"\xff\xfe", b'{"model": "gpt-4o"'],
)
def test_invalid_json_body(http: httpx.Client, raw: bytes) -> None:
    response = http.post("/assistants", content=raw, headers={"Content-Type": "application/json"})
    error = assert_error(response, 400)
    assert "could not parse the JSON body" in error["message"]
    assert error["param"] is None


@pytest.mark.parametrize("raw", [b"[]", b'[{"model": "gpt-4o"}]', b'"gpt-4o"', b"42", b"null"])
def test_json_body_that_is_not_an_object(http: httpx.Client, raw: bytes) -> None:
    response = http.post("/assistants", content=raw, headers={"Content-Type": "application/json"})
    error = assert_error(response, 400, code="invalid_type")
    assert error["message"] == "Invalid type for the request body: expected an object."


def test_sdk_bad_request_error(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.beta.assistants.create(model="gpt-4o", name="n" * 300)
    err = caught.value
    assert err.status_code == 400
    assert err.code == "string_above_max_length"
    assert err.param == "name"
    assert err.type == "invalid_request_error"
    assert err.body == {
        "message": "Invalid 'name': string too long. Expected a string with maximum length "
        "256, but got a string with length 300 instead.",
        "type": "invalid_request_error",
        "param": "name",
        "code": "string_above_max_length",
    }
    assert REQUEST_ID.match(err.response.headers["x-request-id"])


def test_sdk_missing_parameter_error(client: openai.OpenAI) -> None:
    thread = client.beta.threads.create()
    with pytest.raises(openai.BadRequestError) as caught:
        client.beta.threads.messages.create(thread.id, role="user", content="")
    assert caught.value.param == "content"
    assert caught.value.code == "string_below_min_length"
    with pytest.raises(openai.BadRequestError) as caught:
        client.beta.assistants.create(model="gpt-4o", extra_body={"model": None})
    assert caught.value.param == "model"


# ---- unknown fields, empty bodies, headers ----------------------------------------------


def test_unknown_body_fields_are_tolerated(http: httpx.Client) -> None:
    response = http.post(
        "/assistants",
        json={
            "model": "gpt-4o",
            "name": "kept",
            "brand_new_field": {"nested": [1, 2, 3]},
            "file_ids": [],  # an Assistants v1 field
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["name"] == "kept"
    assert "brand_new_field" not in body
    assert "file_ids" not in body


def test_unknown_fields_through_the_sdk(client: openai.OpenAI) -> None:
    thread = client.beta.threads.create(extra_body={"future_option": True})
    message = client.beta.threads.messages.create(
        thread.id, role="user", content="hi", extra_body={"another": "x"}
    )
    assert message.content[0].type == "text"
    assert client.beta.threads.retrieve(thread.id).id == thread.id


def test_post_without_a_body(http: httpx.Client) -> None:
    response = http.post("/threads")
    assert response.status_code == 200, response.text
    assert response.json()["object"] == "thread"
    assert response.json()["metadata"] == {}


@pytest.mark.parametrize("raw", [b"", b"   ", b"\n"])
def test_empty_json_body_means_no_fields(http: httpx.Client, raw: bytes) -> None:
    response = http.post("/threads", content=raw, headers={"Content-Type": "application/json"})
    assert response.status_code == 200, response.text
    assert response.json()["id"].startswith("thread_")


def test_empty_json_body_on_update(http: httpx.Client) -> None:
    created = http.post("/assistants", json={"model": "gpt-4o", "name": "same"}).json()
    response = http.post(
        f"/assistants/{created['id']}",
        content=b"",
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 200, response.text
    assert response.json() == created


def test_delete_with_json_content_type_and_empty_body(http: httpx.Client) -> None:
    created = http.post("/assistants", json={"model": "gpt-4o"}).json()
    response = http.request(
        "DELETE",
        f"/assistants/{created['id']}",
        content=b"",
        headers={"Content-Type": "application/json", "Content-Length": "0"},
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"id": created["id"], "object": "assistant.deleted", "deleted": True}


def test_openai_beta_header_accepted_but_not_required(
    server: LiveServer, client: openai.OpenAI
) -> None:
    auth = {"Authorization": f"Bearer {client.api_key}"}
    with httpx.Client(base_url=server.base_url, timeout=30) as raw:
        without = raw.post("/assistants", json={"model": "gpt-4o"}, headers=auth)
        assert without.status_code == 200, without.text
        with_v2 = raw.get(
            f"/assistants/{without.json()['id']}",
            headers={**auth, "OpenAI-Beta": "assistants=v2"},
        )
        assert with_v2.status_code == 200, with_v2.text
        assert with_v2.json() == without.json()
        files = raw.get("/files", headers=auth)
        assert files.status_code == 200, files.text


# ---- routing ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/nope"),
        ("POST", "/v1/nope"),
        ("GET", "/v1/assistants/asst_x/extra"),
        ("GET", "/v2/assistants"),
        ("GET", "/nope"),  # "/" itself redirects to the console
    ],
)
def test_unknown_route(server: LiveServer, http: httpx.Client, method: str, path: str) -> None:
    response = http.request(method, f"http://127.0.0.1:{server.port}{path}")
    error = assert_error(response, 404)
    assert error["message"] == f"Invalid URL ({method} {path})."
    assert error["param"] is None
    assert error["code"] is None
    assert_no_fastapi_shape(response)


def test_unknown_route_message_exact(http: httpx.Client) -> None:
    error = assert_error(http.get("/nope"), 404)
    assert error["message"] == "Invalid URL (GET /v1/nope)."


def test_unknown_route_through_the_sdk(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.get("/nope", cast_to=object)
    assert caught.value.body == {
        "message": "Invalid URL (GET /v1/nope).",
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("PUT", "/assistants"),
        ("PATCH", "/assistants/asst_x"),
        ("DELETE", "/assistants"),
        ("PUT", "/threads/thread_x"),
        ("POST", "/files/file-x/content"),
    ],
)
def test_wrong_method(http: httpx.Client, method: str, path: str) -> None:
    response = http.request(method, path)
    assert response.status_code in (404, 405)
    error = assert_error(response, response.status_code)
    assert error["message"] == f"Invalid method for URL ({method} /v1{path})."
    assert_no_fastapi_shape(response)


# ---- 401 --------------------------------------------------------------------------------


def test_wrong_key(server: LiveServer) -> None:
    key = "sk-wrong-" + secrets.token_hex(16)
    with httpx.Client(base_url=server.base_url, timeout=30) as raw:
        response = raw.get("/assistants", headers={"Authorization": f"Bearer {key}"})
    error = assert_error(response, 401, code="invalid_api_key")
    assert error["message"] == "Incorrect API key provided."
    assert key not in response.text
    assert key[:12] not in response.text
    assert error["param"] is None


def test_wrong_key_through_the_sdk(make_client: ClientFactory) -> None:
    key = "sk-wrong-" + secrets.token_hex(16)
    sdk = make_client(api_key=key)
    with pytest.raises(openai.AuthenticationError) as caught:
        sdk.beta.assistants.list()
    assert caught.value.status_code == 401
    assert caught.value.code == "invalid_api_key"
    assert key not in str(caught.value)
    assert key not in caught.value.response.text


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": ""},
        {"Authorization": "Bearer"},
        {"Authorization": "Token sk-not-a-bearer-key"},
    ],
)
def test_missing_key(server: LiveServer, headers: dict[str, str]) -> None:
    with httpx.Client(base_url=server.base_url, timeout=30) as raw:
        response = raw.post("/assistants", json={"model": "gpt-4o"}, headers=headers)
    error = assert_error(response, 401, code="missing_api_key")
    assert error["message"].startswith("You didn't provide an API key.")


def test_non_bearer_scheme_is_refused(server: LiveServer, client: openai.OpenAI) -> None:
    with httpx.Client(base_url=server.base_url, timeout=30) as raw:
        response = raw.get("/assistants", headers={"Authorization": f"Basic {client.api_key}"})
    assert_error(response, 401)
    assert str(client.api_key) not in response.text


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/assistants", {"model": "gpt-4o"}),
        ("GET", "/assistants/asst_x", None),
        ("DELETE", "/assistants/asst_x", None),
        ("POST", "/threads", {}),
        ("GET", "/threads/thread_x/messages", None),
        ("GET", "/files", None),
        ("GET", "/models", None),
    ],
)
def test_every_endpoint_requires_a_key(
    server: LiveServer, method: str, path: str, body: dict[str, Any] | None
) -> None:
    with httpx.Client(base_url=server.base_url, timeout=30) as raw:
        response = raw.request(method, path, json=body)
    assert_error(response, 401, code="missing_api_key")


def test_authentication_comes_before_validation(server: LiveServer) -> None:
    with httpx.Client(base_url=server.base_url, timeout=30) as raw:
        bad_query = raw.get("/assistants", params={"limit": "0"})
        bad_body = raw.post("/assistants", json={"name": 5})
        bad_json = raw.post(
            "/assistants", content=b"{", headers={"Content-Type": "application/json"}
        )
    for response in (bad_query, bad_body, bad_json):
        assert_error(response, 401, code="missing_api_key")


# ---- 404 per resource -------------------------------------------------------------------


@pytest.fixture
def thread_id(client: openai.OpenAI) -> str:
    return client.beta.threads.create().id


@pytest.mark.parametrize(
    ("method", "path", "body", "kind", "missing"),
    [
        ("GET", "/assistants/{id}", None, "assistant", "asst_missing"),
        ("POST", "/assistants/{id}", {"name": "x"}, "assistant", "asst_missing"),
        ("DELETE", "/assistants/{id}", None, "assistant", "asst_missing"),
        ("GET", "/threads/{id}", None, "thread", "thread_missing"),
        ("POST", "/threads/{id}", {"metadata": {}}, "thread", "thread_missing"),
        ("DELETE", "/threads/{id}", None, "thread", "thread_missing"),
        ("GET", "/threads/{id}/messages", None, "thread", "thread_missing"),
        (
            "POST",
            "/threads/{id}/messages",
            {"role": "user", "content": "x"},
            "thread",
            "thread_missing",
        ),
        ("GET", "/threads/{thread}/messages/{id}", None, "message", "msg_missing"),
        ("POST", "/threads/{thread}/messages/{id}", {"metadata": {}}, "message", "msg_missing"),
        ("DELETE", "/threads/{thread}/messages/{id}", None, "message", "msg_missing"),
        ("GET", "/files/{id}", None, "file", "file-missing"),
        ("DELETE", "/files/{id}", None, "file", "file-missing"),
        ("GET", "/files/{id}/content", None, "file", "file-missing"),
    ],
)
def test_not_found_wording(
    http: httpx.Client,
    thread_id: str,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    kind: str,
    missing: str,
) -> None:
    url = path.format(id=missing, thread=thread_id)
    response = http.request(method, url, json=body)
    error = assert_error(response, 404)
    assert error["message"] == f"No {kind} found with id '{missing}'."
    assert error["param"] is None
    assert error["code"] is None


def test_message_of_another_thread_is_not_found(client: openai.OpenAI, http: httpx.Client) -> None:
    first = client.beta.threads.create()
    second = client.beta.threads.create()
    message = client.beta.threads.messages.create(first.id, role="user", content="hi")
    response = http.get(f"/threads/{second.id}/messages/{message.id}")
    error = assert_error(response, 404)
    assert error["message"] == f"No message found with id '{message.id}'."


def test_deleted_objects_are_not_found(client: openai.OpenAI, http: httpx.Client) -> None:
    assistant = client.beta.assistants.create(model="gpt-4o")
    client.beta.assistants.delete(assistant.id)
    error = assert_error(http.get(f"/assistants/{assistant.id}"), 404)
    assert error["message"] == f"No assistant found with id '{assistant.id}'."
    error = assert_error(http.delete(f"/assistants/{assistant.id}"), 404)
    assert error["message"] == f"No assistant found with id '{assistant.id}'."


def test_sdk_not_found_errors(client: openai.OpenAI) -> None:
    thread = client.beta.threads.create()
    calls = [
        (lambda: client.beta.assistants.retrieve("asst_nope"), "assistant", "asst_nope"),
        (lambda: client.beta.threads.retrieve("thread_nope"), "thread", "thread_nope"),
        (
            lambda: client.beta.threads.messages.retrieve("msg_nope", thread_id=thread.id),
            "message",
            "msg_nope",
        ),
        (lambda: client.files.retrieve("file-nope"), "file", "file-nope"),
        (lambda: client.beta.assistants.delete("asst_nope"), "assistant", "asst_nope"),
    ]
    for call, kind, missing in calls:
        with pytest.raises(openai.NotFoundError) as caught:
            call()
        err = caught.value
        assert err.status_code == 404
        assert err.message.startswith("Error code: 404 - ")
        assert err.body == {
            "message": f"No {kind} found with id '{missing}'.",
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        }
        assert err.code is None
        assert err.param is None


# ---- 413 --------------------------------------------------------------------------------


def _oversized_json() -> bytes:
    filler = "x" * (deps.MAX_JSON_BYTES + 1 - len('{"model":"gpt-4o","instructions":""}'))
    raw = ('{"model":"gpt-4o","instructions":"' + filler + '"}').encode()
    assert len(raw) == deps.MAX_JSON_BYTES + 1
    return raw


def test_json_body_over_the_limit(http: httpx.Client) -> None:
    response = http.post(
        "/assistants", content=_oversized_json(), headers={"Content-Type": "application/json"}
    )
    error = assert_error(response, 413)
    assert str(deps.MAX_JSON_BYTES) in error["message"]
    # Nothing was created.
    assert http.get("/assistants").json()["data"] == []


def test_chunked_json_body_over_the_limit(http: httpx.Client) -> None:
    raw = _oversized_json()

    def chunks() -> Iterator[bytes]:
        view = memoryview(raw)
        for start in range(0, len(raw), 256 * 1024):
            yield bytes(view[start : start + 256 * 1024])

    response = http.post(
        "/assistants", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert "content-length" not in response.request.headers
    assert_error(response, 413)
    assert http.get("/assistants").json()["data"] == []


def test_json_body_at_the_limit_is_read(http: httpx.Client) -> None:
    # Exactly MAX_JSON_BYTES is allowed through to validation (which then rejects the
    # instructions as too long: 400, not 413).
    raw = _oversized_json()
    at_limit = raw[: deps.MAX_JSON_BYTES - 2] + b'"}'
    assert len(at_limit) == deps.MAX_JSON_BYTES
    response = http.post(
        "/assistants", content=at_limit, headers={"Content-Type": "application/json"}
    )
    assert_error(response, 400, param="instructions", code="string_above_max_length")


# ---- x-request-id -----------------------------------------------------------------------


def test_every_response_carries_a_request_id(server: LiveServer, http: httpx.Client) -> None:
    responses = [
        http.post("/assistants", json={"model": "gpt-4o"}),  # 200
        http.get("/assistants"),  # 200 list
        http.post("/assistants", json={}),  # 400
        http.get("/assistants/asst_missing"),  # 404
        http.get("/nope"),  # 404 route
        http.put("/assistants"),  # wrong method
        httpx.get(f"{server.base_url}/assistants", timeout=30),  # 401
        httpx.get(f"http://127.0.0.1:{server.port}/healthz", timeout=30),
    ]
    seen = set()
    for response in responses:
        request_id = response.headers.get("x-request-id")
        assert request_id is not None, (response.request.url, response.status_code)
        assert REQUEST_ID.match(request_id), request_id
        seen.add(request_id)
    assert len(seen) == len(responses)


def test_sdk_exposes_the_request_id(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.beta.assistants.retrieve("asst_missing")
    assert REQUEST_ID.match(caught.value.response.headers["x-request-id"])
    raw = client.beta.assistants.with_raw_response.list()
    assert REQUEST_ID.match(raw.headers["x-request-id"])


def test_sdk_request_id_attribute(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.beta.assistants.retrieve("asst_missing")
    assert caught.value.request_id == caught.value.response.headers["x-request-id"]
    created = client.beta.assistants.create(model="gpt-4o")
    assert created._request_id is not None
    assert REQUEST_ID.match(created._request_id)


# ---- 500 --------------------------------------------------------------------------------

SECRET = "secret internal detail /etc/x"


class ExplodingBlobs:
    """A blob store that fails like a broken disk, with a message that must not leak."""

    def __init__(self, root: Path) -> None:
        self.inner = LocalBlobStore(root)
        self.fail = True

    async def put(self, key: str, source: BinaryIO) -> StoredBlob:
        if self.fail:
            raise RuntimeError(SECRET)
        return await self.inner.put(key, source)

    async def open(self, key: str) -> Any:
        if self.fail:
            raise RuntimeError(SECRET)
        return await self.inner.open(key)

    async def delete(self, key: str) -> None:
        await self.inner.delete(key)


class BrokenServer(LiveServer):
    """A LiveServer whose services were built with an exploding blob store."""

    def __init__(self, settings: Settings) -> None:
        self.blobs = ExplodingBlobs(settings.blob_dir)
        super().__init__(settings, blobs=self.blobs)


@pytest.fixture(scope="module")
def broken(backend: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokenServer]:
    settings = make_settings(tmp_path_factory.mktemp("broken"), database_url=backend.database_url)
    live = BrokenServer(settings).start()
    try:
        yield live
    finally:
        live.stop()


@pytest.fixture
def broken_http(broken: BrokenServer) -> Iterator[httpx.Client]:
    key = broken.new_key("proj_" + secrets.token_hex(6))
    with httpx.Client(
        base_url=broken.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=30
    ) as raw:
        yield raw


def _upload(raw: httpx.Client) -> httpx.Response:
    return raw.post(
        "/files",
        data={"purpose": "assistants"},
        files={"file": ("notes.txt", io.BytesIO(b"hello"), "text/plain")},
    )


def assert_server_error(response: httpx.Response) -> None:
    error = assert_error(response, 500)
    assert error == {
        "message": SERVER_ERROR_MESSAGE,
        "type": "server_error",
        "param": None,
        "code": None,
    }
    assert "secret" not in response.text
    assert "/etc/x" not in response.text
    assert "RuntimeError" not in response.text
    assert "Traceback" not in response.text
    assert response.headers["content-type"] == "application/json"
    assert REQUEST_ID.match(response.headers["x-request-id"])


def test_unexpected_exception_is_a_500_envelope(
    broken: BrokenServer, broken_http: httpx.Client
) -> None:
    broken.blobs.fail = True
    response = _upload(broken_http)
    assert_server_error(response)
    # The server keeps serving, and nothing half-made is visible.
    assert broken_http.get("/files").json()["data"] == []
    created = broken_http.post("/assistants", json={"model": "gpt-4o"})
    assert created.status_code == 200, created.text
    assert broken_http.get(f"/assistants/{created.json()['id']}").status_code == 200
    assert_server_error(_upload(broken_http))  # and fails the same way again
    assert broken_http.get("/files").status_code == 200


def test_unexpected_exception_while_opening_a_download(
    broken: BrokenServer, broken_http: httpx.Client
) -> None:
    broken.blobs.fail = False
    uploaded = _upload(broken_http)
    assert uploaded.status_code == 200, uploaded.text
    file_id = uploaded.json()["id"]
    broken.blobs.fail = True
    try:
        assert_server_error(broken_http.get(f"/files/{file_id}/content"))
        assert broken_http.get(f"/files/{file_id}").status_code == 200
    finally:
        broken.blobs.fail = False
    download = broken_http.get(f"/files/{file_id}/content")
    assert download.status_code == 200
    assert download.content == b"hello"


def test_sdk_internal_server_error(broken: BrokenServer) -> None:
    broken.blobs.fail = True
    key = broken.new_key("proj_" + secrets.token_hex(6))
    with openai.OpenAI(
        base_url=broken.base_url, api_key=key, max_retries=0, _strict_response_validation=True
    ) as sdk:
        with pytest.raises(openai.InternalServerError) as caught:
            sdk.files.create(file=("a.txt", b"abc"), purpose="assistants")
        assert caught.value.status_code == 500
        assert caught.value.type == "server_error"
        assert SECRET not in str(caught.value)
        assert sdk.beta.assistants.list().data == []
