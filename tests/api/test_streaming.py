"""Streaming runs: the SSE wire format, golden transcripts, the SDK's event handler,
cancellation and disconnects during a stream, and a real OpenAI-compatible upstream.

The golden transcripts in ``golden/`` are copies of the reference fixtures (generated
against OpenAI's format and validated with the SDK in strict mode). Streams are read raw
with httpx and compared with them event for event; the SDK's ``AssistantEventHandler`` is
driven over the same scenarios and its callbacks compared with the ones recorded for the
fixtures in the reference (``stream-events.md``).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import re
import secrets
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai import AssistantEventHandler
from openai.types.beta import AssistantStreamEvent, Thread
from openai.types.beta.threads import (
    Message,
    MessageDelta,
    MessageDeltaEvent,
    Run,
    Text,
    TextDelta,
)
from openai.types.beta.threads.runs import (
    RunStep,
    RunStepDelta,
    RunStepDeltaEvent,
    ToolCall,
    ToolCallDelta,
)

from assistd.backends.base import Usage
from assistd.backends.openai_compat import OpenAICompatBackend
from assistd.backends.registry import BackendRegistry
from assistd.backends.scripted import Reply, ScriptedCall, text_reply, tool_reply
from assistd.executor.state import Changes, Emitter
from assistd.services.run_streams import RunStream
from tests.conftest import LiveServer, make_settings, raw_client
from tests.fake_upstream import FakeToolCall, FakeUpstream, error_reply
from tests.fake_upstream import text_reply as upstream_text
from tests.fake_upstream import tool_reply as upstream_tools

GOLDEN = Path(__file__).parent / "golden"
INSTRUCTIONS = "You are a helpful assistant."
GET_WEATHER: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
        "strict": False,
    },
}
TERMINAL_RUN_EVENTS = {
    f"thread.run.{s}" for s in ("completed", "incomplete", "failed", "cancelled", "expired")
}
END_RUN_EVENTS = TERMINAL_RUN_EVENTS | {"thread.run.requires_action"}
STEP_END_EVENTS = {f"thread.run.step.{s}" for s in ("completed", "failed", "cancelled", "expired")}
DELTA_EVENTS = {"thread.message.delta", "thread.run.step.delta"}
# Fields our run objects carry beyond the fixtures' (newer API fields), with their values
# for the runs made here.
RUN_EXTRAS = {"reasoning_effort": None, "tool_resources": {}}


def unique_model() -> str:
    return "stream-" + secrets.token_hex(5)


# ---- reading SSE ---------------------------------------------------------------------------


@dataclass
class Frame:
    event: str
    data: Any  # parsed JSON; the string "[DONE]" for the closing frame


def parse_sse(lines: Iterator[str]) -> tuple[list[Frame], int]:
    """Frames and the number of comment lines; every frame must name its event."""
    frames: list[Frame] = []
    comments = 0
    event: str | None = None
    data: list[str] = []
    for line in lines:
        if line == "":
            if event is None and not data:
                continue  # the blank line after a comment
            assert event is not None, f"frame without an event: line: {data}"
            raw = "\n".join(data)
            frames.append(Frame(event, raw if raw == "[DONE]" else json.loads(raw)))
            event, data = None, []
        elif line.startswith(":"):
            comments += 1
        elif line.startswith("event:"):
            assert event is None, f"two event: lines in one frame: {line}"
            event = line[len("event:") :].strip()
        elif line.startswith("data:"):
            data.append(line[len("data:") :].removeprefix(" "))
        else:
            raise AssertionError(f"unexpected SSE line {line!r}")
    assert event is None, "the stream ended inside a frame"
    assert not data, "the stream ended inside a frame"
    return frames, comments


def read_stream(response: httpx.Response) -> list[Frame]:
    assert response.status_code == 200, response.read()
    assert response.headers["content-type"].startswith("text/event-stream")
    frames, _ = parse_sse(response.iter_lines())
    return frames


def stream_post(http: httpx.Client, path: str, body: dict[str, Any]) -> list[Frame]:
    with http.stream("POST", path, json={**body, "stream": True}) as response:
        return read_stream(response)


def load_golden(name: str) -> list[Frame]:
    text = (GOLDEN / f"{name}.sse").read_text(encoding="utf-8")
    frames, comments = parse_sse(iter(text.split("\n")))
    assert comments == 0
    return frames


def names(frames: list[Frame]) -> list[str]:
    return [f.event for f in frames]


def squash(events: list[str]) -> list[str]:
    """Consecutive delta events of one kind as one (their count depends on chunking)."""
    out: list[str] = []
    for event in events:
        if not (out and event == out[-1] and event in DELTA_EVENTS):
            out.append(event)
    return out


def text_deltas(frames: list[Frame]) -> list[dict[str, Any]]:
    return [
        f.data["delta"]["content"][0]["text"] for f in frames if f.event == "thread.message.delta"
    ]


def tool_call_deltas(frames: list[Frame]) -> list[dict[str, Any]]:
    return [
        call
        for f in frames
        if f.event == "thread.run.step.delta"
        for call in f.data["delta"]["step_details"]["tool_calls"]
    ]


def last(frames: list[Frame], event: str) -> Any:
    matching = [f.data for f in frames if f.event == event]
    assert matching, f"no {event} in {names(frames)}"
    return matching[-1]


# ---- normalising for comparisons -----------------------------------------------------------

ID_RE = re.compile(r"^(asst|thread|run|step|msg|call)_[A-Za-z0-9_]+$")


class IdMap:
    """Replaces ids by ``<prefix>#<n>`` in order of first appearance: equal ids stay equal."""

    def __init__(self) -> None:
        self.seen: dict[str, str] = {}
        self.counts: dict[str, int] = {}

    def __call__(self, value: str) -> str:
        match = ID_RE.match(value)
        if match is None:
            return value
        if value not in self.seen:
            prefix = match.group(1)
            self.counts[prefix] = self.counts.get(prefix, 0) + 1
            self.seen[value] = f"{prefix}#{self.counts[prefix]}"
        return self.seen[value]


