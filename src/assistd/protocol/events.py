"""Stream events: one class per Assistants stream event, and the chat-completion chunk.

Every event a stream sends is built here, from wire objects, so its name and its data
always agree (``thread.run.completed`` carries a completed run). ``assistd.http.sse`` is
the only encoder. The event bus carries these objects between the executor and the
streams; ``event`` is the SSE event name, ``data`` what goes after ``data:``.

The delta events' data are plain dicts (typed below), not validated models: they are built
for every token, and the SDK reads them as partial objects anyway.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal, TypedDict

from assistd.protocol.chat import ChatCompletionChunk
from assistd.protocol.messages import MessageObject
from assistd.protocol.runs import RunObject, RunStatus, RunStepObject
from assistd.protocol.threads import ThreadObject


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """Base of every event. ``event`` is empty for chat-completion streams, which send
    only ``data:`` lines."""

    event: ClassVar[str] = ""
    data: Any


# --- thread ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ThreadCreated(StreamEvent):
    event: ClassVar[str] = "thread.created"
    data: ThreadObject


# --- runs -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RunEvent(StreamEvent):
    data: RunObject


@dataclass(frozen=True, slots=True)
class RunCreated(RunEvent):
    event: ClassVar[str] = "thread.run.created"


@dataclass(frozen=True, slots=True)
class RunQueued(RunEvent):
    event: ClassVar[str] = "thread.run.queued"


@dataclass(frozen=True, slots=True)
class RunInProgress(RunEvent):
    event: ClassVar[str] = "thread.run.in_progress"


@dataclass(frozen=True, slots=True)
class RunRequiresAction(RunEvent):
    event: ClassVar[str] = "thread.run.requires_action"


@dataclass(frozen=True, slots=True)
class RunCompleted(RunEvent):
    event: ClassVar[str] = "thread.run.completed"


@dataclass(frozen=True, slots=True)
class RunIncomplete(RunEvent):
    event: ClassVar[str] = "thread.run.incomplete"


@dataclass(frozen=True, slots=True)
class RunFailed(RunEvent):
    event: ClassVar[str] = "thread.run.failed"


@dataclass(frozen=True, slots=True)
class RunCancelling(RunEvent):
    event: ClassVar[str] = "thread.run.cancelling"


@dataclass(frozen=True, slots=True)
class RunCancelled(RunEvent):
    event: ClassVar[str] = "thread.run.cancelled"


@dataclass(frozen=True, slots=True)
class RunExpired(RunEvent):
    event: ClassVar[str] = "thread.run.expired"


_RUN_EVENTS: dict[str, type[RunEvent]] = {
    cls.event.rsplit(".", 1)[1]: cls
    for cls in (
        RunCreated,
        RunQueued,
        RunInProgress,
        RunRequiresAction,
        RunCompleted,
        RunIncomplete,
        RunFailed,
        RunCancelling,
        RunCancelled,
        RunExpired,
    )
}
# The run events after which a run stream has nothing more to say: the run ended, or it
# waits for the client's tool outputs.
END_RUN_EVENTS: tuple[type[RunEvent], ...] = (
    RunRequiresAction,
    RunCompleted,
    RunIncomplete,
    RunFailed,
    RunCancelled,
    RunExpired,
)


def run_event(run: RunObject, status: RunStatus | Literal["created"] | None = None) -> RunEvent:
    """The event announcing ``run`` in ``status`` (default: its own status)."""
    return _RUN_EVENTS[status or run.status](run)


def run_opened(run: RunObject) -> list[StreamEvent]:
    """What a stream opened by creating a run starts with, before the worker's events."""
    return [RunCreated(run), RunQueued(run)]


def ends_run_stream(event: StreamEvent) -> bool:
    return isinstance(event, END_RUN_EVENTS)


# --- run steps ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RunStepEvent(StreamEvent):
    data: RunStepObject


@dataclass(frozen=True, slots=True)
class RunStepCreated(RunStepEvent):
    event: ClassVar[str] = "thread.run.step.created"


@dataclass(frozen=True, slots=True)
class RunStepInProgress(RunStepEvent):
    event: ClassVar[str] = "thread.run.step.in_progress"


@dataclass(frozen=True, slots=True)
class RunStepCompleted(RunStepEvent):
    event: ClassVar[str] = "thread.run.step.completed"


@dataclass(frozen=True, slots=True)
class RunStepFailed(RunStepEvent):
    event: ClassVar[str] = "thread.run.step.failed"


@dataclass(frozen=True, slots=True)
class RunStepCancelled(RunStepEvent):
    event: ClassVar[str] = "thread.run.step.cancelled"


@dataclass(frozen=True, slots=True)
class RunStepExpired(RunStepEvent):
    event: ClassVar[str] = "thread.run.step.expired"


