"""The typed stream events and the one SSE encoder, byte for byte."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any, get_args

import pytest
from starlette.types import Message

from assistd.errors import APIError
from assistd.http.sse import (
    LastChunk,
    assistant_stream,
    chat_stream,
    encode,
    event_stream_response,
)
from assistd.observability.asgi import BODY_SEND
from assistd.protocol.chat import ChatCompletionChunk, ChunkChoice, ChunkDelta, CompletionUsage
from assistd.protocol.events import (
    ChatChunkEvent,
    ChatErrorEvent,
    Done,
    ErrorEvent,
    KeepAlive,
    MessageDelta,
    RunCreated,
    RunQueued,
    RunStepDelta,
    StreamEvent,
    ends_run_stream,
    error_event,
    message_delta,
    message_event,
    run_event,
    run_opened,
    step_delta,
    step_event,
)
from assistd.protocol.messages import MessageObject
from assistd.protocol.runs import TERMINAL_STATUSES, RunObject, RunStatus, RunStepObject
from tests.store_support import run_object, step_object

SERVER_ERROR = APIError("The server had an error.")


def _run(status: RunStatus = "queued") -> RunObject:
    return run_object(
        status=status,
        created_at=1,
        assistant_id="asst_1",
        thread_id="thread_1",
        temperature=1.0,
        top_p=1.0,
    )


def _step(status: Any = "in_progress") -> RunStepObject:
    return step_object(status=status)


def _message(status: Any = "in_progress") -> MessageObject:
    return MessageObject.model_validate(
        {
            "id": "msg_1",
            "created_at": 1,
            "thread_id": "thread_1",
            "status": status,
            "incomplete_details": None,
            "completed_at": None,
            "incomplete_at": None,
            "role": "assistant",
            "content": [],
            "assistant_id": "asst_1",
            "run_id": "run_1",
            "attachments": [],
            "metadata": {},
        }
    )


def _frame(raw: bytes) -> tuple[str | None, str]:
    """(event name, data) of one encoded frame; checks the framing itself."""
    text = raw.decode()
    assert text.endswith("\n\n")
    lines = text[:-2].split("\n")
    if lines[0].startswith("id: "):
        lines = lines[1:]
    if lines[0].startswith("event: "):
        assert len(lines) == 2
        return lines[0][len("event: ") :], lines[1].removeprefix("data: ")
    assert len(lines) == 1
    assert lines[0].startswith("data: ")
    return None, lines[0][len("data: ") :]


@pytest.mark.parametrize("status", get_args(RunStatus))
def test_run_event_names_follow_the_status(status: RunStatus) -> None:
    event = run_event(_run(status))
    assert event.event == f"thread.run.{status}"
    name, data = _frame(encode(event))
    assert name == f"thread.run.{status}"
    assert json.loads(data)["status"] == status


@pytest.mark.parametrize("status", get_args(RunStatus))
def test_only_final_and_waiting_run_events_end_a_stream(status: RunStatus) -> None:
    expected = status in TERMINAL_STATUSES or status == "requires_action"
    assert ends_run_stream(run_event(_run(status))) is expected


def test_non_run_events_never_end_a_stream() -> None:
    for event in (step_event(_step("completed")), message_event(_message("completed")), Done()):
        assert not ends_run_stream(event)


def test_a_new_run_opens_with_created_then_queued() -> None:
    run = _run()
    opened = run_opened(run)
    assert [type(e) for e in opened] == [RunCreated, RunQueued]
    assert [e.event for e in opened] == ["thread.run.created", "thread.run.queued"]
    assert all(e.data is run for e in opened)


def test_an_explicit_status_names_the_event_not_the_object() -> None:
    # A step is announced as created while its object already says in_progress.
    assert step_event(_step("in_progress"), "created").event == "thread.run.step.created"
    assert message_event(_message(), "created").event == "thread.message.created"


@pytest.mark.parametrize("status", ["in_progress", "completed", "failed", "cancelled", "expired"])
def test_step_event_names(status: str) -> None:
    assert step_event(_step(status)).event == f"thread.run.step.{status}"


@pytest.mark.parametrize("status", ["in_progress", "completed", "incomplete"])
def test_message_event_names(status: str) -> None:
    assert message_event(_message(status)).event == f"thread.message.{status}"


def test_unknown_status_is_refused() -> None:
    with pytest.raises(KeyError):
        message_event(_message(), "exploded")


def test_message_delta_shape_and_encoding() -> None:
    part = {"index": 0, "type": "text", "text": {"value": "Hé", "annotations": []}}
    event = message_delta("msg_1", part)
    assert isinstance(event, MessageDelta)
    name, data = _frame(encode(event))
    assert name == "thread.message.delta"
    # Compact JSON, non-ASCII kept as is (as OpenAI sends it).
    assert data == (
        '{"id":"msg_1","object":"thread.message.delta","delta":{"content":'
        '[{"index":0,"type":"text","text":{"value":"Hé","annotations":[]}}]}}'
    )


# Text as it can come from a model: quotes, escapes, control characters, line and
# paragraph separators, astral characters.
AWKWARD_TEXTS = [
    "word ",
    "",
    'say "hi"',
    "a\\b",
    "line\nnext\ttab",
    "\x00\x1f",
    "\u2028\u2029",
    "😀 é",
    "</script>",
]


@pytest.mark.parametrize("value", AWKWARD_TEXTS)
@pytest.mark.parametrize("index", [0, 3])
def test_a_text_piece_encodes_as_the_compact_encoder_writes_it(value: str, index: int) -> None:
    """A token's delta (text only, no annotations) is written from its parts, the same
    bytes as the general encoder's."""
    event = message_delta("msg_1", {"index": index, "type": "text", "text": {"value": value}})
    _, data = _frame(encode(event))
    assert data == json.dumps(event.data, separators=(",", ":"), ensure_ascii=False)
    assert json.loads(data)["delta"]["content"][0]["text"]["value"] == value