def normalise(value: Any, ids: IdMap, key: str = "") -> Any:
    """Ids → placeholders, unix timestamps (``*_at``) → ``"<ts>"``; ``null`` stays ``null``."""
    if isinstance(value, dict):
        # Sorted, so numbering does not depend on the key order of either side.
        return {k: normalise(value[k], ids, k) for k in sorted(value)}
    if isinstance(value, list):
        return [normalise(v, ids) for v in value]
    if key.endswith("_at") and isinstance(value, int):
        return "<ts>"
    if isinstance(value, str):
        return ids(value)
    return value


def merge_deltas(frames: list[Frame]) -> list[Frame]:
    """Consecutive continuation deltas folded into the one before them.

    The scripted backend streams text word by word and tool arguments in 8-character
    pieces, the fixtures in other pieces: only the number of delta events differs, so both
    sides are compared after folding. A text delta continues the previous one when it is
    for the same message and content part and carries no annotations; an argument delta
    continues the previous one when both are for the same call and neither introduces it.
    """
    out: list[Frame] = []
    for frame in frames:
        prev = out[-1] if out else None
        if (
            prev is not None
            and prev.event == frame.event
            and prev.data["id"] == frame.data.get("id")
        ):
            if frame.event == "thread.message.delta":
                (before,) = prev.data["delta"]["content"]
                (after,) = frame.data["delta"]["content"]
                if (before["index"], before["type"], after["type"]) == (
                    after["index"],
                    "text",
                    "text",
                ) and "annotations" not in after["text"]:
                    before["text"]["value"] += after["text"]["value"]
                    continue
            elif frame.event == "thread.run.step.delta":
                (before,) = prev.data["delta"]["step_details"]["tool_calls"]
                (after,) = frame.data["delta"]["step_details"]["tool_calls"]
                # Function arguments and code_interpreter code are both streamed in pieces.
                kind = after["type"]
                piece = {"function": "arguments", "code_interpreter": "input"}.get(kind)
                if (
                    before["index"] == after["index"]
                    and before["type"] == kind
                    and "id" not in before
                    and "id" not in after
                    and set(before[kind]) == set(after[kind]) == {piece}
                ):
                    assert piece is not None
                    before[kind][piece] += after[kind][piece]
                    continue
        out.append(Frame(frame.event, copy.deepcopy(frame.data)))
    return out


def strip_extras(data: Any) -> Any:
    """Our run objects minus the fields the fixtures predate (checked, then dropped)."""
    if isinstance(data, dict) and data.get("object") == "thread.run":
        data = dict(data)
        for key, expected in RUN_EXTRAS.items():
            assert data.pop(key) == expected, (key, data)
    return data


def assert_matches_golden(
    ours: list[Frame], golden: list[Frame], *, model: str, patch: Any = None
) -> None:
    """Event for event: names, keys and values, ids and timestamps aside.

    ``patch(index, expected_data)`` adjusts the fixture where a value is knowingly
    different (each use says why).
    """
    ours_m, golden_m = merge_deltas(ours), merge_deltas(golden)
    assert names(ours_m) == names(golden_m)
    our_ids, golden_ids = IdMap(), IdMap()
    for index, (mine, theirs) in enumerate(zip(ours_m, golden_m, strict=True)):
        expected = copy.deepcopy(theirs.data)
        if isinstance(expected, dict) and expected.get("object") == "thread.run":
            expected["model"] = model  # each test scripts its own model name
        if patch is not None and isinstance(expected, dict):
            patch(index, expected)
        got = normalise(strip_extras(mine.data), our_ids)
        assert got == normalise(expected, golden_ids), f"event {index}: {mine.event}"


# ---- ordering rules (stream-events.md) -----------------------------------------------------