_STEP_EVENTS: dict[str, type[RunStepEvent]] = {
    cls.event.rsplit(".", 1)[1]: cls
    for cls in (
        RunStepCreated,
        RunStepInProgress,
        RunStepCompleted,
        RunStepFailed,
        RunStepCancelled,
        RunStepExpired,
    )
}


def step_event(step: RunStepObject, status: str | None = None) -> RunStepEvent:
    """The event announcing ``step`` in ``status`` (default: its own status)."""
    return _STEP_EVENTS[status or step.status](step)


class ToolCallsDelta(TypedDict):
    type: Literal["tool_calls"]
    tool_calls: list[dict[str, Any]]


class StepDeltaBody(TypedDict):
    step_details: ToolCallsDelta


class StepDeltaData(TypedDict):
    id: str
    object: Literal["thread.run.step.delta"]
    delta: StepDeltaBody


@dataclass(frozen=True, slots=True)
class RunStepDelta(StreamEvent):
    event: ClassVar[str] = "thread.run.step.delta"
    data: StepDeltaData


def step_delta(step_id: str, call: dict[str, Any]) -> RunStepDelta:
    """One tool call's piece (``{"index", ...}``) of a ``tool_calls`` step."""
    return RunStepDelta(
        {
            "id": step_id,
            "object": "thread.run.step.delta",
            "delta": {"step_details": {"type": "tool_calls", "tool_calls": [call]}},
        }
    )


# --- messages -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MessageEvent(StreamEvent):
    data: MessageObject


@dataclass(frozen=True, slots=True)
class MessageCreated(MessageEvent):
    event: ClassVar[str] = "thread.message.created"


@dataclass(frozen=True, slots=True)
class MessageInProgress(MessageEvent):
    event: ClassVar[str] = "thread.message.in_progress"


@dataclass(frozen=True, slots=True)
class MessageCompleted(MessageEvent):
    event: ClassVar[str] = "thread.message.completed"


@dataclass(frozen=True, slots=True)
class MessageIncomplete(MessageEvent):
    event: ClassVar[str] = "thread.message.incomplete"


_MESSAGE_EVENTS: dict[str, type[MessageEvent]] = {
    cls.event.rsplit(".", 1)[1]: cls
    for cls in (MessageCreated, MessageInProgress, MessageCompleted, MessageIncomplete)
}


def message_event(message: MessageObject, status: str | None = None) -> MessageEvent:
    """The event announcing ``message`` in ``status`` (default: its own status)."""
    return _MESSAGE_EVENTS[status or message.status](message)


class MessageDeltaBody(TypedDict):
    content: list[dict[str, Any]]


class MessageDeltaData(TypedDict):
    id: str
    object: Literal["thread.message.delta"]
    delta: MessageDeltaBody


@dataclass(frozen=True, slots=True)
class MessageDelta(StreamEvent):
    event: ClassVar[str] = "thread.message.delta"
    data: MessageDeltaData


def message_delta(message_id: str, part: dict[str, Any]) -> MessageDelta:
    """One content part's piece (``{"index", "type", ...}``) of a message."""
    return MessageDelta(
        {"id": message_id, "object": "thread.message.delta", "delta": {"content": [part]}}
    )


# --- stream framing -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ErrorEvent(StreamEvent):
    """A failure after the stream started (its status line is already sent): OpenAI's
    ``{"error": {"message", "type", "param", "code"}}`` envelope."""

    event: ClassVar[str] = "error"
    data: dict[str, Any]


def error_event(message: str, type: str, code: str | None = None) -> ErrorEvent:
    return ErrorEvent({"error": {"message": message, "type": type, "param": None, "code": code}})


@dataclass(frozen=True, slots=True)
class Done(StreamEvent):
    """The end of an Assistants stream: ``event: done`` / ``data: [DONE]``."""

    event: ClassVar[str] = "done"
    data: Literal["[DONE]"] = "[DONE]"


@dataclass(frozen=True, slots=True)
class KeepAlive(StreamEvent):
    """Sent while nothing happens, so proxies keep the connection; an SSE comment."""

    data: None = None


# --- chat completions -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChatChunkEvent(StreamEvent):
    """A chat-completion chunk; ``usage`` only when the client asked for it."""

    data: ChatCompletionChunk
    include_usage: bool = True


@dataclass(frozen=True, slots=True)
class ChatErrorEvent(StreamEvent):
    """A chat stream's failure: a ``data: {"error": ...}`` line (the SDK raises
    ``APIError`` on it), after which the stream ends without ``[DONE]``, as OpenAI's."""

    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ChatDone(StreamEvent):
    data: Literal["[DONE]"] = "[DONE]"
