"""Helpers for the streaming tests: reading SSE, normalising and comparing with the golden
transcripts, the ordering rules of ``stream-events.md``, scenario helpers, and a recorder of
the SDK's ``AssistantEventHandler`` callbacks.

The golden transcripts in ``golden/`` are copies of the reference fixtures (generated
against OpenAI's format and validated with the SDK in strict mode).
"""

from __future__ import annotations

import copy
import json
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import openai
from openai import AssistantEventHandler
from openai.types.beta import AssistantStreamEvent
from openai.types.beta.threads import (
    Message,
    MessageDelta,
    Text,
    TextDelta,
)
from openai.types.beta.threads.runs import (
    RunStep,
    RunStepDelta,
    ToolCall,
    ToolCallDelta,
)

from assistd.backends.base import Usage
from assistd.backends.scripted import text_reply, tool_reply
from tests.conftest import LiveServer

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
    # The event's id in the run's log (assistd's, for Last-Event-ID); golden transcripts
    # recorded from OpenAI have none, so it takes no part in comparisons.
    id: str | None = field(default=None, compare=False)


def parse_sse(lines: Iterator[str]) -> tuple[list[Frame], int]:
    """Frames and the number of comment lines; every frame must name its event."""
    frames: list[Frame] = []
    comments = 0
    event: str | None = None
    event_id: str | None = None
    data: list[str] = []
    for line in lines:
        if line == "":
            if event is None and not data:
                continue  # the blank line after a comment
            assert event is not None, f"frame without an event: line: {data}"
            raw = "\n".join(data)
            frames.append(Frame(event, raw if raw == "[DONE]" else json.loads(raw), event_id))
            event, event_id, data = None, None, []
        elif line.startswith(":"):
            comments += 1
        elif line.startswith("event:"):
            assert event is None, f"two event: lines in one frame: {line}"
            event = line[len("event:") :].strip()
        elif line.startswith("data:"):
            data.append(line[len("data:") :].removeprefix(" "))
        elif line.startswith("id:"):
            assert event_id is None, f"two id: lines in one frame: {line}"
            assert event is None, f"id: not first in its frame: {line}"
            event_id = line[len("id:") :].strip()
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
    start = _check_prologue(body, events, thread_created, continuation)
    assert body[-1].event in END_RUN_EVENTS, events
    assert sum(e in END_RUN_EVENTS for e in events) == 1, events
    nesting = _Nesting(events, continuation)
    for f in body[start:-1]:
        nesting.see(f.event, f.data)
    nesting.check_end(body[-1])


def _check_prologue(
    body: list[Frame], events: list[str], thread_created: bool, continuation: bool
) -> int:
    """Checks the events before the first step; returns where the steps start."""
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
    return start + len(prologue)


class _Nesting:
    """Follows the open step and message through the middle of a run's stream."""

    def __init__(self, events: list[str], continuation: bool) -> None:
        self.events = events
        self.continuation = continuation
        self.created: set[str] = set()
        self.open_step: dict[str, Any] | None = None
        self.open_message: str | None = None
        self.streamed_calls: list[str] = []

    def see(self, name: str, data: Any) -> None:
        if name.startswith("thread.run.step."):
            self._step(name, data)
        elif name.startswith("thread.message."):
            self._message(name, data)
        elif name == "thread.run.cancelling":
            assert data["status"] == "cancelling"
        else:
            raise AssertionError(f"unexpected {name} in the middle of {self.events}")

    def _step(self, name: str, data: Any) -> None:
        if name == "thread.run.step.created":
            assert self.open_step is None, "steps of a run are sequential"
            assert data["status"] == "in_progress"
            assert data["usage"] is None
            if data["type"] == "tool_calls":
                assert data["step_details"] == {"type": "tool_calls", "tool_calls": []}
            self.open_step = data
            self.created.add(data["id"])
        elif name in ("thread.run.step.in_progress", "thread.run.step.delta"):
            assert self.open_step is not None
            assert data["id"] == self.open_step["id"]
            if name == "thread.run.step.in_progress":
                assert data["usage"] is None
                return
            assert self.open_step["type"] == "tool_calls"
            for call in data["delta"]["step_details"]["tool_calls"]:
                if "id" in call:
                    self.streamed_calls.append(call["id"])
        elif name in STEP_END_EVENTS:
            self._step_end(name, data)
        else:
            raise AssertionError(f"unexpected {name} in the middle of {self.events}")

    def _step_end(self, name: str, data: Any) -> None:
        if data["id"] in self.created:
            assert self.open_step is not None
            assert data["id"] == self.open_step["id"]
            assert self.open_message is None, "the message ends before its step"
            self.open_step = None
        else:
            # Only the continuation's waiting tool step, before any new step.
            assert self.continuation
            assert not self.created
            assert name == "thread.run.step.completed"
            assert data["type"] == "tool_calls"
        if name == "thread.run.step.completed":
            assert data["usage"] is not None

    def _message(self, name: str, data: Any) -> None:
        if name == "thread.message.created":
            assert self.open_step is not None
            assert self.open_step["type"] == "message_creation"
            assert self.open_step["step_details"]["message_creation"]["message_id"] == data["id"]
            assert data["content"] == []
            assert data["status"] == "in_progress"
            self.open_message = data["id"]
        elif name in ("thread.message.in_progress", "thread.message.delta"):
            assert data["id"] == self.open_message
        elif name in ("thread.message.completed", "thread.message.incomplete"):
            assert data["id"] == self.open_message
            self.open_message = None
        else:
            raise AssertionError(f"unexpected {name} in the middle of {self.events}")

    def check_end(self, end: Frame) -> None:
        assert end.data["status"] == end.event.removeprefix("thread.run.")
        if end.event == "thread.run.requires_action":
            # The tool step stays open; the calls to answer are the ones streamed.
            assert self.open_step is not None
            assert self.open_step["type"] == "tool_calls"
            assert self.open_message is None
            required = end.data["required_action"]["submit_tool_outputs"]["tool_calls"]
            assert [c["id"] for c in required] == self.streamed_calls
            assert end.data["usage"] is None
        else:
            events = self.events
            assert self.open_step is None, " ".join(e.rsplit(".", 1)[-1] for e in events)
            assert self.open_message is None, events
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


# ---- the SDK's event handler ---------------------------------------------------------------


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
