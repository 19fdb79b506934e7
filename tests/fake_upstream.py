"""A scripted OpenAI-compatible Chat Completions (and embeddings) server on a loopback port.

Tests queue replies (streamed text, tool calls, HTTP errors, slow or hanging streams), point
a backend at ``upstream.base_url`` and afterwards inspect ``upstream.requests``::

    with FakeUpstream() as upstream:
        upstream.queue(text_reply("Hello there"), error_reply(429, times=2))
        ...
        assert upstream.requests[0].body["model"] == "gpt-4o"

A raw ASGI app on uvicorn (its own thread and event loop, as ``LiveServer`` in conftest)
rather than Starlette, so that it can watch for the client's disconnect while it streams.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import uvicorn

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_WORDS = re.compile(r"\S+\s*|\s+")


@dataclass
class FakeToolCall:
    name: str
    arguments: dict[str, Any] | str = field(default_factory=dict)
    id: str | None = None


@dataclass
class FakeReply:
    """One scripted answer to ``POST /chat/completions``.

    Attributes:
        text: Streamed word by word (one chunk per word with its trailing space).
        tool_calls: Each streams as an introduction (index, id, name) then argument pieces
            of ``piece_size`` characters; several calls get indexes 0, 1...
        finish_reason: Defaults to ``tool_calls`` when there are calls, else ``stop``.
        usage: ``(prompt_tokens, completion_tokens)``; default counts words. Sent in a final
            chunk with empty ``choices`` only when the request asked for
            ``stream_options.include_usage``.
        status: Anything but 200 answers OpenAI's error envelope with ``error_message``.
        headers: Extra response headers (e.g. ``{"Retry-After": "0"}``).
        times: How many requests this reply answers before the next queued one.
        delay: Seconds to wait before each streamed event.
        hang: After the content, keep the stream open (no finish, no ``[DONE]``) until the
            client disconnects or the server stops.
        raw: Send these strings verbatim as the SSE body instead (for parser tests).
    """

    text: str = ""
    tool_calls: list[FakeToolCall] = field(default_factory=list)
    finish_reason: str | None = None
    usage: tuple[int, int] | None = None
    status: int = 200
    error_message: str = "Scripted upstream error."
    error_type: str | None = None
    error_code: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    times: int = 1
    delay: float = 0.0
    hang: bool = False
    raw: list[str] | None = None
    piece_size: int = 8


def text_reply(text: str, **kwargs: Any) -> FakeReply:
    return FakeReply(text=text, **kwargs)


def tool_reply(*calls: FakeToolCall | tuple[str, dict[str, Any]], **kwargs: Any) -> FakeReply:
    made = [c if isinstance(c, FakeToolCall) else FakeToolCall(c[0], c[1]) for c in calls]
    return FakeReply(tool_calls=made, **kwargs)


def error_reply(status: int, message: str = "Scripted upstream error.", **kwargs: Any) -> FakeReply:
    return FakeReply(status=status, error_message=message, **kwargs)


@dataclass
class RecordedRequest:
    """What the server received, and how the exchange ended."""

    method: str
    path: str
    headers: dict[str, str]  # lower-cased names
    body: Any  # parsed JSON, or None
    client_port: int = 0  # tells whether two requests shared a pooled connection
    disconnected: bool = False  # the client went away before the response was complete
    completed: bool = False


class FakeUpstream:
    """The server. ``start()``/``stop()`` or use it as a context manager.

    Args:
        base_path: Where the API lives (``base_url`` is ``http://127.0.0.1:PORT{base_path}``).
        models: Ids listed by ``GET {base_path}/models``.
        api_key: When set, requests without ``Authorization: Bearer <api_key>`` get a 401.
        responder: Called with the request body when the queue is empty; its reply is used.
    """

    default_text = "Hello from the fake upstream."

    def __init__(
        self,
        *,
        base_path: str = "/v1",
        models: list[str] | None = None,
        api_key: str | None = None,
        responder: Callable[[Any], FakeReply] | None = None,
    ) -> None:
        self.base_path = base_path.rstrip("/")
        self.models = models or ["fake-model"]
        self.api_key = api_key
        self.responder = responder
        self.replies: deque[FakeReply] = deque()
        self.requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._disconnect = threading.Condition(self._lock)
        self._closing: asyncio.Event | None = None
        self._loop = asyncio.new_event_loop()
        config = uvicorn.Config(
            self._app,
            host="127.0.0.1",
            port=0,
            lifespan="off",
            interface="asgi3",  # a bound method is not detected as ASGI 3
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=5,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, name="fake-upstream", daemon=True)
        self.port = 0

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> FakeUpstream:
        self._thread.start()
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError("fake upstream failed to start")
            time.sleep(0.01)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            # Ends hanging streams first, so uvicorn's graceful shutdown does not wait on them.
            if self._closing is not None:
                self._loop.call_soon_threadsafe(self._closing.set)
            self._server.should_exit = True
            self._thread.join(timeout=30)
        self._loop.close()

    def __enter__(self) -> FakeUpstream:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._closing = asyncio.Event()
        self._loop.run_until_complete(self._server.serve())

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.base_path}"

    # -- scripting and observation -------------------------------------------------------

    def queue(self, *replies: FakeReply) -> None:
        with self._lock:
            self.replies.extend(replies)

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    @property
    def disconnects(self) -> int:
        return sum(r.disconnected for r in self.requests)

    def wait_for_disconnect(self, count: int = 1, timeout: float = 5.0) -> bool:
        """Block until ``count`` responses were cut short by their client; False on timeout."""
        with self._disconnect:
            return self._disconnect.wait_for(lambda: self.disconnects >= count, timeout)

    def _next_reply(self, body: Any) -> FakeReply:
        with self._lock:
            if self.replies:
                reply = self.replies[0]
                reply.times -= 1
                if reply.times <= 0:
                    self.replies.popleft()
                return reply
        if self.responder is not None:
            return self.responder(body)
        return FakeReply(text=self.default_text)

    # -- the ASGI app --------------------------------------------------------------------

    async def _app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        raw = b""
        while True:
            message = await receive()
            raw += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        client = scope.get("client") or ("", 0)
        record = RecordedRequest(scope["method"], scope["path"], headers, body, client[1])
        self.requests.append(record)
        path, method = scope["path"], scope["method"]
        if self.api_key and headers.get("authorization") != f"Bearer {self.api_key}":
            await _error(send, 401, "Incorrect API key provided.", "invalid_api_key")
        elif method == "GET" and path == f"{self.base_path}/models":
            data = [
                {"id": m, "object": "model", "created": 0, "owned_by": "fake"} for m in self.models
            ]
            await _json_response(send, 200, {"object": "list", "data": data})
        elif method == "POST" and path == f"{self.base_path}/embeddings":
            await self._embeddings(body, send)
        elif method == "POST" and path == f"{self.base_path}/chat/completions":
            await self._chat(body, record, receive, send)
            return
        else:
            await _error(send, 404, f"Unknown path {method} {path}.", "not_found")
        record.completed = True

    async def _chat(self, body: Any, record: RecordedRequest, receive: Receive, send: Send) -> None:
        reply = self._next_reply(body)
        extra = [(k.lower().encode(), v.encode()) for k, v in reply.headers.items()]
        if reply.status != 200:
            await _error(
                send, reply.status, reply.error_message, reply.error_code, reply.error_type, extra
            )
            record.completed = True
            return
        body = body if isinstance(body, dict) else {}
        events = reply.raw if reply.raw is not None else _sse_events(reply, body)
        start = {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/event-stream"), *extra],
        }
        await send(start)
        gone = asyncio.ensure_future(_disconnected(receive))
        try:
            for event in events:
                if reply.delay and await _within(gone, reply.delay):
                    return self._cut(record)
                if gone.done():
                    return self._cut(record)
                await send(
                    {"type": "http.response.body", "body": event.encode(), "more_body": True}
                )
            if reply.hang:
                assert self._closing is not None
                closing = asyncio.ensure_future(self._closing.wait())
                await asyncio.wait({gone, closing}, return_when=asyncio.FIRST_COMPLETED)
                closing.cancel()
                if gone.done():
                    return self._cut(record)
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            record.completed = True
        finally:
            gone.cancel()

    async def _embeddings(self, body: Any, send: Send) -> None:
        """Queued replies give the status (errors, 429s); vectors are ``fake_embedding``'s."""
        reply = self._next_reply(body)
        extra = [(k.lower().encode(), v.encode()) for k, v in reply.headers.items()]
        if reply.status != 200:
            await _error(
                send, reply.status, reply.error_message, reply.error_code, reply.error_type, extra
            )
            return
        body = body if isinstance(body, dict) else {}
        raw = body.get("input")
        items = [raw] if isinstance(raw, str) or (raw and isinstance(raw[0], int)) else raw or []
        size = int(body.get("dimensions") or 8)
        data = [
            {"object": "embedding", "index": i, "embedding": fake_embedding(item, size)}
            for i, item in enumerate(items)
        ]
        tokens = sum(len(i.split()) if isinstance(i, str) else len(i) for i in items)
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        payload = {"object": "list", "data": data, "model": body.get("model"), "usage": usage}
        await _json_response(send, 200, payload, extra)

    def _cut(self, record: RecordedRequest) -> None:
        with self._disconnect:
            record.disconnected = True
            self._disconnect.notify_all()


def fake_embedding(item: Any, size: int = 8) -> list[float]:
    """The vector the fake upstream answers for one input: a digest of it, as floats."""
    digest = hashlib.sha256(json.dumps(item).encode()).digest()
    return [(digest[i % len(digest)] - 128) / 128 for i in range(size)]


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _within(task: asyncio.Future[None], seconds: float) -> bool:
    """Wait ``seconds`` unless ``task`` finishes first; True when it did."""
    done, _ = await asyncio.wait({task}, timeout=seconds)
    return bool(done)


async def _json_response(
    send: Send, status: int, payload: Any, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    data = json.dumps(payload).encode()
    headers = [(b"content-type", b"application/json"), *(extra or [])]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


async def _error(
    send: Send,
    status: int,
    message: str,
    code: str | None = None,
    error_type: str | None = None,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    kind = error_type or ("server_error" if status >= 500 else "invalid_request_error")
    envelope = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    await _json_response(send, status, envelope, extra)


def _sse_events(reply: FakeReply, request: dict[str, Any]) -> list[str]:
    """OpenAI's chunk sequence: role, content or tool-call pieces, finish, usage, [DONE]."""
    include_usage = bool((request.get("stream_options") or {}).get("include_usage"))
    base = {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": request.get("model", "fake-model"),
        "system_fingerprint": None,
    }

    def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        data: dict[str, Any] = {**base, "choices": [choice]}
        if include_usage:
            data["usage"] = None  # as OpenAI does on every chunk but the last
        return f"data: {json.dumps(data)}\n\n"

    events = [chunk({"role": "assistant", "content": ""})]
    words = _WORDS.findall(reply.text)
    events.extend(chunk({"content": word}) for word in words)
    pieces = 0
    for index, call in enumerate(reply.tool_calls):
        args = call.arguments if isinstance(call.arguments, str) else json.dumps(call.arguments)
        intro = {
            "index": index,
            "id": call.id or f"call_fake{index}",
            "type": "function",
            "function": {"name": call.name, "arguments": ""},
        }
        events.append(chunk({"tool_calls": [intro]}))
        for at in range(0, len(args), reply.piece_size):
            piece = {"index": index, "function": {"arguments": args[at : at + reply.piece_size]}}
            events.append(chunk({"tool_calls": [piece]}))
            pieces += 1
    if reply.hang:
        return events
    finish = reply.finish_reason or ("tool_calls" if reply.tool_calls else "stop")
    events.append(chunk({}, finish))
    if include_usage:
        prompt = sum(len(str(m.get("content") or "").split()) for m in request.get("messages", []))
        prompt, completion = reply.usage or (prompt, len(words) + pieces)
        usage = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }
        events.append(f"data: {json.dumps({**base, 'choices': [], 'usage': usage})}\n\n")
    events.append("data: [DONE]\n\n")
    return events