def check_order(
    frames: list[Frame], *, thread_created: bool = False, continuation: bool = False
) -> None:
    """The prologue, step and message nesting, one terminal event, then ``done``."""
    events = names(frames)
    assert events[-1] == "done", events
    assert frames[-1].data == "[DONE]"
    assert events.count("done") == 1
    body = frames[:-1]
    start = 0
    if thread_created:
        assert events[0] == "thread.created"
        start = 1
    prologue = ["thread.run.queued", "thread.run.in_progress"]
    if not continuation:
        prologue.insert(0, "thread.run.created")
    assert events[start : start + len(prologue)] == prologue, events
    for f in body[start : start + len(prologue)]:
        assert f.data["usage"] is None
        if f.event == "thread.run.in_progress":
            assert isinstance(f.data["started_at"], int)
        elif not continuation:
            assert f.data["started_at"] is None
    assert body[-1].event in END_RUN_EVENTS, events
    assert sum(e in END_RUN_EVENTS for e in events) == 1, events

    created: set[str] = set()
    open_step: dict[str, Any] | None = None
    open_message: str | None = None
    streamed_calls: list[str] = []
    for f in body[start + len(prologue) : -1]:
        name, data = f.event, f.data
        if name == "thread.run.step.created":
            assert open_step is None, "steps of a run are sequential"
            assert data["status"] == "in_progress"
            assert data["usage"] is None
            if data["type"] == "tool_calls":
                assert data["step_details"] == {"type": "tool_calls", "tool_calls": []}
            open_step = data
            created.add(data["id"])
        elif name == "thread.run.step.in_progress":
            assert open_step is not None
            assert data["id"] == open_step["id"]
            assert data["usage"] is None
        elif name == "thread.run.step.delta":
            assert open_step is not None
            assert data["id"] == open_step["id"]
            assert open_step["type"] == "tool_calls"
            for call in data["delta"]["step_details"]["tool_calls"]:
                if "id" in call:
                    streamed_calls.append(call["id"])
        elif name in STEP_END_EVENTS:
            if data["id"] in created:
                assert open_step is not None
                assert data["id"] == open_step["id"]
                assert open_message is None, "the message ends before its step"
                open_step = None
            else:
                # Only the continuation's waiting tool step, before any new step.
                assert continuation
                assert not created
                assert name == "thread.run.step.completed"
                assert data["type"] == "tool_calls"
            if name == "thread.run.step.completed":
                assert data["usage"] is not None
        elif name == "thread.message.created":
            assert open_step is not None
            assert open_step["type"] == "message_creation"
            assert open_step["step_details"]["message_creation"]["message_id"] == data["id"]
            assert data["content"] == []
            assert data["status"] == "in_progress"
            open_message = data["id"]
        elif name in ("thread.message.in_progress", "thread.message.delta"):
            assert data["id"] == open_message
        elif name in ("thread.message.completed", "thread.message.incomplete"):
            assert data["id"] == open_message
            open_message = None
        elif name == "thread.run.cancelling":
            assert data["status"] == "cancelling"
        else:
            raise AssertionError(f"unexpected {name} in the middle of {events}")
    end = body[-1]
    assert end.data["status"] == end.event.removeprefix("thread.run.")
    if end.event == "thread.run.requires_action":
        # The tool step stays open; the calls to answer are the ones streamed.
        assert open_step is not None
        assert open_step["type"] == "tool_calls"
        assert open_message is None
        required = end.data["required_action"]["submit_tool_outputs"]["tool_calls"]
        assert [c["id"] for c in required] == streamed_calls
        assert end.data["usage"] is None
    else:
        assert open_step is None, " ".join(e.rsplit(".", 1)[-1] for e in events)
        assert open_message is None, events
        assert end.data["expires_at"] is None
        assert end.data["required_action"] is None


# ---- scenario helpers ----------------------------------------------------------------------


def weather_assistant(client: openai.OpenAI, model: str) -> str:
    assistant = client.beta.assistants.create(
        model=model,
        instructions=INSTRUCTIONS,
        tools=[GET_WEATHER],  # type: ignore[list-item]
    )
    return assistant.id


def new_thread(client: openai.OpenAI, text: str = "Hello!") -> str:
    return client.beta.threads.create(messages=[{"role": "user", "content": text}]).id


def weather_requires_action(
    client: openai.OpenAI, http: httpx.Client, server: LiveServer, model: str
) -> tuple[str, list[Frame]]:
    """The function_requires_action scenario; returns the thread id and the stream."""
    server.scripted.queue(
        tool_reply(("get_weather", {"city": "Paris"}), usage=Usage(80, 15)),
        text_reply("It is 18°C and sunny in Paris.", usage=Usage(21, 9)),
        model=model,
    )
    assistant_id = weather_assistant(client, model)
    thread_id = new_thread(client, "What is the weather in Paris?")
    frames = stream_post(http, f"/threads/{thread_id}/runs", {"assistant_id": assistant_id})
    return thread_id, frames


def truncated_text(words: int) -> tuple[str, str]:
    """A text longer than 256 scripted tokens (words) and what 256 of them keep."""
    pieces = [f"word{i} " for i in range(words)]
    return "".join(pieces), "".join(pieces[:256])


# ==== 1. golden transcripts =================================================================


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


# ==== 2. AssistantEventHandler through the SDK ==============================================