def test_step_delta_shape() -> None:
    call = {"index": 1, "type": "function", "function": {"arguments": "{}"}}
    event = step_delta("step_1", call)
    assert isinstance(event, RunStepDelta)
    assert event.data == {
        "id": "step_1",
        "object": "thread.run.step.delta",
        "delta": {"step_details": {"type": "tool_calls", "tool_calls": [call]}},
    }
    assert _frame(encode(event))[0] == "thread.run.step.delta"


def test_wire_models_are_encoded_with_pydantic() -> None:
    name, data = _frame(encode(run_event(_run("completed"))))
    assert name == "thread.run.completed"
    assert json.loads(data) == _run("completed").model_dump(mode="json")


def test_done_keepalive_and_error_frames() -> None:
    assert encode(Done()) == b"event: done\ndata: [DONE]\n\n"
    assert encode(KeepAlive()) == b": keep-alive\n\n"
    name, data = _frame(encode(error_event("It broke.", "server_error")))
    assert name == "error"
    assert json.loads(data) == {
        "error": {"message": "It broke.", "type": "server_error", "param": None, "code": None}
    }


def _chunk(usage: bool) -> ChatCompletionChunk:
    return ChatCompletionChunk(
        id="chatcmpl-1",
        created=1,
        model="m",
        choices=[ChunkChoice(delta=ChunkDelta(content="hi"))],
        usage=CompletionUsage(prompt_tokens=1, completion_tokens=2, total_tokens=3)
        if usage
        else None,
    )


def test_chat_chunks_have_no_event_name_and_hide_usage_unless_asked() -> None:
    name, data = _frame(encode(ChatChunkEvent(_chunk(True), include_usage=False)))
    assert name is None
    assert "usage" not in json.loads(data)
    name, data = _frame(encode(ChatChunkEvent(_chunk(True), include_usage=True)))
    assert json.loads(data)["usage"]["total_tokens"] == 3


async def _events(*events: StreamEvent, fail: bool = False) -> AsyncIterator[StreamEvent]:
    for event in events:
        yield event
    if fail:
        raise RuntimeError("boom")


async def _relayed(
    *events: StreamEvent, fail: bool = False
) -> AsyncIterator[list[tuple[StreamEvent, str | None]]]:
    for n, event in enumerate(events, 1):
        yield [(event, str(n))]
    if fail:
        raise RuntimeError("boom")


def _collect(body: AsyncIterator[bytes]) -> list[bytes]:
    async def read() -> list[bytes]:
        return [frame async for frame in body]

    return asyncio.run(read())


