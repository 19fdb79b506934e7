"""OpenAICompatBackend against a scripted upstream over real loopback HTTP; build_registry."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from assistd.backends.base import BackendError, ChatChunk, ChatRequest, Usage
from assistd.backends.factory import build_registry
from assistd.backends.local import LocalBackend
from assistd.backends.openai_compat import OpenAICompatBackend
from assistd.backends.registry import BackendRegistry
from assistd.config import Settings, UpstreamConfig
from assistd.errors import NotFoundError
from tests.fake_upstream import (
    FakeReply,
    FakeToolCall,
    FakeUpstream,
    error_reply,
    text_reply,
    tool_reply,
)

T = TypeVar("T")
KEY = "sk-fake-secret-key-0123456789"


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as server:
        yield server


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(asyncio.wait_for(coro, timeout=30))


def backend_for(upstream: FakeUpstream, **kwargs: Any) -> OpenAICompatBackend:
    options: dict[str, Any] = {"timeout": 10.0, "max_retries": 2, "name": "fake", "backoff": 0.01}
    return OpenAICompatBackend(upstream.base_url, KEY, **{**options, **kwargs})


def request(**kwargs: Any) -> ChatRequest:
    values: dict[str, Any] = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
    return ChatRequest(**{**values, **kwargs})


async def collect(backend: OpenAICompatBackend, req: ChatRequest | None = None) -> list[ChatChunk]:
    try:
        return [chunk async for chunk in backend.stream(req or request())]
    finally:
        await backend.aclose()


def collect_error(backend: OpenAICompatBackend) -> BackendError:
    with pytest.raises(BackendError) as caught:
        run(collect(backend))
    return caught.value


# -- streaming -------------------------------------------------------------------------


def test_text_streams_as_several_chunks_in_order(upstream: FakeUpstream) -> None:
    upstream.queue(text_reply("The quick brown fox jumps."))
    chunks = run(collect(backend_for(upstream)))
    texts = [c.text for c in chunks if c.text]
    assert texts == ["The ", "quick ", "brown ", "fox ", "jumps."]
    assert chunks[-1].finish_reason == "stop"
    assert all(c.finish_reason is None for c in chunks[:-1])


def test_chunks_are_yielded_as_they_arrive() -> None:
    # The upstream sends the first word, then holds the rest back until the backend has
    # yielded that word: a backend that buffered the response could not, so the upstream
    # would give up waiting and the words would come out after it did.
    log: list[str] = []

    def event(delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        data = {"id": "chatcmpl-gated", "object": "chat.completion.chunk", "choices": [choice]}
        return f"data: {json.dumps(data)}\n\n".encode()

    async def scenario() -> None:
        released = asyncio.Event()

        async def upstream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            head = await reader.readuntil(b"\r\n\r\n")
            (length,) = [
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            ]
            await reader.readexactly(length)
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n")
            writer.write(b"connection: close\r\n\r\n")  # the body ends when we close
            log.append("upstream: first word")
            writer.write(event({"role": "assistant", "content": ""}) + event({"content": "one "}))
            await writer.drain()
            try:
                # Only a liveness guard: without it a buffering backend would hang the test.
                await asyncio.wait_for(released.wait(), timeout=10)
                log.append("upstream: released")
            except TimeoutError:
                log.append("upstream: gave up waiting")
            writer.write(event({"content": "two"}) + event({}, "stop") + b"data: [DONE]\n\n")
            await writer.drain()
            writer.close()
            await writer.wait_closed()

        server = await asyncio.start_server(upstream, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        backend = OpenAICompatBackend(f"http://127.0.0.1:{port}/v1", KEY, max_retries=0)
        try:
            async with contextlib.aclosing(backend.stream(request())) as stream:
                async for chunk in stream:
                    if chunk.text:
                        log.append(f"backend: {chunk.text}")
                        released.set()
        finally:
            await backend.aclose()
            server.close()
            await server.wait_closed()

    run(scenario())
    assert log == [
        "upstream: first word",
        "backend: one ",
        "upstream: released",
        "backend: two",
    ]


def test_parallel_tool_call_deltas_reassemble(upstream: FakeUpstream) -> None:
    weather = {"city": "Paris", "unit": "celsius", "days": [1, 2, 3]}
    upstream.queue(
        tool_reply(
            FakeToolCall("get_weather", weather, id="call_A"),
            FakeToolCall("get_time", {"zone": "Europe/Paris"}, id="call_B"),
            piece_size=5,
        )
    )
    chunks = run(collect(backend_for(upstream)))
    calls: dict[int, dict[str, str]] = {}
    pieces = 0
    for chunk in chunks:
        for delta in chunk.tool_calls:
            call = calls.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
            call["id"] += delta.id or ""
            call["name"] += delta.name or ""
            call["arguments"] += delta.arguments
            pieces += 1
    assert pieces > 6  # streamed in pieces, not whole
    assert [calls[0]["id"], calls[0]["name"]] == ["call_A", "get_weather"]
    assert [calls[1]["id"], calls[1]["name"]] == ["call_B", "get_time"]
    assert json.loads(calls[0]["arguments"]) == weather
    assert json.loads(calls[1]["arguments"]) == {"zone": "Europe/Paris"}
    assert chunks[-1].finish_reason == "tool_calls"


def test_usage_comes_with_the_finish_reason_in_the_last_chunk(upstream: FakeUpstream) -> None:
    upstream.queue(text_reply("Hi there", usage=(12, 34), finish_reason="length"))
    chunks = run(collect(backend_for(upstream)))
    assert chunks[-1].finish_reason == "length"
    assert chunks[-1].usage == Usage(prompt_tokens=12, completion_tokens=34)
    assert all(c.usage is None for c in chunks[:-1])


def test_sse_comments_event_lines_crlf_and_multiline_data_are_handled(
    upstream: FakeUpstream,
) -> None:
    def data(obj: dict[str, Any]) -> str:
        return f"data: {json.dumps(obj)}\r\n\r\n"

    def delta(**fields: Any) -> dict[str, Any]:
        return {"choices": [{"index": 0, "delta": fields, "finish_reason": None}]}

    multiline = json.dumps(delta(content="split"), indent=1).replace("\n", "\ndata: ")
    raw = [
        ": keep-alive\n\n",
        "event: message\n" + data(delta(role="assistant", content=None)),
        data(delta(content="Hello")),
        f"data: {multiline}\n\n",
        "data:" + json.dumps(delta(content=" world")) + "\n\n",
        data({"choices": [{"index": 0, "delta": {}, "finish_reason": "function_call"}]}),
        data({"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2}}),
        "data: [DONE]\n\n",
    ]
    upstream.queue(FakeReply(raw=raw))
    chunks = run(collect(backend_for(upstream)))
    assert [c.text for c in chunks if c.text] == ["Hello", "split", " world"]
    assert chunks[-1].finish_reason == "tool_calls"
    assert chunks[-1].usage == Usage(3, 2)


def test_request_body_has_exactly_the_expected_fields(upstream: FakeUpstream) -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    full = request(
        model="my-model",
        tools=tools,
        tool_choice="required",
        parallel_tool_calls=False,
        response_format={"type": "json_object"},
        temperature=0.5,
        top_p=0.9,
        max_tokens=77,
        stop=["END"],
        reasoning_effort="low",
    )
    run(collect(backend_for(upstream), full))
    # Tools absent: parallel_tool_calls is not sent either; None fields are omitted.
    run(collect(backend_for(upstream), request(parallel_tool_calls=True)))
    first, second = upstream.chat_requests
    assert first.body == {
        "model": "my-model",
        "messages": [{"role": "user", "content": "hi"}],
        "tools": tools,
        "tool_choice": "required",
        "parallel_tool_calls": False,
        "response_format": {"type": "json_object"},
        "temperature": 0.5,
        "top_p": 0.9,
        "max_tokens": 77,
        "stop": ["END"],
        "reasoning_effort": "low",
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    assert second.body == {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    assert first.headers["authorization"] == f"Bearer {KEY}"
    assert first.path == "/v1/chat/completions"


def test_no_authorization_header_without_a_key(upstream: FakeUpstream) -> None:
    run(collect(OpenAICompatBackend(upstream.base_url, None, backoff=0.01)))
    assert "authorization" not in upstream.chat_requests[0].headers


def test_connections_are_pooled_between_streams(upstream: FakeUpstream) -> None:
    async def two_streams() -> None:
        backend = backend_for(upstream)
        try:
            for _ in range(2):
                assert [c async for c in backend.stream(request())]
        finally:
            await backend.aclose()

    run(two_streams())
    first, second = upstream.chat_requests
    assert first.client_port == second.client_port


def test_many_concurrent_streams_share_one_backend(upstream: FakeUpstream) -> None:
    async def many() -> list[str]:
        backend = backend_for(upstream)

        async def one() -> str:
            return "".join([c.text async for c in backend.stream(request())])

        try:
            return await asyncio.gather(*(one() for _ in range(60)))
        finally:
            await backend.aclose()

    assert run(many()) == [FakeUpstream.default_text] * 60


# -- errors and retries ----------------------------------------------------------------


def test_429_then_success_is_retried(upstream: FakeUpstream) -> None:
    upstream.queue(error_reply(429, "Slow down.", times=2), text_reply("Finally"))
    chunks = run(collect(backend_for(upstream)))
    assert [c.text for c in chunks if c.text] == ["Finally"]
    assert len(upstream.chat_requests) == 3


def test_retry_after_header_is_honoured(upstream: FakeUpstream) -> None:
    upstream.queue(error_reply(503, headers={"Retry-After": "0"}), text_reply("ok"))
    started = time.monotonic()
    # A 60 s backoff would time the test out: Retry-After: 0 must win.
    chunks = run(collect(backend_for(upstream, backoff=60.0)))
    assert time.monotonic() - started < 5
    assert chunks[0].text == "ok"


def test_500_exhausts_retries_as_server_error(upstream: FakeUpstream) -> None:
    upstream.queue(error_reply(500, "Upstream exploded.", times=3), text_reply("never"))
    error = collect_error(backend_for(upstream, max_retries=2))
    assert error.code == "server_error"
    assert "Upstream exploded." in error.message
    assert len(upstream.chat_requests) == 3


def test_persistent_429_is_rate_limit_exceeded(upstream: FakeUpstream) -> None:
    upstream.queue(error_reply(429, "Rate limit reached.", times=2))
    error = collect_error(backend_for(upstream, max_retries=1))
    assert error.code == "rate_limit_exceeded"
    assert "Rate limit reached." in error.message


@pytest.mark.parametrize("status", [400, 404, 422])
def test_client_errors_are_invalid_prompt_without_retry(
    upstream: FakeUpstream, status: int
) -> None:
    upstream.queue(error_reply(status, "This model's maximum context length is 8192 tokens."))
    error = collect_error(backend_for(upstream))
    assert error.code == "invalid_prompt"
    assert "maximum context length is 8192 tokens" in error.message
    assert len(upstream.chat_requests) == 1


@pytest.mark.parametrize("status", [401, 403])
def test_auth_failures_are_server_errors_that_hide_the_key(
    upstream: FakeUpstream, status: int
) -> None:
    upstream.queue(error_reply(status, f"Incorrect API key provided: {KEY}."))
    error = collect_error(backend_for(upstream))
    assert error.code == "server_error"
    assert KEY not in str(error)
    assert len(upstream.chat_requests) == 1


def test_api_key_is_scrubbed_from_upstream_messages(upstream: FakeUpstream) -> None:
    upstream.queue(error_reply(400, f"Bad request from key {KEY}, really."))
    error = collect_error(backend_for(upstream))
    assert KEY not in str(error)
    assert KEY not in repr(error.args)
    assert "Bad request from key ***, really." in error.message


def test_connection_refused_is_retried_then_server_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    backend = OpenAICompatBackend(
        f"http://127.0.0.1:{port}/v1", KEY, max_retries=1, backoff=0.01, name="gone"
    )
    error = collect_error(backend)
    assert error.code == "server_error"
    assert "gone" in error.message
    assert KEY not in error.message


def test_error_event_inside_the_stream_is_a_server_error(upstream: FakeUpstream) -> None:
    raw = ['data: {"error": {"message": "model overloaded", "type": "server_error"}}\n\n']
    upstream.queue(FakeReply(raw=raw))
    error = collect_error(backend_for(upstream))
    assert error.code == "server_error"
    assert "model overloaded" in error.message
    assert len(upstream.chat_requests) == 1


def test_stream_that_ends_without_finishing_is_retried(upstream: FakeUpstream) -> None:
    cut = 'data: {"choices": [{"index": 0, "delta": {"role": "assistant"}}]}\n\n'
    upstream.queue(FakeReply(raw=[cut], times=2), text_reply("complete"))
    chunks = run(collect(backend_for(upstream)))
    assert [c.text for c in chunks if c.text] == ["complete"]
    assert len(upstream.chat_requests) == 3


def test_failure_after_the_first_chunk_is_not_retried(upstream: FakeUpstream) -> None:
    partial = 'data: {"choices": [{"index": 0, "delta": {"content": "Hal"}}]}\n\n'
    upstream.queue(FakeReply(raw=[partial]), text_reply("must not be used"))

    async def consume() -> list[str]:
        backend = backend_for(upstream)
        seen: list[str] = []
        try:
            async for chunk in backend.stream(request()):
                seen.append(chunk.text)
        finally:
            await backend.aclose()
        return seen

    with pytest.raises(BackendError) as caught:
        run(consume())
    assert caught.value.code == "server_error"
    assert len(upstream.chat_requests) == 1


# -- closing early ---------------------------------------------------------------------


def test_early_aclose_closes_the_upstream_connection(upstream: FakeUpstream) -> None:
    upstream.queue(text_reply("first words then nothing", hang=True))

    async def read_one_then_close() -> str:
        backend = backend_for(upstream)
        try:
            stream = backend.stream(request())
            text = ""
            while not text:
                text = (await anext(stream)).text
            await stream.aclose()
            # Checked before backend.aclose(), which would drop every connection anyway.
            assert await asyncio.to_thread(upstream.wait_for_disconnect, 1, 5.0)
            return text
        finally:
            await backend.aclose()

    assert run(read_one_then_close()) == "first "
    assert not upstream.chat_requests[0].completed


def test_task_cancellation_closes_the_upstream_connection(upstream: FakeUpstream) -> None:
    upstream.queue(text_reply("a slow and steady answer", delay=0.2))

    async def cancel_midway() -> None:
        backend = backend_for(upstream)
        got_text = asyncio.Event()

        async def consume() -> None:
            async for chunk in backend.stream(request()):
                if chunk.text:
                    got_text.set()

        task = asyncio.create_task(consume())
        try:
            await got_text.wait()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert await asyncio.to_thread(upstream.wait_for_disconnect, 1, 5.0)
        finally:
            await backend.aclose()

    run(cancel_midway())


def test_cancellation_during_backoff_stops_retrying(upstream: FakeUpstream) -> None:
    upstream.queue(error_reply(500, times=5))

    async def cancel_while_waiting() -> None:
        backend = backend_for(upstream, backoff=30.0)
        task = asyncio.create_task(collect(backend))
        for _ in range(500):  # until the first attempt reached the upstream
            if upstream.chat_requests:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(cancel_while_waiting())
    assert len(upstream.chat_requests) == 1


# -- build_registry --------------------------------------------------------------------


def settings(**values: Any) -> Settings:
    # Upstream routing on its own: the bundled local model is tested below.
    values.setdefault("embedded_model", False)
    return Settings(data_dir="/nonexistent", **values)


def test_registry_routes_upstream_models_and_names_their_owner() -> None:
    registry = build_registry(
        settings(
            upstreams=[
                UpstreamConfig(name="local", base_url="http://127.0.0.1:1/v1", models=["a", "b"]),
                UpstreamConfig(name="cloud", base_url="http://127.0.0.1:2/v1", models=["c"]),
            ]
        )
    )
    try:
        a, b, c = registry.resolve("a"), registry.resolve("b"), registry.resolve("c")
        assert a.backend is b.backend
        assert a.backend is not c.backend
        assert [a.owned_by, c.owned_by] == ["local", "cloud"]
        assert c.upstream_model == "c"
        assert isinstance(c.backend, OpenAICompatBackend)
        assert c.backend.name == "cloud"
        assert [r.id for r in registry.listed()] == ["a", "b", "c"]
        assert registry.fallback is None
        with pytest.raises(NotFoundError):
            registry.resolve("unknown")
    finally:
        run(registry.aclose())


def test_registry_fallback_serves_any_other_name() -> None:
    registry = build_registry(
        settings(
            upstream_base_url="http://127.0.0.1:1/v1",
            upstream_api_key=KEY,
            upstreams=[
                UpstreamConfig(name="local", base_url="http://127.0.0.1:2/v1", models=["a"])
            ],
        )
    )
    try:
        assert isinstance(registry.fallback, OpenAICompatBackend)
        route = registry.resolve("anything-else")
        assert route.backend is registry.fallback
        assert route.upstream_model == "anything-else"
        assert registry.resolve("a").owned_by == "local"
        assert KEY not in repr(registry.fallback)
    finally:
        run(registry.aclose())


def test_registry_aliases_reuse_the_target_backend() -> None:
    registry = build_registry(
        settings(
            upstream_base_url="http://127.0.0.1:1/v1",
            upstreams=[
                UpstreamConfig(name="local", base_url="http://127.0.0.1:2/v1", models=["a"])
            ],
            model_aliases={"gpt-4o": "a", "smart": "gpt-4o", "cloud": "vendor/big-model"},
        )
    )
    try:
        alias, chained, via_fallback = (registry.resolve(n) for n in ("gpt-4o", "smart", "cloud"))
        assert alias.backend is registry.resolve("a").backend
        assert (alias.upstream_model, alias.owned_by) == ("a", "local")
        assert chained.backend is alias.backend
        assert chained.upstream_model == "a"
        assert via_fallback.backend is registry.fallback
        assert via_fallback.upstream_model == "vendor/big-model"
    finally:
        run(registry.aclose())


def test_registry_alias_to_an_unserved_model_is_a_config_error() -> None:
    with pytest.raises(ValueError, match="nowhere"):
        build_registry(settings(model_aliases={"x": "nowhere"}))


def test_registry_keeps_routes_already_registered() -> None:
    local = OpenAICompatBackend("http://127.0.0.1:1/v1", name="embedded")
    existing = BackendRegistry()
    existing.add("tiny", local)
    registry = build_registry(settings(model_aliases={"gpt-4o-mini": "tiny"}), existing)
    try:
        assert registry is existing
        assert registry.resolve("gpt-4o-mini").backend is local
        assert registry.resolve("gpt-4o-mini").upstream_model == "tiny"
    finally:
        run(registry.aclose())


def test_registry_backend_streams_the_upstream_model_name(upstream: FakeUpstream) -> None:
    registry = build_registry(
        settings(
            upstreams=[
                UpstreamConfig(
                    name="fake", base_url=upstream.base_url, api_key=KEY, models=["served"]
                )
            ],
            model_aliases={"gpt-4o": "served"},
        )
    )
    upstream.queue(text_reply("via alias"))

    async def go() -> str:
        route = registry.resolve("gpt-4o")
        try:
            req = request(model=route.upstream_model)
            return "".join([c.text async for c in route.backend.stream(req)])
        finally:
            await registry.aclose()

    assert run(go()) == "via alias"
    assert upstream.chat_requests[0].body["model"] == "served"
    assert upstream.chat_requests[0].headers["authorization"] == f"Bearer {KEY}"


def test_well_known_names_alias_the_bundled_model_when_no_upstream() -> None:
    registry = build_registry(settings(embedded_model=True))
    names = settings().model_ids
    assert [r.id for r in registry.listed()] == ["smollm2-135m-instruct", *names]
    bundled = registry.resolve("smollm2-135m-instruct")
    assert isinstance(bundled.backend, LocalBackend)
    assert bundled.context_window == 8192
    for name in names:
        route = registry.resolve(name)
        assert route.backend is bundled.backend
        assert route.alias_of == "smollm2-135m-instruct"
        assert route.upstream_model == "smollm2-135m-instruct"
    with pytest.raises(NotFoundError):
        registry.resolve("o3")


def test_an_upstream_switches_the_local_aliases_off() -> None:
    registry = build_registry(
        settings(embedded_model=True, upstream_base_url="http://127.0.0.1:1/v1")
    )
    assert [r.id for r in registry.listed()] == ["smollm2-135m-instruct"]
    assert isinstance(registry.resolve("gpt-4o").backend, OpenAICompatBackend)
    named = build_registry(
        settings(
            embedded_model=True,
            upstreams=[
                UpstreamConfig(name="u", base_url="http://127.0.0.1:1/v1", models=["gpt-4o"])
            ],
        )
    )
    assert isinstance(named.resolve("gpt-4o").backend, OpenAICompatBackend)
    assert named.resolve("gpt-4o-mini").alias_of == "smollm2-135m-instruct"
    off = build_registry(settings(embedded_model=True, local_aliases=False))
    with pytest.raises(NotFoundError):
        off.resolve("gpt-4o")


def test_configured_local_models_and_the_alias_target(tmp_path: Path) -> None:
    gguf = tmp_path / "m.gguf"
    local = [{"name": "mine", "path": str(gguf), "context_size": 2048, "threads": 1}]
    registry = build_registry(settings(local_models=local))
    assert registry.resolve("gpt-4o").alias_of == "mine"
    route = registry.resolve("mine")
    assert isinstance(route.backend, LocalBackend)
    assert (route.backend.spec.threads, route.context_window) == (1, 2048)
    chosen = build_registry(
        settings(embedded_model=True, local_models=local, default_local_model="mine")
    )
    assert chosen.resolve("gpt-4.1").alias_of == "mine"
    with pytest.raises(ValueError, match="not a local model"):
        build_registry(settings(local_models=local, default_local_model="gpt-4o"))