class Recorder(AssistantEventHandler):
    """Records the callbacks the SDK fires, with the arguments that do not depend on ids."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[Any, ...]] = []
        self.events: list[str] = []

    def on_event(self, event: AssistantStreamEvent) -> None:
        self.events.append(event.event)

    def on_run_step_created(self, run_step: RunStep) -> None:
        self.calls.append(("on_run_step_created", run_step.id))

    def on_run_step_delta(self, delta: RunStepDelta, snapshot: RunStep) -> None:
        self.calls.append(("on_run_step_delta",))

    def on_run_step_done(self, run_step: RunStep) -> None:
        self.calls.append(("on_run_step_done", run_step.id, run_step.status))

    def on_tool_call_created(self, tool_call: ToolCall) -> None:
        assert tool_call.type == "function"
        fn = tool_call.function
        self.calls.append(("on_tool_call_created", tool_call.id, fn.name, fn.arguments))

    def on_tool_call_delta(self, delta: ToolCallDelta, snapshot: ToolCall) -> None:
        assert delta.type == "function"
        assert delta.function is not None
        self.calls.append(("on_tool_call_delta", delta.function.arguments))

    def on_tool_call_done(self, tool_call: ToolCall) -> None:
        assert tool_call.type == "function"
        fn = tool_call.function
        self.calls.append(("on_tool_call_done", tool_call.id, fn.name, fn.arguments))

    def on_message_created(self, message: Message) -> None:
        self.calls.append(("on_message_created", message.id))

    def on_message_delta(self, delta: MessageDelta, snapshot: Message) -> None:
        self.calls.append(("on_message_delta",))

    def on_message_done(self, message: Message) -> None:
        self.calls.append(("on_message_done", message.id, message.status))

    def on_text_created(self, text: Text) -> None:
        self.calls.append(("on_text_created", text.value, [a.to_dict() for a in text.annotations]))

    def on_text_delta(self, delta: TextDelta, snapshot: Text) -> None:
        self.calls.append(("on_text_delta", delta.value, snapshot.value))

    def on_text_done(self, text: Text) -> None:
        self.calls.append(("on_text_done", text.value, [a.to_dict() for a in text.annotations]))

    def on_end(self) -> None:
        self.calls.append(("on_end",))


def collapse(calls: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Callbacks with the per-chunk ones folded, ids normalised.

    Runs of ``on_text_delta``/``on_message_delta`` become one ``("text_deltas", text)`` and
    runs of ``on_tool_call_delta``/``on_run_step_delta`` one ``("tool_call_deltas", args)``,
    after checking each text snapshot is the text so far. ``on_text_created`` keeps its
    annotations; its value (the first chunk) must be the first delta's.
    """
    ids = IdMap()
    out: list[tuple[Any, ...]] = []
    for i, call in enumerate(calls):
        kind = call[0]
        if kind == "on_text_created":
            following = calls[i + 1]
            assert following[0] == "on_text_delta", calls
            assert following[1] == call[1], calls
            out.append(("on_text_created", call[2]))
        elif kind in ("on_text_delta", "on_message_delta"):
            text = call[1] if kind == "on_text_delta" else ""
            if out and out[-1][0] == "text_deltas":
                text = out.pop()[1] + text
            if kind == "on_text_delta":
                assert call[2] == text, (call, text)  # the snapshot is the text so far
            out.append(("text_deltas", text))
        elif kind in ("on_tool_call_delta", "on_run_step_delta"):
            args = call[1] if kind == "on_tool_call_delta" else ""
            if out and out[-1][0] == "tool_call_deltas":
                args = out.pop()[1] + args
            out.append(("tool_call_deltas", args))
        else:
            out.append(tuple(ids(v) if isinstance(v, str) else v for v in call))
    return out


ARGS = '{"city": "Paris"}'
# Transcribed from stream-events.md ("AssistantEventHandler callbacks fired by these
# fixtures"), with on_event left out as there; argument shapes as ``Recorder`` records them.
EXPECTED_TEXT: list[tuple[Any, ...]] = [
    ("on_run_step_created", "step_msg1"),
    ("on_message_created", "msg_asst1"),
    ("on_text_created", "Hello", []),
    ("on_text_delta", "Hello", "Hello"),
    ("on_message_delta",),
    ("on_text_delta", "! How can I", "Hello! How can I"),
    ("on_message_delta",),
    ("on_text_delta", " help you today?", "Hello! How can I help you today?"),
    ("on_message_delta",),
    ("on_text_done", "Hello! How can I help you today?", []),
    ("on_message_done", "msg_asst1", "completed"),
    ("on_run_step_done", "step_msg1", "completed"),
    ("on_end",),
]
EXPECTED_FUNCTION_REQUIRES_ACTION: list[tuple[Any, ...]] = [
    ("on_run_step_created", "step_tool1"),
    ("on_tool_call_created", "call_w1", "get_weather", ""),
    ("on_run_step_delta",),
    ("on_tool_call_delta", '{"ci'),
    ("on_run_step_delta",),
    ("on_tool_call_delta", 'ty": "Par'),
    ("on_run_step_delta",),
    ("on_tool_call_delta", 'is"}'),
    ("on_run_step_delta",),
    ("on_tool_call_done", "call_w1", "get_weather", ARGS),
    ("on_end",),
]
EXPECTED_SUBMIT_TOOL_OUTPUTS: list[tuple[Any, ...]] = [
    ("on_run_step_done", "step_tool1", "completed"),
    ("on_run_step_created", "step_msg2"),
    ("on_message_created", "msg_asst2"),
    ("on_text_created", "It is 18", []),
    ("on_text_delta", "It is 18", "It is 18"),
    ("on_message_delta",),
    ("on_text_delta", "°C and sunny in Paris.", "It is 18°C and sunny in Paris."),
    ("on_message_delta",),
    ("on_text_done", "It is 18°C and sunny in Paris.", []),
    ("on_message_done", "msg_asst2", "completed"),
    ("on_run_step_done", "step_msg2", "completed"),
    ("on_end",),
]
EXPECTED_FAILED: list[tuple[Any, ...]] = [("on_end",)]
EXPECTED_INCOMPLETE: list[tuple[Any, ...]] = [
    ("on_run_step_created", "step_inc1"),
    ("on_message_created", "msg_inc1"),
    ("on_text_created", "This answer was cut", []),
    ("on_text_delta", "This answer was cut", "This answer was cut"),
    ("on_message_delta",),
    ("on_text_done", "This answer was cut", []),
    ("on_message_done", "msg_inc1", "incomplete"),
    ("on_run_step_done", "step_inc1", "completed"),
    ("on_end",),
]