def test_assistant_stream_ends_with_done() -> None:
    frames = _collect(assistant_stream(_relayed(run_event(_run())), SERVER_ERROR))
    assert [_frame(f)[0] for f in frames] == ["thread.run.queued", "done"]


def test_assistant_stream_frames_carry_their_log_id_for_resuming() -> None:
    frames = _collect(assistant_stream(_relayed(run_event(_run())), SERVER_ERROR))
    assert frames[0].startswith(b"id: 1\nevent: thread.run.queued\ndata: {")
    # The SSE [DONE] closes the stream; it is not in the log and carries no id.
    assert frames[-1] == b"event: done\ndata: [DONE]\n\n"


def test_assistant_stream_reports_a_failure_in_band_then_done() -> None:
    frames = _collect(assistant_stream(_relayed(run_event(_run()), fail=True), SERVER_ERROR))
    assert [_frame(f)[0] for f in frames] == ["thread.run.queued", "error", "done"]
    assert json.loads(_frame(frames[1])[1]) == SERVER_ERROR.to_dict()


def test_chat_stream_ends_with_done_without_event_names() -> None:
    frames = _collect(chat_stream(_events(ChatChunkEvent(_chunk(False)))))
    assert frames[-1] == b"data: [DONE]\n\n"
    assert all(_frame(f)[0] is None for f in frames)


def test_chat_stream_stops_at_an_error_without_done() -> None:
    error = ChatErrorEvent(APIError("Upstream failed.").to_dict())
    frames = _collect(
        chat_stream(_events(ChatChunkEvent(_chunk(False)), error, ChatChunkEvent(_chunk(False))))
    )
    assert len(frames) == 2
    assert json.loads(_frame(frames[1])[1])["error"]["message"] == "Upstream failed."


def test_error_event_carries_the_envelope_as_given() -> None:
    event = ErrorEvent(SERVER_ERROR.to_dict())
    assert json.loads(_frame(encode(event))[1]) == SERVER_ERROR.to_dict()


async def _batches(
    *batches: list[tuple[StreamEvent, str | None]],
) -> AsyncIterator[list[tuple[StreamEvent, str | None]]]:
    for batch in batches:
        yield batch


def test_events_ready_together_go_out_as_one_chunk_of_the_same_frames() -> None:
    step = _step()
    opened: list[tuple[StreamEvent, str | None]] = [
        (step_event(step, "created"), "4"),
        (step_event(step, "in_progress"), "5"),
        (message_delta("msg_1", {"index": 0, "type": "text", "text": {"value": "Hi"}}), "6"),
    ]
    ended: list[tuple[StreamEvent, str | None]] = [(run_event(_run("completed")), "7")]
    chunks = _collect(assistant_stream(_batches(opened, ended), SERVER_ERROR))
    assert chunks[0] == b"".join(encode(event, event_id) for event, event_id in opened)
    # [DONE] goes with the ending event, as the body's last chunk.
    assert chunks[1:] == [encode(*ended[0]) + encode(Done())]
    assert isinstance(chunks[-1], LastChunk)


def test_a_streamed_body_goes_to_the_outermost_send_after_a_start_through_every_layer() -> None:
    """The start (status, headers) passes every middleware; the chunks go straight to the
    send the outermost layer left in the scope, skipping wrappers that only watch starts."""
    outer: list[Message] = []
    inner: list[Message] = []

    async def outer_send(message: Message) -> None:
        outer.append(message)

    async def inner_send(message: Message) -> None:
        inner.append(message)

    async def receive() -> Message:
        await asyncio.sleep(10)  # no disconnect while the body streams
        return {"type": "http.disconnect"}

    async def body() -> AsyncIterator[bytes]:
        yield b"data: 1\n\n"
        yield LastChunk(b"data: [DONE]\n\n")

    scope = {"type": "http", "asgi": {"spec_version": "2.4"}, BODY_SEND: outer_send}
    asyncio.run(event_stream_response(body())(scope, receive, inner_send))
    assert [m["type"] for m in inner] == ["http.response.start"]
    assert [(m["body"], m["more_body"]) for m in outer] == [
        (b"data: 1\n\n", True),
        (b"data: [DONE]\n\n", False),
    ]
