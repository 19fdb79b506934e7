"""Bad input, on a live server (SQLite and PostgreSQL): oversized and endless bodies, deep
nesting, text that is not text, metadata past OpenAI's limits, a 10,000-message thread,
a zip bomb, a broken PDF, an empty file and hostile file names.

Each case gets a clear error in OpenAI's envelope (or, for files, a vector store file that
fails with a clear ``last_error``), and is followed by ``assert_healthy``: the server still
answers ``/healthz`` and a normal SDK call in the same project.
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
import random
import resource
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import openai
import pytest

from assistd.backends.scripted import text_reply
from assistd.http import deps
from assistd.http.json_input import MAX_JSON_DEPTH
from assistd.retrieval.parsers import MAX_UNZIPPED_BYTES
from tests.api.bad_input_support import (
    BOMB_BYTES,
    assert_healthy,
    insert_messages,
    lying_zip_bomb,
    multipart_upload,
    post_json,
    raw_exchange,
    zip_bomb,
)
from tests.api.run_support import new_model, wait_run
from tests.api.vs_support import LONG_TEXT, finished, stores, upload
from tests.conftest import LiveServer, assert_error
from tests.unit.test_parsers import make_docx, make_pdf


@pytest.fixture
def server_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """What the server logged at WARNING and above (it runs in this process)."""
    caplog.set_level(logging.WARNING)
    return caplog


def assert_nothing_unhandled(caplog: pytest.LogCaptureFixture) -> None:
    for record in caplog.records:
        assert "unhandled error" not in record.getMessage(), record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            raise AssertionError(f"logged {record.exc_info[1]!r}")


# ---- JSON bodies over the limit ------------------------------------------------------------


def test_declared_json_body_over_the_limit_is_refused_before_it_is_read(
    server: LiveServer, client: openai.OpenAI
) -> None:
    # Only the headers are sent: the 413 cannot have waited for the body.
    response = raw_exchange(
        server, client.api_key, f"Content-Length: {deps.MAX_JSON_BYTES + 1}\r\n", b""
    )
    error = assert_error(response, 413)
    assert str(deps.MAX_JSON_BYTES) in error["message"]
    assert response.headers["connection"] == "close"
    assert client.beta.assistants.list().data == []
    assert_healthy(server, client)


def test_chunked_json_body_is_refused_once_past_the_limit(
    server: LiveServer, client: openai.OpenAI
) -> None:
    # One byte past the limit is sent and the body is left unfinished (no last chunk): an
    # answer at all proves the server stopped reading as soon as the limit was passed.
    size = 256 * 1024
    chunks = [b"%x\r\n" % size + b" " * size + b"\r\n"] * (deps.MAX_JSON_BYTES // size)
    unfinished = b"".join(chunks) + b"1\r\n "
    response = raw_exchange(server, client.api_key, "Transfer-Encoding: chunked\r\n", unfinished)
    assert_error(response, 413)
    assert response.headers["connection"] == "close"
    assert client.beta.assistants.list().data == []
    assert_healthy(server, client)


def test_endless_json_body_from_a_generator(
    server: LiveServer, client: openai.OpenAI, http: httpx.Client
) -> None:
    # The SDK's own HTTP library, streaming a body that never ends: the server answers 413
    # and closes the connection, which is the only way the generator can stop.
    sent = 0

    def endless() -> Iterator[bytes]:
        nonlocal sent
        block = b" " * (64 * 1024)
        yield b'{"model": "gpt-4o", "instructions": "'
        while True:
            sent += len(block)
            yield block

    response = http.post(
        "/assistants", content=endless(), headers={"Content-Type": "application/json"}
    )
    assert "content-length" not in response.request.headers
    assert_error(response, 413)
    assert sent > deps.MAX_JSON_BYTES
    assert client.beta.assistants.list().data == []
    assert_healthy(server, client)


# ---- deeply nested JSON --------------------------------------------------------------------


def _nested_object(depth: int, leaf: str = '"x"') -> str:
    return '{"a":' * depth + leaf + "}" * depth


DEEP = 100_000
NESTED_BODIES = {
    "arrays as the body": "[" * DEEP + "]" * DEEP,
    "objects as the body": _nested_object(DEEP),
    "arrays in metadata": '{"model": "gpt-4o", "metadata": {"k": ' + "[" * DEEP + "]" * DEEP + "}}",
    "objects in metadata": '{"model": "gpt-4o", "metadata": ' + _nested_object(DEEP) + "}",
    # Below json.loads' own recursion limit, past pydantic's serializer's (about 255).
    "objects in a tool schema": json.dumps(
        {
            "model": "gpt-4o",
            "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
        }
    ).replace('"parameters": {}', '"parameters": ' + _nested_object(300)),
}


@pytest.mark.parametrize("name", list(NESTED_BODIES))
def test_deeply_nested_json(
    server: LiveServer,
    client: openai.OpenAI,
    http: httpx.Client,
    server_log: pytest.LogCaptureFixture,
    name: str,
) -> None:
    body = NESTED_BODIES[name]
    response = post_json(http, body)
    error = assert_error(response, 400)
    assert "nested too deeply" in error["message"], error
    # Past json.loads' own limit nothing says where; below it, the field is named.
    assert error["param"] == ("tools" if "tool" in name else None), error
    assert_nothing_unhandled(server_log)
    assert client.beta.assistants.list().data == []
    assert_healthy(server, client)


def test_nesting_up_to_the_limit_is_accepted(client: openai.OpenAI, http: httpx.Client) -> None:
    # The body is level 1, tools 2, the tool 3, function 4, parameters 5.
    schema: dict[str, Any] = {"type": "string"}
    depth = 5
    while depth < MAX_JSON_DEPTH:
        schema = {"type": "array", "items": schema}
        depth += 1
    tool = {"type": "function", "function": {"name": "f", "parameters": schema}}
    ok = http.post("/assistants", json={"model": "gpt-4o", "tools": [tool]})
    assert ok.status_code == 200, ok.text
    deeper = {"type": "array", "items": schema}
    tool = {"type": "function", "function": {"name": "f", "parameters": deeper}}
    refused = http.post("/assistants", json={"model": "gpt-4o", "tools": [tool]})
    assert_error(refused, 400, param="tools", code="invalid_value")


# ---- text that is not text -----------------------------------------------------------------

INVALID_UTF8 = {
    "a stray byte": b'{"model": "gpt-4o", "name": "caf\xe9"}',
    "0xff": b'{"model": "gpt-4o", "name": "\xff\xfe"}',
    "an overlong slash": b'{"model": "gpt-4o", "name": "\xc0\xaf"}',
    "an encoded surrogate": b'{"model": "gpt-4o", "name": "\xed\xa0\x80"}',
    "a cut-off sequence": b'{"model": "gpt-4o", "name": "\xe2\x82"}',
    "in a key": b'{"model": "gpt-4o", "metadata": {"\xff": "v"}}',
}


@pytest.mark.parametrize("name", list(INVALID_UTF8))
def test_invalid_utf8_body(
    server: LiveServer, client: openai.OpenAI, http: httpx.Client, name: str
) -> None:
    response = post_json(http, INVALID_UTF8[name])
    error = assert_error(response, 400)
    assert "not valid UTF-8" in error["message"], error
    assert client.beta.assistants.list().data == []
    assert_healthy(server, client)


# Valid JSON that no database (NUL: PostgreSQL) or no UTF-8 encoder (lone surrogates) can
# take: refused the same way on every database, naming where it is.
UNSTORABLE = [
    ({"model": "gpt-4o", "name": "a\x00b"}, "name"),
    ({"model": "gpt-4o", "instructions": "\x00"}, "instructions"),
    ({"model": "gpt-4o", "metadata": {"k": "a\x00"}}, "metadata.k"),
    ({"model": "gpt-4o", "metadata": {"a\x00": "v"}}, "metadata"),
    ({"model": "gpt-4o", "name": "\ud800"}, "name"),
    ({"model": "gpt-4o", "metadata": {"k": "x\udfff"}}, "metadata.k"),
    (
        {
            "model": "gpt-4o",
            "tools": [
                {"type": "function", "function": {"name": "f", "parameters": {"x": "\ud83d"}}}
            ],
        },
        "tools[0].function.parameters.x",
    ),
]


@pytest.mark.parametrize(("body", "param"), UNSTORABLE)
def test_strings_no_database_can_store(
    server: LiveServer,
    client: openai.OpenAI,
    http: httpx.Client,
    server_log: pytest.LogCaptureFixture,
    body: dict[str, Any],
    param: str,
) -> None:
    raw = json.dumps(body).encode()  # ensure_ascii: \\u0000 and \\ud800 as escapes
    response = post_json(http, raw)
    error = assert_error(response, 400, param=param, code="invalid_value")
    assert "null character" in error["message"] or "surrogate" in error["message"]
    assert_nothing_unhandled(server_log)
    assert_healthy(server, client)


def test_escaped_text_that_is_fine_is_kept(client: openai.OpenAI, http: httpx.Client) -> None:
    # Surrogate pairs (how ensure_ascii writes an emoji) and other escapes are text.
    raw = json.dumps({"model": "gpt-4o", "name": "ok 😀 é \u0001", "metadata": {"k": "\\u0000"}})
    response = post_json(http, raw)
    assert response.status_code == 200, response.text
    assert response.json()["name"] == "ok 😀 é \u0001"
    assert response.json()["metadata"] == {"k": "\\u0000"}


@pytest.mark.parametrize(
    "path",
    [
        "/assistants/asst_%00",
        "/files/file-%00",
        "/threads/thread_%00/messages",
        "/vector_stores/vs_%00/files",
        "/assistants?after=%00",
        "/threads/thread_x/messages?run_id=run_%00",
    ],
)
def test_null_character_in_the_url(
    server: LiveServer, client: openai.OpenAI, http: httpx.Client, path: str
) -> None:
    assert_error(http.get(path), 400, code="invalid_value")
    assert_healthy(server, client)


# ---- metadata past OpenAI's limits ---------------------------------------------------------

BAD_METADATA: list[tuple[Any, str]] = [
    ({f"k{i}": "v" for i in range(17)}, "object_above_max_properties"),
    ({"k" * 65: "v"}, "string_above_max_length"),
    ({"k": "v" * 513}, "string_above_max_length"),
    ({"k": 1}, "invalid_type"),
]


def _metadata_calls(server: LiveServer, client: openai.OpenAI) -> dict[str, Callable[[Any], Any]]:
    """For each object that takes metadata, a create and a modify sending ``metadata``."""
    model = new_model()
    assistant = client.beta.assistants.create(model=model)
    thread = client.beta.threads.create()
    message = client.beta.threads.messages.create(thread.id, role="user", content="hi")
    server.scripted.queue(text_reply("done"), model=model)
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id)
    assert run.status == "completed"
    store = stores(client).create(name="kb")
    runs = client.beta.threads.runs
    return {
        "assistant create": lambda m: client.beta.assistants.create(model=model, metadata=m),
        "assistant modify": lambda m: client.beta.assistants.update(assistant.id, metadata=m),
        "thread create": lambda m: client.beta.threads.create(metadata=m),
        "thread modify": lambda m: client.beta.threads.update(thread.id, metadata=m),
        "message create": lambda m: client.beta.threads.messages.create(
            thread.id, role="user", content="x", metadata=m
        ),
        "message modify": lambda m: client.beta.threads.messages.update(
            message.id, thread_id=thread.id, metadata=m
        ),
        "run create": lambda m: runs.create(thread.id, assistant_id=assistant.id, metadata=m),
        "run modify": lambda m: runs.update(run.id, thread_id=thread.id, metadata=m),
        "vector store create": lambda m: stores(client).create(metadata=m),
        "vector store modify": lambda m: stores(client).update(store.id, metadata=m),
    }


def test_metadata_past_openai_limits_on_every_object(
    server: LiveServer, client: openai.OpenAI
) -> None:
    calls = _metadata_calls(server, client)
    before = {
        "assistants": len(client.beta.assistants.list().data),
        "stores": len(stores(client).list().data),
    }
    for name, call in calls.items():
        for metadata, code in BAD_METADATA:
            with pytest.raises(openai.BadRequestError) as caught:
                call(metadata)
            error = caught.value
            assert error.code == code, (name, metadata, error.body)
            assert error.param == "metadata" or str(error.param).startswith("metadata."), (
                name,
                error.body,
            )
    # Nothing was created or changed by the refused calls.
    assert len(client.beta.assistants.list().data) == before["assistants"]
    assert len(stores(client).list().data) == before["stores"]
    assert_healthy(server, client)


# ---- 10,000 messages in a thread -----------------------------------------------------------

MANY = 10_000
VIA_API = 200


def test_ten_thousand_messages_in_a_thread(
    server: LiveServer, client: openai.OpenAI, http: httpx.Client
) -> None:
    thread = client.beta.threads.create()
    url = f"/threads/{thread.id}/messages"
    project = http.get("/assistants").headers["openai-project"]
    server.call(insert_messages(server, project, thread.id, MANY - VIA_API))

    def add(start: int) -> list[str]:
        made = []
        with httpx.Client(base_url=str(http.base_url), headers=http.headers, timeout=60) as own:
            for i in range(MANY - VIA_API + start, MANY, 4):
                response = own.post(url, json={"role": "user", "content": f"message {i}"})
                assert response.status_code == 200, response.text
                made.append(response.json()["id"])
        return made

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        via_api = {m for part in pool.map(add, range(4)) for m in part}
    assert len(via_api) == VIA_API

    # Every message comes back once, 100 to a page, newest first, in order.
    seen: list[dict[str, Any]] = []
    after: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 100}
        if after:
            params["after"] = after
        page = http.get(url, params=params).json()
        seen += page["data"]
        if not page["has_more"]:
            break
        after = page["last_id"]
    assert len(seen) == MANY
    assert len({m["id"] for m in seen}) == MANY
    assert via_api <= {m["id"] for m in seen}
    assert [m["created_at"] for m in seen] == sorted((m["created_at"] for m in seen), reverse=True)

    # A run on it completes; with a prompt budget, the oldest messages are dropped to fit.
    model = new_model()
    assistant = client.beta.assistants.create(model=model)
    server.scripted.queue(text_reply("read them all"), model=model)
    run = client.beta.threads.runs.create(
        thread.id, assistant_id=assistant.id, max_prompt_tokens=2000
    )
    run = wait_run(client, run, {"completed", "failed", "incomplete"}, timeout=60)
    assert run.status == "completed", run.last_error
    sent = server.scripted.requests_for(model)[-1].messages
    assert 10 < len(sent) < 1000
    assert sent[-1] == {"role": "user", "content": seen[0]["content"][0]["text"]["value"]}
    reply = client.beta.threads.messages.list(thread.id, limit=1).data[0]
    assert reply.role == "assistant"
    # With no budget (the scripted model declares no context window), all of them are sent.
    server.scripted.queue(text_reply("all of them"), model=model)
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id)
    assert run.status == "completed", run.last_error
    assert len(server.scripted.requests_for(model)[-1].messages) == MANY + 1

    assert client.beta.threads.delete(thread.id).deleted
    assert_error(http.get(url), 404)
    assert_healthy(server, client)


# ---- files: a zip bomb, a broken PDF, an empty file ----------------------------------------


def _peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def _ingest(client: openai.OpenAI, store_id: str, file_ids: list[str]) -> dict[str, Any]:
    for file_id in file_ids:
        stores(client).files.create(vector_store_id=store_id, file_id=file_id)
    return {file_id: finished(client, store_id, file_id) for file_id in file_ids}


@pytest.mark.parametrize("variant", ["honest sizes", "lying sizes"])
def test_zip_bomb_docx(server: LiveServer, client: openai.OpenAI, variant: str) -> None:
    bomb = zip_bomb() if variant == "honest sizes" else lying_zip_bomb()
    assert len(bomb) < server.settings.max_upload_bytes
    store = stores(client).create(name="kb")
    good_id = upload(client, "good.txt", LONG_TEXT)
    done = _ingest(client, store.id, [good_id])  # the embedder is loaded (once) by now
    bomb_id = upload(client, "bomb.docx", bomb)
    real_id = upload(client, "real.docx", make_docx())
    peak_before = _peak_rss()
    done |= _ingest(client, store.id, [bomb_id, real_id])
    # Inflating the bomb would have taken 1 GB; the cap keeps it far below that.
    assert _peak_rss() - peak_before < BOMB_BYTES // 4

    failed = done[bomb_id]
    assert failed.status == "failed"
    assert failed.last_error is not None
    assert failed.last_error.code == "invalid_file"
    if variant == "honest sizes":
        limit = MAX_UNZIPPED_BYTES // (1024 * 1024)
        assert failed.last_error.message == (
            f"Could not parse DOCX: the file expands to more than {limit} MB."
        )
    else:
        assert failed.last_error.message == "Could not parse DOCX: the file is corrupt."
    assert done[good_id].status == "completed"
    assert done[real_id].status == "completed"
    counts = stores(client).retrieve(store.id).file_counts
    assert (counts.completed, counts.failed) == (2, 1)
    assert_healthy(server, client)


MALFORMED_PDFS = {
    "a header and garbage": b"%PDF-1.7\n" + random.Random(7).randbytes(4096),
    "the first 120 bytes of a PDF": make_pdf(["Quarterly figures"])[:120],
    "random bytes named .pdf": random.Random(8).randbytes(4096),
    "a PDF with no pages": b"%PDF-1.4\n%%EOF\n",
}


@pytest.mark.parametrize("name", list(MALFORMED_PDFS))
def test_malformed_pdf(server: LiveServer, client: openai.OpenAI, name: str) -> None:
    store = stores(client).create(name="kb")
    bad_id = upload(client, "report.pdf", MALFORMED_PDFS[name])
    good_id = upload(client, "good.pdf", make_pdf(["The leave policy is 25 days."]))
    done = _ingest(client, store.id, [bad_id, good_id])
    failed = done[bad_id]
    assert failed.status == "failed"
    assert failed.last_error is not None
    assert failed.last_error.code == "invalid_file"
    assert failed.last_error.message.startswith("Could not parse PDF"), failed.last_error
    assert done[good_id].status == "completed"
    # The upload itself is untouched: the bytes come back as they were sent.
    assert client.files.content(bad_id).content == MALFORMED_PDFS[name]
    assert_healthy(server, client)


def test_empty_file(server: LiveServer, client: openai.OpenAI) -> None:
    # OpenAI's reference leaves this open; assistd accepts the upload (it is a file) and
    # its ingestion fails clearly: an empty document has nothing to search.
    created = client.files.create(file=("empty.txt", b""), purpose="assistants")
    assert created.bytes == 0
    assert client.files.retrieve(created.id).bytes == 0
    assert client.files.content(created.id).content == b""
    store = stores(client).create(name="kb")
    good_id = upload(client, "good.txt", LONG_TEXT)
    done = _ingest(client, store.id, [created.id, good_id])
    failed = done[created.id]
    assert failed.status == "failed"
    assert failed.last_error is not None
    assert (failed.last_error.code, failed.last_error.message) == (
        "invalid_file",
        "The file is empty.",
    )
    assert done[good_id].status == "completed"
    assert_healthy(server, client)


# ---- file names with path separators -------------------------------------------------------

HOSTILE_NAMES = [
    (b"../../etc/passwd", "passwd"),
    (b"a/b.txt", "b.txt"),
    (b"C:\\\\x\\\\y.txt", "y.txt"),  # a quoted-string escapes each backslash
    (b"/abs/olute.txt", "olute.txt"),
    (b"..\\\\..\\\\boot.ini", "boot.ini"),
    (b"nul\x00byte.txt", "nulbyte.txt"),
    (b"../../a\x00/../b\x00c.txt", "bc.txt"),
    (b"tab\tand\x1fcontrols.txt", "tabandcontrols.txt"),
]


def test_file_names_with_path_separators(
    server: LiveServer, client: openai.OpenAI, http: httpx.Client
) -> None:
    blob_dir = server.settings.blob_dir
    made: list[str] = []
    for index, (sent, shown) in enumerate(HOSTILE_NAMES):
        data = f"contents {index}\n".encode()
        response = multipart_upload(http, sent, data)
        assert response.status_code == 200, (sent, response.text)
        body = response.json()
        assert body["filename"] == shown, sent
        assert client.files.retrieve(body["id"]).filename == shown
        assert client.files.content(body["id"]).content == data
        made.append(body["id"])
    # The SDK's way of sending the same names (httpx escapes the NUL as %00).
    created = client.files.create(file=("../../etc/passwd", b"sdk"), purpose="assistants")
    assert created.filename == "passwd"
    made.append(created.id)

    # Blobs are named by file id under the blob directory, and nothing else is written.
    for path in blob_dir.rglob("*"):
        if path.is_file():
            relative = path.relative_to(blob_dir)
            assert len(relative.parts) == 2, relative
            assert relative.parts[0] == relative.parts[1][-2:], relative
            assert relative.parts[1].startswith("file-"), relative
    for file_id in made:
        assert (blob_dir / file_id[-2:] / file_id).is_file()
    data_root = server.settings.data_dir.parent
    strays = [p for p in data_root.rglob("*") if p.name in {"passwd", "b.txt", "y.txt", "boot.ini"}]
    assert strays == []
    assert_healthy(server, client)


def test_a_name_that_is_only_separators_or_controls(
    server: LiveServer, client: openai.OpenAI, http: httpx.Client
) -> None:
    for sent in (b"../../", b"\x00\x01", b"dir/"):
        response = multipart_upload(http, sent, b"abc")
        assert_error(response, 400, param="file", code="missing_required_parameter")
    assert client.files.list().data == []
    assert_healthy(server, client)


def test_bad_bodies_in_a_row_on_one_connection(
    server: LiveServer, client: openai.OpenAI, http: httpx.Client
) -> None:
    # Each refusal leaves the kept-alive connection usable for the next request.
    for body in (*INVALID_UTF8.values(), b"[" * 5000, b"{", b"\x00"):
        response = post_json(http, body)
        assert_error(response, 400)
    assert http.get("/assistants").json()["data"] == []
    assert_healthy(server, client)