def assert_callbacks(
    recorder: Recorder,
    expected: list[tuple[Any, ...]],
    golden: str,
    *,
    text: str | None = None,
    thread_created: bool = True,
) -> None:
    """Same callbacks as recorded for the fixture; ``text`` replaces the fixture's text.

    ``on_event`` saw the fixture's events (deltas aside); ``thread_created=False`` for a
    ``runs.stream`` of the ``text_create_thread`` scenario, which has no ``thread.created``.
    """
    got = collapse(recorder.calls)
    want = collapse(expected)
    if text is not None:
        want = [
            (c[0], text, *c[2:]) if c[0] in ("text_deltas", "on_text_done") else c for c in want
        ]
    assert got == want
    golden_events = names(load_golden(golden))[:-1]
    if not thread_created:
        assert golden_events[0] == "thread.created"
        golden_events = golden_events[1:]
    assert squash(recorder.events) == squash(golden_events)


def test_handler_text_create_and_run_stream(client: openai.OpenAI, server: LiveServer) -> None:
    model = unique_model()
    server.scripted.queue(text_reply("Hello! How can I help you today?"), model=model)
    assistant = client.beta.assistants.create(model=model, instructions=INSTRUCTIONS)
    recorder = Recorder()
    with client.beta.threads.create_and_run_stream(
        assistant_id=assistant.id,
        thread={"messages": [{"role": "user", "content": "Hi"}]},
        event_handler=recorder,
    ) as stream:
        stream.until_done()
        run = stream.get_final_run()
        messages = stream.get_final_messages()
    assert_callbacks(recorder, EXPECTED_TEXT, "text_create_thread")
    assert run.status == "completed"
    assert recorder.current_run is not None
    assert recorder.current_run.status == "completed"
    assert run.usage is not None
    assert run.usage.total_tokens > 0
    (message,) = messages
    assert message.status == "completed"
    assert message.run_id == run.id
    assert message.content[0].type == "text"
    assert message.content[0].text.value == "Hello! How can I help you today?"
    stored = client.beta.threads.messages.retrieve(message.id, thread_id=run.thread_id)
    assert stored.content == message.content


def test_handler_text_runs_stream_text_deltas(client: openai.OpenAI, server: LiveServer) -> None:
    model = unique_model()
    server.scripted.queue(text_reply("Hello! How can I help you today?"), model=model)
    assistant = client.beta.assistants.create(model=model, instructions=INSTRUCTIONS)
    thread_id = new_thread(client)
    recorder = Recorder()
    with client.beta.threads.runs.stream(
        thread_id=thread_id, assistant_id=assistant.id, event_handler=recorder
    ) as stream:
        pieces = list(stream.text_deltas)
    # One delta per scripted word, in order.
    assert pieces == ["Hello! ", "How ", "can ", "I ", "help ", "you ", "today?"]
    assert_callbacks(recorder, EXPECTED_TEXT, "text_create_thread", thread_created=False)
    assert recorder.get_final_run().status == "completed"


def test_handler_function_requires_action_then_submit(
    client: openai.OpenAI, server: LiveServer
) -> None:
    model = unique_model()
    server.scripted.queue(
        tool_reply(("get_weather", {"city": "Paris"})),
        text_reply("It is 18°C and sunny in Paris."),
        model=model,
    )
    assistant_id = weather_assistant(client, model)
    thread_id = new_thread(client, "What is the weather in Paris?")
    first = Recorder()
    with client.beta.threads.runs.stream(
        thread_id=thread_id, assistant_id=assistant_id, event_handler=first
    ) as stream:
        stream.until_done()
        run = stream.get_final_run()
        with pytest.raises(RuntimeError, match="No messages found"):
            stream.get_final_messages()  # the SDK's way of saying none were streamed
    assert_callbacks(first, EXPECTED_FUNCTION_REQUIRES_ACTION, "function_requires_action")
    assert run.status == "requires_action"
    assert run.required_action is not None
    (call,) = run.required_action.submit_tool_outputs.tool_calls
    assert (call.function.name, call.function.arguments) == ("get_weather", ARGS)
    assert call.id == first.calls[-2][1]  # on_tool_call_done got the same call

    second = Recorder()
    with client.beta.threads.runs.submit_tool_outputs_stream(
        thread_id=thread_id,
        run_id=run.id,
        tool_outputs=[{"tool_call_id": call.id, "output": "18C and sunny"}],
        event_handler=second,
    ) as stream:
        stream.until_done()
        final = stream.get_final_run()
        (message,) = stream.get_final_messages()
    assert_callbacks(second, EXPECTED_SUBMIT_TOOL_OUTPUTS, "submit_tool_outputs")
    assert second.calls[0][1] == first.calls[0][1]  # the waiting tool step completes
    assert final.id == run.id
    assert final.status == "completed"
    assert message.content[0].type == "text"
    assert message.content[0].text.value == "It is 18°C and sunny in Paris."
    steps = client.beta.threads.runs.steps.list(run.id, thread_id=thread_id, order="asc")
    assert [s.type for s in steps.data] == ["tool_calls", "message_creation"]
    tool_details = steps.data[0].step_details
    assert tool_details.type == "tool_calls"
    stored_call = tool_details.tool_calls[0]
    assert stored_call.type == "function"
    assert stored_call.function.output == "18C and sunny"


