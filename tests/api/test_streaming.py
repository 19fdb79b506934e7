"""Streaming runs on the wire: golden transcripts and stream details.

Streams are read raw with httpx and compared with the golden transcripts in ``golden/``
event for event, and checked against the ordering rules of ``stream-events.md``; then the
wire format, deltas, tool call argument pieces, step order, and failures inside a stream.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from assistd.backends.base import Usage
from assistd.backends.scripted import Reply, ScriptedCall, text_reply, tool_reply
from assistd.services.run_streams import RunStream
from tests.api.stream_support import (
    INSTRUCTIONS,
    assert_matches_golden,
    check_order,
    last,
    load_golden,
    names,
    new_thread,
    parse_sse,
    squash,
    stream_post,
    text_deltas,
    tool_call_deltas,
    truncated_text,
    unique_model,
    weather_assistant,
    weather_requires_action,
)
from tests.conftest import LiveServer, make_settings, raw_client

# ==== golden transcripts ====================================================================


def test_golden_text_create_thread(
    client: openai.OpenAI, server: LiveServer, http: httpx.Client
) -> None:
    model = unique_model()
    server.scripted.queue(
        text_reply("Hello! How can I help you today?", usage=Usage(21, 9)), model=model
    )
    assistant = client.beta.assistants.create(model=model, instructions=INSTRUCTIONS)
    frames = stream_post(
        http,
        "/threads/runs",
        {"assistant_id": assistant.id, "thread": {"messages": [{"role": "user", "content": "Hi"}]}},
    )
    check_order(frames, thread_created=True)
    assert_matches_golden(frames, load_golden("text_create_thread"), model=model)


def test_golden_text_on_existing_thread(
    client: openai.OpenAI, server: LiveServer, http: httpx.Client
) -> None:
    # runs.create(stream=True): the same transcript without thread.created.
    model = unique_model()
    server.scripted.queue(
        text_reply("Hello! How can I help you today?", usage=Usage(21, 9)), model=model
    )
    assistant = client.beta.assistants.create(model=model, instructions=INSTRUCTIONS)
    thread_id = new_thread(client)
    frames = stream_post(http, f"/threads/{thread_id}/runs", {"assistant_id": assistant.id})
    check_order(frames)
    golden = load_golden("text_create_thread")
    assert golden[0].event == "thread.created"
    assert_matches_golden(frames, golden[1:], model=model)
    assert frames[0].data["thread_id"] == thread_id


def test_golden_function_requires_action(
    client: openai.OpenAI, server: LiveServer, http: httpx.Client
) -> None:
    model = unique_model()
    thread_id, frames = weather_requires_action(client, http, server, model)
    check_order(frames)
    assert_matches_golden(frames, load_golden("function_requires_action"), model=model)
    # Persisted before it was sent.
    run = client.beta.threads.runs.retrieve(frames[0].data["id"], thread_id=thread_id)
    assert run.status == "requires_action"


def test_golden_submit_tool_outputs(
    client: openai.OpenAI, server: LiveServer, http: httpx.Client
) -> None:
    model = unique_model()
    thread_id, first = weather_requires_action(client, http, server, model)
    run = last(first, "thread.run.requires_action")
    (call,) = run["required_action"]["submit_tool_outputs"]["tool_calls"]
    frames = stream_post(
        http,
        f"/threads/{thread_id}/runs/{run['id']}/submit_tool_outputs",
        {"tool_outputs": [{"tool_call_id": call["id"], "output": "18C and sunny"}]},
    )
    check_order(frames, continuation=True)

    def patch(index: int, expected: dict[str, Any]) -> None:
        # The fixture's run usage (190/30) is not the sum of its steps' usage (tool step
        # 80/15 + message step 21/9); a run's usage is that sum, so check the sum.
        if expected.get("object") == "thread.run" and expected["usage"] is not None:
            expected["usage"] = {"prompt_tokens": 101, "completion_tokens": 24, "total_tokens": 125}

    assert_matches_golden(frames, load_golden("submit_tool_outputs"), model=model, patch=patch)
    tool_step = frames[2].data
    assert tool_step["id"] == first[3].data["id"]  # the step opened in the first stream
    assert tool_step["step_details"]["tool_calls"][0]["id"] == call["id"]


def test_waiting_tool_step_reports_no_usage_until_completed(
    client: openai.OpenAI, server: LiveServer, http: httpx.Client
) -> None:
    # RunStepCompletionUsage: "null while the run step's status is in_progress" - also when
    # read back while the run waits for tool outputs (the stream never shows it then).
    model = unique_model()
    thread_id, first = weather_requires_action(client, http, server, model)
    run = last(first, "thread.run.requires_action")
    (step,) = client.beta.threads.runs.steps.list(run["id"], thread_id=thread_id).data
    assert step.status == "in_progress"
    assert step.usage is None
    again = client.beta.threads.runs.steps.retrieve(step.id, thread_id=thread_id, run_id=run["id"])
    assert again.usage is None
    (call,) = run["required_action"]["submit_tool_outputs"]["tool_calls"]
    second = stream_post(
        http,
        f"/threads/{thread_id}/runs/{run['id']}/submit_tool_outputs",
        {"tool_outputs": [{"tool_call_id": call["id"], "output": "18C and sunny"}]},
    )
    done = second[2].data
    assert done["id"] == step.id
    assert done["usage"] == {"prompt_tokens": 80, "completion_tokens": 15, "total_tokens": 95}
    stored = client.beta.threads.runs.steps.retrieve(step.id, thread_id=thread_id, run_id=run["id"])
    assert stored.status == "completed"
    assert stored.usage is not None
    assert stored.usage.total_tokens == 95


def test_golden_failed(client: openai.OpenAI, server: LiveServer, http: httpx.Client) -> None:
    model = unique_model()
    server.scripted.queue(Reply(error="Sorry, something went wrong.", fail_after=0), model=model)
    assistant = client.beta.assistants.create(model=model, instructions=INSTRUCTIONS)
    thread_id = new_thread(client)
    frames = stream_post(http, f"/threads/{thread_id}/runs", {"assistant_id": assistant.id})
    check_order(frames)
    assert_matches_golden(frames, load_golden("failed"), model=model)
    steps = client.beta.threads.runs.steps.list(frames[0].data["id"], thread_id=thread_id)
    assert steps.data == []


def test_golden_incomplete(client: openai.OpenAI, server: LiveServer, http: httpx.Client) -> None:
    model = unique_model()
    text, kept = truncated_text(300)
    server.scripted.queue(text_reply(text, usage=Usage(21, 256)), model=model)
    assistant = client.beta.assistants.create(model=model, instructions=INSTRUCTIONS)
    thread_id = new_thread(client)
    frames = stream_post(
        http,
        f"/threads/{thread_id}/runs",
        {"assistant_id": assistant.id, "max_completion_tokens": 256},
    )
    check_order(frames)

    def patch(index: int, expected: dict[str, Any]) -> None:
        # The text is ours (300 words cut to 256); the fixture's is "This answer was cut".
        if expected.get("object") == "thread.message.delta":
            expected["delta"]["content"][0]["text"]["value"] = kept
        elif expected.get("object") == "thread.message" and expected["content"]:
            expected["content"][0]["text"]["value"] = kept
        # The fixture's step usage (21/9) is a placeholder: with one completion the step
        # used what the run used (21/256, as in the fixture's run).
        elif expected.get("object") == "thread.run.step" and expected["usage"] is not None:
            expected["usage"] = {"prompt_tokens": 21, "completion_tokens": 256, "total_tokens": 277}

    assert_matches_golden(frames, load_golden("incomplete"), model=model, patch=patch)
    assert len(text_deltas(frames)) == 256
    messages = client.beta.threads.messages.list(thread_id, order="desc")
    reply = messages.data[0]
    assert reply.status == "incomplete"
    assert reply.incomplete_details is not None
    assert reply.incomplete_details.reason == "max_tokens"
    assert reply.content[0].type == "text"
    assert reply.content[0].text.value == kept


# ==== stream details ========================================================================


def test_wire_format_and_prologue(
    client: openai.OpenAI, server: LiveServer, http: httpx.Client
) -> None:
    model = unique_model()
    server.scripted.queue(text_reply("One two three four."), model=model)
    assistant = client.beta.assistants.create(model=model)
    thread_id = new_thread(client)
    with http.stream(
        "POST", f"/threads/{thread_id}/runs", json={"assistant_id": assistant.id, "stream": True}
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].split(";")[0] == "text/event-stream"
        raw = response.read().decode()
    # Frames are "id:" (the event's place in the run's log; not on [DONE]), "event:",
    # then one "data:" line, then a blank line; nothing else.
    blocks = raw.split("\n\n")
    assert blocks[-1] == ""
    ids: list[int] = []
    for block in blocks[:-2]:
        if block.startswith(":"):
            continue  # keep-alive comment
        lines = block.split("\n")
        assert len(lines) == 3, block
        assert lines[0].startswith("id: "), block
        ids.append(int(lines[0][len("id: ") :]))
        assert lines[1].startswith("event: "), block
        assert lines[2].startswith("data: "), block
    # Ids increase from the run's first event: thread.run.created is the first in its log.
    assert ids == list(range(1, len(ids) + 1))
    assert raw.endswith("event: done\ndata: [DONE]\n\n")
    frames, _ = parse_sse(iter(raw.split("\n")))
    check_order(frames)
    run = frames[0].data
    assert run["status"] == "queued"
    assert run["thread_id"] == thread_id
    assert all(
        f.data["id"] == run["id"]
        for f in frames
        if f.event.startswith("thread.run.") and "step" not in f.event
    )


def test_text_deltas_one_per_word_annotations_only_first(
    client: openai.OpenAI, server: LiveServer, http: httpx.Client
) -> None:
    model = unique_model()
    server.scripted.queue(text_reply("The quick brown fox jumps."), model=model)
    assistant = client.beta.assistants.create(model=model)
    frames = stream_post(
        http,
        "/threads/runs",
        {"assistant_id": assistant.id, "thread": {"messages": [{"role": "user", "content": "Go"}]}},
    )
    check_order(frames, thread_created=True)
    deltas = text_deltas(frames)
    assert [d["value"] for d in deltas] == ["The ", "quick ", "brown ", "fox ", "jumps."]
    assert deltas[0] == {"value": "The ", "annotations": []}
    assert all(set(d) == {"value"} for d in deltas[1:])
    message_id = last(frames, "thread.message.created")["id"]
    for f in frames:
        if f.event == "thread.message.delta":
            assert f.data["id"] == message_id
            assert f.data["object"] == "thread.message.delta"
            (part,) = f.data["delta"]["content"]
            assert (part["index"], part["type"]) == (0, "text")
    done = last(frames, "thread.message.completed")
    assert done["content"] == [
        {"type": "text", "text": {"value": "The quick brown fox jumps.", "annotations": []}}
    ]


def test_parallel_tool_call_argument_pieces(
    client: openai.OpenAI, server: LiveServer, http: httpx.Client
) -> None:
    model = unique_model()
    paris = {"city": "Paris", "unit": "celsius"}
    tokyo = {"city": "Tokyo", "unit": "fahrenheit"}
    server.scripted.queue(tool_reply(("get_weather", paris), ("get_weather", tokyo)), model=model)
    assistant_id = weather_assistant(client, model)
    thread_id = new_thread(client)
    frames = stream_post(http, f"/threads/{thread_id}/runs", {"assistant_id": assistant_id})
    check_order(frames)
    calls = tool_call_deltas(frames)
    intros = [c for c in calls if "id" in c]
    assert [c["index"] for c in intros] == [0, 1]
    for intro in intros:
        assert intro["type"] == "function"
        assert intro["function"] == {"name": "get_weather", "arguments": "", "output": None}
    arguments: dict[int, list[str]] = {0: [], 1: []}
    for c in calls:
        if "id" not in c:
            assert c["type"] == "function"
            assert set(c["function"]) == {"arguments"}
            arguments[c["index"]].append(c["function"]["arguments"])
    for index, expected in ((0, paris), (1, tokyo)):
        pieces = arguments[index]
        assert len(pieces) > 1
        assert all(len(p) <= 8 for p in pieces)
        assert "".join(pieces) == json.dumps(expected)
    # Each call's pieces all come before the next call is introduced.
    order = [c["index"] for c in calls]
    assert order == sorted(order)
    required = last(frames, "thread.run.requires_action")["required_action"]
    assert required["type"] == "submit_tool_outputs"
    assert [
        (c["id"], c["type"], c["function"]["name"], json.loads(c["function"]["arguments"]))
        for c in required["submit_tool_outputs"]["tool_calls"]
    ] == [
        (intros[0]["id"], "function", "get_weather", paris),
        (intros[1]["id"], "function", "get_weather", tokyo),
    ]


def test_text_then_tool_call_step_order(
    client: openai.OpenAI, server: LiveServer, http: httpx.Client
) -> None:
    # A completion with text and a call: the message step ends before the tool step opens.
    model = unique_model()
    server.scripted.queue(
        Reply(text="Checking now.", tool_calls=[ScriptedCall("get_weather", {"city": "Rome"})]),
        text_reply("Rome is warm."),
        model=model,
    )
    assistant_id = weather_assistant(client, model)
    thread_id = new_thread(client)
    frames = stream_post(http, f"/threads/{thread_id}/runs", {"assistant_id": assistant_id})
    check_order(frames)
    assert squash(names(frames))[3:] == [
        "thread.run.step.created",
        "thread.run.step.in_progress",
        "thread.message.created",
        "thread.message.in_progress",
        "thread.message.delta",
        "thread.message.completed",
        "thread.run.step.completed",
        "thread.run.step.created",
        "thread.run.step.in_progress",
        "thread.run.step.delta",
        "thread.run.requires_action",
        "done",
    ]
    run = last(frames, "thread.run.requires_action")
    (call,) = run["required_action"]["submit_tool_outputs"]["tool_calls"]
    second = stream_post(
        http,
        f"/threads/{thread_id}/runs/{run['id']}/submit_tool_outputs",
        {"tool_outputs": [{"tool_call_id": call["id"], "output": "25C"}]},
    )
    check_order(second, continuation=True)
    assert squash(names(second)) == [
        "thread.run.queued",
        "thread.run.in_progress",
        "thread.run.step.completed",
        "thread.run.step.created",
        "thread.run.step.in_progress",
        "thread.message.created",
        "thread.message.in_progress",
        "thread.message.delta",
        "thread.message.completed",
        "thread.run.step.completed",
        "thread.run.completed",
        "done",
    ]
    completed_tool_step = second[2].data
    assert completed_tool_step["step_details"]["tool_calls"] == [
        {
            "id": call["id"],
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Rome"}', "output": "25C"},
        }
    ]
    assert "".join(d["value"] for d in text_deltas(second)) == "Rome is warm."


@pytest.mark.parametrize(
    ("code", "message"),
    [("server_error", "The model crashed."), ("rate_limit_exceeded", "Slow down.")],
)
def test_error_mid_stream_fails_the_run(
    client: openai.OpenAI, server: LiveServer, http: httpx.Client, code: str, message: str
) -> None:
    model = unique_model()
    server.scripted.queue(
        Reply(text="alpha beta gamma delta", error=message, error_code=code, fail_after=2),  # type: ignore[arg-type]
        model=model,
    )
    assistant = client.beta.assistants.create(model=model)
    thread_id = new_thread(client)
    frames = stream_post(http, f"/threads/{thread_id}/runs", {"assistant_id": assistant.id})
    check_order(frames)
    assert [d["value"] for d in text_deltas(frames)] == ["alpha ", "beta "]
    assert names(frames)[-5:] == [
        "thread.message.delta",
        "thread.message.incomplete",
        "thread.run.step.failed",
        "thread.run.failed",
        "done",
    ]
    run = last(frames, "thread.run.failed")
    assert run["last_error"] == {"code": code, "message": message}
    assert isinstance(run["failed_at"], int)
    message_obj = last(frames, "thread.message.incomplete")
    assert message_obj["incomplete_details"] == {"reason": "run_failed"}
    step = last(frames, "thread.run.step.failed")
    assert step["last_error"] == {"code": code, "message": message}
    assert isinstance(step["failed_at"], int)
    # What the stream said is what is stored.
    stored = client.beta.threads.runs.retrieve(run["id"], thread_id=thread_id)
    assert stored.status == "failed"
    assert stored.last_error is not None
    assert stored.last_error.code == code
    kept = client.beta.threads.messages.retrieve(message_obj["id"], thread_id=thread_id)
    assert kept.status == "incomplete"
    assert kept.content[0].type == "text"
    assert kept.content[0].text.value == "alpha beta "


def test_sdk_sees_failed_run_not_an_exception(client: openai.OpenAI, server: LiveServer) -> None:
    model = unique_model()
    server.scripted.queue(Reply(text="a b c", error="Boom.", fail_after=1), model=model)
    assistant = client.beta.assistants.create(model=model)
    with client.beta.threads.runs.stream(
        thread_id=new_thread(client), assistant_id=assistant.id
    ) as stream:
        assert "".join(stream.text_deltas) == "a "
        run = stream.get_final_run()
    assert run.status == "failed"
    assert run.last_error is not None
    assert run.last_error.message == "Boom."


def test_failure_inside_an_open_stream_is_an_error_event(
    client: openai.OpenAI, server: LiveServer, http: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Once the status line is out, a server failure can only be reported in-band.
    original = RunStream.relay

    async def broken(self: RunStream, **options: Any) -> AsyncIterator[Any]:
        async with contextlib.aclosing(original(self, **options)) as batches:
            async for batch in batches:
                yield batch  # the events that were ready first, then it breaks
                raise RuntimeError("the relay broke")

    monkeypatch.setattr(RunStream, "relay", broken)
    model = unique_model()
    # Answers that take a moment: a run answered at once could end within the first batch.
    slow = [Reply(text=text, delay=0.05) for text in ("Fine.", "Fine again.")]
    server.scripted.queue(*slow, model=model)
    assistant = client.beta.assistants.create(model=model)
    thread_id = new_thread(client)
    frames = stream_post(http, f"/threads/{thread_id}/runs", {"assistant_id": assistant.id})
    # The first batch holds the run's opening events (and its start, when the executor had
    # taken it up by then); the error comes after it, then [DONE].
    assert names(frames)[:2] == ["thread.run.created", "thread.run.queued"]
    assert names(frames)[-2:] == ["error", "done"]
    assert names(frames).count("error") == 1
    error = frames[-2].data
    assert set(error) == {"error"}
    assert error["error"]["type"] == "server_error"
    assert error["error"]["message"]
    assert (error["error"]["param"], error["error"]["code"]) == (None, None)
    # The SDK raises on it (wrapped form, sdk-behaviour.md section 4).
    run_id = frames[0].data["id"]
    client.beta.threads.runs.poll(run_id, thread_id=thread_id, poll_interval_ms=20)
    with (
        pytest.raises(openai.APIError, match="server had an error"),
        client.beta.threads.runs.stream(thread_id=thread_id, assistant_id=assistant.id) as stream,
    ):
        stream.until_done()


def test_stream_false_is_not_a_stream(
    client: openai.OpenAI, server: LiveServer, http: httpx.Client
) -> None:
    model = unique_model()
    server.scripted.queue(text_reply("Hi."), model=model)
    assistant = client.beta.assistants.create(model=model)
    response = http.post(
        f"/threads/{new_thread(client)}/runs", json={"assistant_id": assistant.id, "stream": False}
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["object"] == "thread.run"


def test_stream_request_errors_are_plain_http_errors(
    client: openai.OpenAI, http: httpx.Client
) -> None:
    # Validation happens before streaming starts: a JSON error, not an SSE body.
    with http.stream(
        "POST", "/threads/thread_nope/runs", json={"assistant_id": "asst_nope", "stream": True}
    ) as response:
        response.read()
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["error"]["type"] == "invalid_request_error"
    with (
        pytest.raises(openai.NotFoundError),
        client.beta.threads.runs.stream(thread_id="thread_nope", assistant_id="asst_x"),
    ):
        pass


def test_keepalives_come_at_the_configured_interval(tmp_path: Path) -> None:
    # A model far slower between words than the keep-alive interval: every wait for the
    # next word is filled with keep-alive comments (with the 15 s default, none at all).
    live = LiveServer(make_settings(tmp_path, stream_keepalive_seconds=0.05)).start()
    try:
        model = unique_model()
        live.scripted.queue(Reply(text="slow answer", delay=1.0), model=model)
        key = live.new_key("proj_keepalive")
        with raw_client(live, key) as http:
            assistant = http.post("/assistants", json={"model": model}).json()
            thread = http.post("/threads", json={}).json()
            with http.stream(
                "POST",
                f"/threads/{thread['id']}/runs",
                json={"assistant_id": assistant["id"], "stream": True},
            ) as response:
                lines = list(response.iter_lines())
    finally:
        live.stop()
    frames, _ = parse_sse(iter(lines))
    check_order(frames)
    assert "".join(d["value"] for d in text_deltas(frames)) == "slow answer"
    # Between the two words (and before the first), the stream sent keep-alives.
    events = [line for line in lines if line.startswith((":", "event: thread.message.delta"))]
    first, second = (i for i, line in enumerate(events) if line.startswith("event:"))
    assert all(line == ": keep-alive" for line in events if line.startswith(":"))
    assert first > 0
    assert second - first > 1
