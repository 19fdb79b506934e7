"""Streaming runs over real HTTP with an OpenAI-compatible upstream (``FakeUpstream``):
token-by-token text, parallel tool calls, rate limits beyond retries, and cancellation that
disconnects the upstream, also when an idle stream sees the run already ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from assistd.backends.openai_compat import OpenAICompatBackend
from assistd.backends.registry import BackendRegistry
from assistd.executor.state import Changes, Emitter
from assistd.services.run_streams import RunStream
from tests.api.stream_support import (
    GET_WEATHER,
    INSTRUCTIONS,
    check_order,
    last,
    names,
    new_thread,
    parse_sse,
    stream_post,
    text_deltas,
    tool_call_deltas,
    weather_assistant,
)
from tests.conftest import LiveServer, make_settings, raw_client
from tests.fake_upstream import FakeToolCall, FakeUpstream, error_reply
from tests.fake_upstream import text_reply as upstream_text
from tests.fake_upstream import tool_reply as upstream_tools

UPSTREAM_KEY = "sk-test-upstream"


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream(api_key=UPSTREAM_KEY) as fake:
        yield fake


@pytest.fixture(scope="module")
def upstream_server(
    upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    registry = BackendRegistry()
    registry.add(
        "up-1", OpenAICompatBackend(upstream.base_url, UPSTREAM_KEY, max_retries=2, backoff=0.01)
    )
    # A short keep-alive interval, so a stream waiting on a silent upstream sends
    # keep-alives within the test.
    settings = make_settings(tmp_path_factory.mktemp("upstream"), stream_keepalive_seconds=0.2)
    live = LiveServer(settings, registry=registry)
    live.start()
    try:
        yield live
    finally:
        live.stop()


@pytest.fixture
def up_client(upstream_server: LiveServer) -> Iterator[openai.OpenAI]:
    key = upstream_server.new_key("proj_" + secrets.token_hex(6))
    with openai.OpenAI(
        base_url=upstream_server.base_url,
        api_key=key,
        max_retries=0,
        _strict_response_validation=True,
    ) as sdk:
        yield sdk


@pytest.fixture
def up_http(upstream_server: LiveServer, up_client: openai.OpenAI) -> Iterator[httpx.Client]:
    with raw_client(upstream_server, up_client.api_key) as raw:
        yield raw


def test_upstream_text_streams_token_by_token(
    upstream: FakeUpstream, up_client: openai.OpenAI, up_http: httpx.Client
) -> None:
    before = len(upstream.chat_requests)
    upstream.queue(upstream_text("Hello from upstream, token by token.", usage=(12, 6)))
    assistant = up_client.beta.assistants.create(model="up-1", instructions=INSTRUCTIONS)
    thread_id = new_thread(up_client, "Say hello")
    frames = stream_post(up_http, f"/threads/{thread_id}/runs", {"assistant_id": assistant.id})
    check_order(frames)
    assert [d["value"] for d in text_deltas(frames)] == [
        "Hello ",
        "from ",
        "upstream, ",
        "token ",
        "by ",
        "token.",
    ]
    run = last(frames, "thread.run.completed")
    assert run["usage"] == {"prompt_tokens": 12, "completion_tokens": 6, "total_tokens": 18}
    (request,) = upstream.chat_requests[before:]
    assert request.headers["authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert request.body["model"] == "up-1"
    assert request.body["stream"] is True
    assert request.body["messages"] == [
        {"role": "system", "content": INSTRUCTIONS},
        {"role": "user", "content": "Say hello"},
    ]
    assert "tools" not in request.body
    assert "tool_choice" not in request.body
    assert request.completed
    assert not request.disconnected
    stored = up_client.beta.threads.messages.list(thread_id, order="desc").data[0]
    assert stored.content[0].type == "text"
    assert stored.content[0].text.value == "Hello from upstream, token by token."


def test_upstream_parallel_tool_calls_and_submit(
    upstream: FakeUpstream, up_client: openai.OpenAI, up_http: httpx.Client
) -> None:
    before = len(upstream.chat_requests)
    upstream.queue(
        upstream_tools(
            FakeToolCall("get_weather", {"city": "Paris"}, id="call_upParis"),
            FakeToolCall("get_weather", {"city": "Tokyo"}, id="call_upTokyo"),
        ),
        upstream_text("Paris is sunny and Tokyo is rainy."),
    )
    assistant_id = weather_assistant(up_client, "up-1")
    thread_id = new_thread(up_client, "Weather in Paris and Tokyo?")
    frames = stream_post(up_http, f"/threads/{thread_id}/runs", {"assistant_id": assistant_id})
    check_order(frames)
    calls = tool_call_deltas(frames)
    intros = [c for c in calls if "id" in c]
    assert [(c["index"], c["function"]["name"]) for c in intros] == [
        (0, "get_weather"),
        (1, "get_weather"),
    ]
    for index, city in ((0, "Paris"), (1, "Tokyo")):
        pieces = [
            c["function"]["arguments"] for c in calls if c["index"] == index and "id" not in c
        ]
        assert len(pieces) == 3  # 17 characters in 8-character pieces
        assert "".join(pieces) == json.dumps({"city": city})
    run = last(frames, "thread.run.requires_action")
    required = run["required_action"]["submit_tool_outputs"]["tool_calls"]
    assert [(c["id"], c["function"]["name"], c["function"]["arguments"]) for c in required] == [
        (intros[0]["id"], "get_weather", '{"city": "Paris"}'),
        (intros[1]["id"], "get_weather", '{"city": "Tokyo"}'),
    ]
    assert len({c["id"] for c in required}) == 2
    first = upstream.chat_requests[before]
    assert first.body["tools"] == [{"type": "function", "function": GET_WEATHER["function"]}]
    assert first.body["tool_choice"] == "auto"
    assert first.body["parallel_tool_calls"] is True

    second_stream = stream_post(
        up_http,
        f"/threads/{thread_id}/runs/{run['id']}/submit_tool_outputs",
        {
            "tool_outputs": [
                {"tool_call_id": required[0]["id"], "output": "sunny"},
                {"tool_call_id": required[1]["id"], "output": "rainy"},
            ]
        },
    )
    check_order(second_stream, continuation=True)
    assert "".join(d["value"] for d in text_deltas(second_stream)) == (
        "Paris is sunny and Tokyo is rainy."
    )
    assert last(second_stream, "thread.run.completed")["status"] == "completed"
    first_again, second = upstream.chat_requests[before:]
    assert first_again is first
    assert second.body["messages"][:2] == first.body["messages"]
    assert second.body["messages"][2:] == [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": c["id"],
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": c["function"]["arguments"]},
                }
                for c in required
            ],
        },
        {"role": "tool", "tool_call_id": required[0]["id"], "content": "sunny"},
        {"role": "tool", "tool_call_id": required[1]["id"], "content": "rainy"},
    ]


def test_upstream_rate_limit_beyond_retries_fails_the_run(
    upstream: FakeUpstream, up_client: openai.OpenAI, up_http: httpx.Client
) -> None:
    before = len(upstream.chat_requests)
    # One request and two retries (the backend's max_retries), all throttled.
    upstream.queue(
        error_reply(
            429,
            "Rate limit reached for requests.",
            error_code="rate_limit_exceeded",
            headers={"Retry-After": "0"},
            times=3,
        )
    )
    assistant = up_client.beta.assistants.create(model="up-1")
    thread_id = new_thread(up_client)
    frames = stream_post(up_http, f"/threads/{thread_id}/runs", {"assistant_id": assistant.id})
    check_order(frames)
    assert names(frames) == [
        "thread.run.created",
        "thread.run.queued",
        "thread.run.in_progress",
        "thread.run.failed",
        "done",
    ]
    error = last(frames, "thread.run.failed")["last_error"]
    assert error["code"] == "rate_limit_exceeded"
    assert "429" in error["message"]
    assert "Rate limit reached" in error["message"]
    assert UPSTREAM_KEY not in error["message"]
    assert len(upstream.chat_requests[before:]) == 3


def cancel_hanging_upstream_run(
    upstream: FakeUpstream, up_client: openai.OpenAI, up_http: httpx.Client
) -> None:
    """Stream a run whose upstream goes silent after its text, cancel it, check the stream."""
    before = len(upstream.chat_requests)
    disconnects = upstream.disconnects
    # The upstream sends some text, then keeps the response open without finishing.
    upstream.queue(upstream_text("A long answer that never ends", hang=True))
    assistant = up_client.beta.assistants.create(model="up-1")
    thread_id = new_thread(up_client)
    lines: list[str] = []
    deltas = keepalives = 0
    run_id = ""
    with up_http.stream(
        "POST", f"/threads/{thread_id}/runs", json={"assistant_id": assistant.id, "stream": True}
    ) as response:
        for line in response.iter_lines():
            lines.append(line)
            if line.startswith("data: {") and not run_id:
                run_id = json.loads(line[6:])["id"]
            deltas += line == "event: thread.message.delta"
            if line.startswith(":") and deltas == 6:  # one per word
                assert line == ": keep-alive"
                keepalives += 1
                if keepalives == 1:
                    # All text is in and the upstream is silent: the stream stayed alive.
                    cancelled = up_client.beta.threads.runs.cancel(run_id, thread_id=thread_id)
                    assert cancelled.status == "cancelling"
    assert upstream.wait_for_disconnect(disconnects + 1, timeout=10)
    (request,) = upstream.chat_requests[before:]
    assert request.disconnected
    assert not request.completed
    frames, comments = parse_sse(iter(lines))
    assert comments >= 1
    check_order(frames)
    assert "".join(d["value"] for d in text_deltas(frames)) == "A long answer that never ends"
    assert [e for e in names(frames) if e != "thread.message.delta"][-5:] == [
        "thread.run.cancelling",
        "thread.message.incomplete",
        "thread.run.step.cancelled",
        "thread.run.cancelled",
        "done",
    ]
    stored = up_client.beta.threads.messages.list(thread_id, order="desc").data[0]
    assert stored.status == "incomplete"
    assert stored.content[0].type == "text"
    assert stored.content[0].text.value == "A long answer that never ends"


def test_upstream_cancel_mid_stream_disconnects_upstream(
    upstream: FakeUpstream, up_client: openai.OpenAI, up_http: httpx.Client
) -> None:
    cancel_hanging_upstream_run(upstream, up_client, up_http)


def test_idle_stream_still_relays_closing_events_of_an_ended_run(
    upstream: FakeUpstream,
    up_client: openai.OpenAI,
    up_http: httpx.Client,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # An idle stream checks the store; when that check sees the run already ended while the
    # closing events (message.incomplete, step.cancelled, run.cancelled) are still being
    # published, it must relay them rather than jump to a bare thread.run.cancelled. Forced
    # here by holding those events back until the stream has seen the ended run.
    store_seen_ended = asyncio.Event()
    final_state = RunStream._final_state
    publish_changes = Emitter.changes

    async def checked_final_state(self: RunStream) -> Any:
        final = await final_state(self)
        if final is not None:
            store_seen_ended.set()
        return final

    async def held_back_changes(self: Emitter, changes: Changes) -> None:
        if changes.run.status == "cancelled":
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(10):
                    await store_seen_ended.wait()
        await publish_changes(self, changes)

    monkeypatch.setattr(RunStream, "_final_state", checked_final_state)
    monkeypatch.setattr(Emitter, "changes", held_back_changes)
    cancel_hanging_upstream_run(upstream, up_client, up_http)
    assert store_seen_ended.is_set()