def test_handler_failed(client: openai.OpenAI, server: LiveServer) -> None:
    model = unique_model()
    server.scripted.queue(Reply(error="Sorry, something went wrong.", fail_after=0), model=model)
    assistant = client.beta.assistants.create(model=model, instructions=INSTRUCTIONS)
    recorder = Recorder()
    with client.beta.threads.runs.stream(
        thread_id=new_thread(client), assistant_id=assistant.id, event_handler=recorder
    ) as stream:
        stream.until_done()
        run = stream.get_final_run()
        with pytest.raises(RuntimeError, match="No messages found"):
            stream.get_final_messages()  # the SDK's way of saying none were streamed
    assert_callbacks(recorder, EXPECTED_FAILED, "failed")
    assert run.status == "failed"
    assert run.last_error is not None
    assert run.last_error.code == "server_error"
    assert run.last_error.message == "Sorry, something went wrong."


def test_handler_incomplete(client: openai.OpenAI, server: LiveServer) -> None:
    model = unique_model()
    text, kept = truncated_text(260)
    server.scripted.queue(text_reply(text), model=model)
    assistant = client.beta.assistants.create(model=model, instructions=INSTRUCTIONS)
    recorder = Recorder()
    with client.beta.threads.runs.stream(
        thread_id=new_thread(client),
        assistant_id=assistant.id,
        max_completion_tokens=256,
        event_handler=recorder,
    ) as stream:
        stream.until_done()
        run = stream.get_final_run()
        (message,) = stream.get_final_messages()
    assert_callbacks(recorder, EXPECTED_INCOMPLETE, "incomplete", text=kept)
    assert run.status == "incomplete"
    assert run.incomplete_details is not None
    assert run.incomplete_details.reason == "max_completion_tokens"
    assert message.status == "incomplete"
    assert message.incomplete_details is not None
    assert message.incomplete_details.reason == "max_tokens"


class SubmitOnRequiresAction(Recorder):
    """Submits the outputs from inside a callback, while the first stream is still open."""

    def __init__(self, client: openai.OpenAI, thread_id: str, *, hook: str) -> None:
        super().__init__()
        self.client = client
        self.thread_id = thread_id
        self.hook = hook
        self.stored_status: str | None = None
        self.inner: Recorder | None = None
        self.final_text = ""

    def on_event(self, event: AssistantStreamEvent) -> None:
        super().on_event(event)
        if self.hook == "on_event" and event.event == "thread.run.requires_action":
            self._submit(event.data.id)

    def on_tool_call_done(self, tool_call: ToolCall) -> None:
        super().on_tool_call_done(tool_call)
        run = self.current_run
        if self.hook == "on_tool_call_done" and self.inner is None and run is not None:
            assert run.status == "requires_action"
            self._submit(run.id)

    def _submit(self, run_id: str) -> None:
        # The run must already be stored as requires_action when the event arrives.
        stored = self.client.beta.threads.runs.retrieve(run_id, thread_id=self.thread_id)
        self.stored_status = stored.status
        assert stored.required_action is not None
        outputs = [
            {"tool_call_id": c.id, "output": f"18C and sunny ({c.function.arguments})"}
            for c in stored.required_action.submit_tool_outputs.tool_calls
        ]
        self.inner = Recorder()
        with self.client.beta.threads.runs.submit_tool_outputs_stream(
            thread_id=self.thread_id,
            run_id=run_id,
            tool_outputs=outputs,  # type: ignore[arg-type]
            event_handler=self.inner,
        ) as stream:
            self.final_text = "".join(stream.text_deltas)


@pytest.mark.parametrize("hook", ["on_event", "on_tool_call_done"])
def test_submit_from_inside_the_first_stream(
    client: openai.OpenAI, server: LiveServer, hook: str
) -> None:
    model = unique_model()
    server.scripted.queue(
        tool_reply(("get_weather", {"city": "Paris"})),
        text_reply("It is 18°C and sunny in Paris."),
        model=model,
    )
    assistant_id = weather_assistant(client, model)
    thread_id = new_thread(client, "What is the weather in Paris?")
    handler = SubmitOnRequiresAction(client, thread_id, hook=hook)
    with client.beta.threads.runs.stream(
        thread_id=thread_id, assistant_id=assistant_id, event_handler=handler
    ) as stream:
        stream.until_done()
        first_run = stream.get_final_run()
    assert handler.stored_status == "requires_action"
    assert first_run.status == "requires_action"  # the first stream ended there
    assert handler.events[-1] == "thread.run.requires_action"
    assert handler.inner is not None
    assert_callbacks(handler.inner, EXPECTED_SUBMIT_TOOL_OUTPUTS, "submit_tool_outputs")
    assert handler.final_text == "It is 18°C and sunny in Paris."
    assert handler.inner.get_final_run().status == "completed"
    run = client.beta.threads.runs.retrieve(first_run.id, thread_id=thread_id)
    assert run.status == "completed"
    # The model saw the output submitted from inside the callback.
    second = server.scripted.requests_for(model)[1]
    assert second.messages[-1]["role"] == "tool"
    assert second.messages[-1]["content"] == f"18C and sunny ({ARGS})"


