"""Helpers for test_bad_input.py: requests no HTTP library sends, a zip bomb, bulk messages."""

from __future__ import annotations

import functools
import io
import socket
import zipfile

import httpx
import openai

from assistd.protocol.messages import CreateMessageRequest
from assistd.services.messages import insert_message
from tests.conftest import LiveServer
from tests.unit.test_parsers import forge_size, make_docx


def assert_healthy(server: LiveServer, client: openai.OpenAI) -> None:
    health = httpx.get(f"http://127.0.0.1:{server.port}/healthz", timeout=30)
    assert health.status_code == 200, health.text
    made = client.beta.assistants.create(model="gpt-4o", name="still-fine")
    assert client.beta.assistants.retrieve(made.id).name == "still-fine"


def post_json(http: httpx.Client, raw: bytes | str) -> httpx.Response:
    """``POST /assistants`` with these exact bytes as its JSON body."""
    body = raw.encode() if isinstance(raw, str) else raw
    return http.post("/assistants", content=body, headers={"Content-Type": "application/json"})


def raw_exchange(server: LiveServer, api_key: str, head: str, body: bytes) -> httpx.Response:
    """Send a request by hand (for bodies no HTTP library will send unfinished) and read
    the answer until the server closes the connection."""
    request = (
        f"POST /v1/assistants HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {api_key}\r\nOpenAI-Beta: assistants=v2\r\n"
        f"Content-Type: application/json\r\n{head}\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(request + body)
        received = b""
        while chunk := sock.recv(65536):  # EOF: the server closed the connection
            received += chunk
    head_part, _, content = received.partition(b"\r\n\r\n")
    status_line, *header_lines = head_part.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in header_lines)
    assert int(headers["content-length"]) == len(content), received
    return httpx.Response(int(status_line.split()[1]), headers=headers, content=content)


async def insert_messages(server: LiveServer, project: str, thread_id: str, count: int) -> None:
    """Messages written as ``POST .../messages`` writes them, in one transaction.

    The HTTP path costs about 9 ms a message here (client threads and the server share one
    interpreter), 90 s for 10,000: the bulk of the thread is written this way instead.
    """
    async with server.services.db.write() as conn:
        for i in range(count):
            request = CreateMessageRequest(role="user", content=f"message {i}")
            await insert_message(conn, project, thread_id, request)


BOMB_BYTES = 1024 * 1024 * 1024


@functools.cache
def zip_bomb() -> bytes:
    """A real .docx whose document.xml inflates to 1 GB of whitespace (about 1 MB here)."""
    source = zipfile.ZipFile(io.BytesIO(make_docx()))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as bomb:
        for info in source.infolist():
            data = source.read(info)
            if info.filename != "word/document.xml":
                bomb.writestr(info.filename, data)
                continue
            with bomb.open("word/document.xml", "w") as member:
                member.write(data[: data.rindex(b"</w:document>")])
                block = b" " * (1024 * 1024)
                for _ in range((BOMB_BYTES - len(data)) // len(block)):
                    member.write(block)
                member.write(b"</w:document>")
    return out.getvalue()


def lying_zip_bomb() -> bytes:
    """The same bomb, its headers claiming document.xml is 1 KB (as a forged zip would)."""
    return forge_size(zip_bomb(), "word/document.xml", 1024)


BOUNDARY = "bad-input-boundary"


def multipart_upload(http: httpx.Client, filename: bytes, data: bytes) -> httpx.Response:
    """A hand-built form: httpx would percent-encode a NUL in the file name."""
    body = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\n'
        f"assistants\r\n--{BOUNDARY}\r\n".encode()
        + b'Content-Disposition: form-data; name="file"; filename="'
        + filename
        + b'"\r\nContent-Type: text/plain\r\n\r\n'
        + data
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )
    return http.post(
        "/files",
        content=body,
        headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
    )