def test_sdk_strict_stream_yields_typed_events(client: openai.OpenAI, server: LiveServer) -> None:
    # client is strict: every event is validated against the SDK's AssistantStreamEvent union.
    model = unique_model()
    server.scripted.queue(
        Reply(text="Let me check.", tool_calls=[ScriptedCall("get_weather", {"city": "Oslo"})]),
        model=model,
    )
    assistant_id = weather_assistant(client, model)
    stream = client.beta.threads.create_and_run(
        assistant_id=assistant_id,
        thread={"messages": [{"role": "user", "content": "Weather in Oslo?"}]},
        stream=True,
    )
    with stream:
        events = list(stream)
    kinds = squash([e.event for e in events])
    assert kinds == [
        "thread.created",
        "thread.run.created",
        "thread.run.queued",
        "thread.run.in_progress",
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
    ]
    # Each event's data was parsed into its own model, not left as a loose object.
    for event in events:
        data_type = {
            "thread.created": Thread,
            "thread.run.step.delta": RunStepDeltaEvent,
            "thread.message.delta": MessageDeltaEvent,
        }.get(event.event)
        if data_type is None:
            data_type = (
                RunStep
                if event.event.startswith("thread.run.step.")
                else Message
                if event.event.startswith("thread.message.")
                else Run
            )
        assert type(event.data) is data_type, event
    end = events[-1]
    assert end.event == "thread.run.requires_action"
    assert end.data.required_action is not None
    (call,) = end.data.required_action.submit_tool_outputs.tool_calls
    assert json.loads(call.function.arguments) == {"city": "Oslo"}


# ==== 3. stream details =====================================================================


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
    # Frames are "event:" then one "data:" line then a blank line; nothing else.
    blocks = raw.split("\n\n")
    assert blocks[-1] == ""
    for block in blocks[:-1]:
        if block.startswith(":"):
            continue  # keep-alive comment
        lines = block.split("\n")
        assert len(lines) == 2, block
        assert lines[0].startswith("event: "), block
        assert lines[1].startswith("data: "), block
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

    async def broken(self: RunStream, prologue: Any, **options: Any) -> AsyncIterator[Any]:
        async with contextlib.aclosing(original(self, prologue, **options)) as events:
            async for event in events:
                yield event
                if event.event == "thread.run.queued":
                    raise RuntimeError("the relay broke")

    monkeypatch.setattr(RunStream, "relay", broken)
    model = unique_model()
    server.scripted.queue(text_reply("Fine."), text_reply("Fine again."), model=model)
    assistant = client.beta.assistants.create(model=model)
    thread_id = new_thread(client)
    frames = stream_post(http, f"/threads/{thread_id}/runs", {"assistant_id": assistant.id})
    assert names(frames) == ["thread.run.created", "thread.run.queued", "error", "done"]
    error = frames[2].data
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


# ==== 4. cancel during a stream =============================================================


def test_cancel_during_stream(
    client: openai.OpenAI, server: LiveServer, http: httpx.Client
) -> None:
    model = unique_model()
    words = " ".join(f"w{i}" for i in range(200))
    server.scripted.queue(text_reply(words, delay=0.05), model=model)
    assistant = client.beta.assistants.create(model=model)
    thread_id = new_thread(client)
    cancelled: list[Any] = []
    errors: list[BaseException] = []

    def cancel(run_id: str) -> None:
        try:
            cancelled.append(client.beta.threads.runs.cancel(run_id, thread_id=thread_id))
        except BaseException as exc:
            errors.append(exc)

    lines: list[str] = []
    canceller: threading.Thread | None = None
    with http.stream(
        "POST", f"/threads/{thread_id}/runs", json={"assistant_id": assistant.id, "stream": True}
    ) as response:
        run_id = ""
        for line in response.iter_lines():
            lines.append(line)
            if line.startswith("data: {") and not run_id:
                run_id = json.loads(line[6:])["id"]
            if line == "event: thread.message.delta" and canceller is None:
                canceller = threading.Thread(target=cancel, args=(run_id,))
                canceller.start()
    assert canceller is not None
    canceller.join(timeout=30)
    assert not errors, errors
    assert cancelled
    assert cancelled[0].status == "cancelling"
    frames, _ = parse_sse(iter(lines))
    check_order(frames)
    events = names(frames)
    at = events.index("thread.run.cancelling")
    # Deltas already on their way may still arrive; then the open message, step and run end.
    tail = [e for e in events[at:] if e != "thread.message.delta"]
    assert tail == [
        "thread.run.cancelling",
        "thread.message.incomplete",
        "thread.run.step.cancelled",
        "thread.run.cancelled",
        "done",
    ]
    message = last(frames, "thread.message.incomplete")
    assert message["incomplete_details"] == {"reason": "run_cancelled"}
    step = last(frames, "thread.run.step.cancelled")
    assert step["status"] == "cancelled"
    assert isinstance(step["cancelled_at"], int)
    run = last(frames, "thread.run.cancelled")
    assert run["status"] == "cancelled"
    assert isinstance(run["cancelled_at"], int)
    streamed = "".join(d["value"] for d in text_deltas(frames))
    assert 0 < len(streamed) < len(words)
    # The store agrees with the stream; the partial text is kept.
    stored = client.beta.threads.runs.retrieve(run_id, thread_id=thread_id)
    assert stored.status == "cancelled"
    kept = client.beta.threads.messages.retrieve(message["id"], thread_id=thread_id)
    assert kept.status == "incomplete"
    assert kept.content[0].type == "text"
    assert kept.content[0].text.value == streamed
    steps = client.beta.threads.runs.steps.list(run_id, thread_id=thread_id)
    assert [s.status for s in steps.data] == ["cancelled"]


def test_cancel_from_the_sdk_handler(client: openai.OpenAI, server: LiveServer) -> None:
    model = unique_model()
    server.scripted.queue(
        text_reply(" ".join(f"w{i}" for i in range(200)), delay=0.05), model=model
    )
    assistant = client.beta.assistants.create(model=model)
    thread_id = new_thread(client)

    class CancelOnFirstDelta(Recorder):
        def on_text_delta(self, delta: TextDelta, snapshot: Text) -> None:
            super().on_text_delta(delta, snapshot)
            run = self.current_run
            if len([c for c in self.calls if c[0] == "on_text_delta"]) == 1 and run:
                client.beta.threads.runs.cancel(run.id, thread_id=thread_id)

    handler = CancelOnFirstDelta()
    with client.beta.threads.runs.stream(
        thread_id=thread_id, assistant_id=assistant.id, event_handler=handler
    ) as stream:
        stream.until_done()
        run = stream.get_final_run()
        (message,) = stream.get_final_messages()
    assert run.status == "cancelled"
    assert message.status == "incomplete"
    assert message.incomplete_details is not None
    assert message.incomplete_details.reason == "run_cancelled"
    assert ("on_run_step_done", handler.calls[0][1], "cancelled") in handler.calls
    assert handler.calls[-1] == ("on_end",)


# ==== 5. client disconnect ==================================================================


def test_client_disconnect_does_not_stop_the_run(
    client: openai.OpenAI, server: LiveServer, http: httpx.Client
) -> None:
    model = unique_model()
    words = " ".join(f"token{i}" for i in range(15))
    server.scripted.queue(text_reply(words, delay=0.03), model=model)
    assistant = client.beta.assistants.create(model=model)
    thread_id = new_thread(client)
    run_id = ""
    with http.stream(
        "POST", f"/threads/{thread_id}/runs", json={"assistant_id": assistant.id, "stream": True}
    ) as response:
        for line in response.iter_lines():
            if line.startswith("data: {") and not run_id:
                run_id = json.loads(line[6:])["id"]
            if line == "event: thread.message.delta":
                break  # leaving the block closes the connection mid-stream
    assert run_id
    run = client.beta.threads.runs.poll(run_id, thread_id=thread_id, poll_interval_ms=20)
    assert run.status == "completed"
    messages = client.beta.threads.messages.list(thread_id, order="desc")
    reply = messages.data[0]
    assert reply.run_id == run_id
    assert reply.status == "completed"
    assert reply.content[0].type == "text"
    assert reply.content[0].text.value == words


def test_stream_after_disconnect_new_run_on_same_thread(
    client: openai.OpenAI, server: LiveServer, http: httpx.Client
) -> None:
    # The abandoned stream leaves nothing behind that blocks the thread's next run.
    model = unique_model()
    server.scripted.queue(
        text_reply("first answer with several words", delay=0.02),
        text_reply("second answer"),
        model=model,
    )
    assistant = client.beta.assistants.create(model=model)
    thread_id = new_thread(client)
    with http.stream(
        "POST", f"/threads/{thread_id}/runs", json={"assistant_id": assistant.id, "stream": True}
    ) as response:
        first = json.loads(
            next(line for line in response.iter_lines() if line.startswith("data:"))[6:]
        )
    client.beta.threads.runs.poll(first["id"], thread_id=thread_id, poll_interval_ms=20)
    frames = stream_post(http, f"/threads/{thread_id}/runs", {"assistant_id": assistant.id})
    check_order(frames)
    assert "".join(d["value"] for d in text_deltas(frames)) == "second answer"


# ==== 6. over real HTTP with an OpenAI-compatible upstream ==================================

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
    live = LiveServer(make_settings(tmp_path_factory.mktemp("upstream")), registry=registry)
    # Short, so a stream waiting on a silent upstream sends keep-alives within the test.
    live.services.runs.settings.stream_idle_seconds = 0.2
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
        if changes.run["status"] == "cancelled":
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(10):
                    await store_seen_ended.wait()
        await publish_changes(self, changes)

    monkeypatch.setattr(RunStream, "_final_state", checked_final_state)
    monkeypatch.setattr(Emitter, "changes", held_back_changes)
    cancel_hanging_upstream_run(upstream, up_client, up_http)
    assert store_seen_ended.is_set()
