"""Streamed chunks → what a completion produced, and the effects to carry out on the way.

One ``Accumulator`` follows one completion. It writes nothing and publishes nothing: each
call returns the effects due at that point, in order (open the ``message_creation`` step
and its message on the first text, a ``tool_calls`` step on the first tool call, a delta
per piece as soon as it arrives, the end of the message), and the run loop carries them
out (``executor.recorder``). ``outcome()`` is the completion folded into one value.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from assistd.backends.base import ChatChunk, FinishReason, Usage
from assistd.executor.context import estimate_tokens
from assistd.store.records import JsonObject
from assistd.store.tool_calls import ToolCall
from assistd.tools.base import Tool
from assistd.tools.citations import CitationStream


@dataclass
class Call:
    id: str
    name: str = ""
    arguments: str = ""
    announced: bool = False
    # A built-in call's input streamed so far (``Tool.input_delta``).
    streamed: str = ""


@dataclass(frozen=True)
class OpenMessage:
    """Create the ``message_creation`` step and its message."""


@dataclass(frozen=True)
class MessageDelta:
    """Send one content part (with its ``index``) of the open message."""

    part: JsonObject


@dataclass(frozen=True)
class CloseMessage:
    """Store the message's final content, end it and its step."""

    status: Literal["completed", "incomplete"]
    reason: str | None
    content: list[JsonObject]
    usage: Usage


@dataclass(frozen=True)
class OpenToolStep:
    """Create the ``tool_calls`` step."""


@dataclass(frozen=True)
class StepDelta:
    """Send one piece (with its ``index``) of a call of the tool step."""

    call: JsonObject


Effect = OpenMessage | MessageDelta | CloseMessage | OpenToolStep | StepDelta


@dataclass(frozen=True)
class Outcome:
    """What one completion produced."""

    text: str
    calls: list[Call]
    finish_reason: FinishReason | None
    usage: Usage


def usage_dict(usage: Usage) -> dict[str, int]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }


def new_call_id() -> str:
    # Our own ids, never the upstream's: they must be distinct across a run's completions.
    return "call_" + secrets.token_urlsafe(18).replace("-", "x").replace("_", "y")[:24]


@dataclass
class Accumulator:
    # The run's model, whose tokenizer estimates usage the upstream did not report.
    model: str
    # Function names of the built-in tools offered, announced in their own step shape.
    builtin: dict[str, Tool] = field(default_factory=dict)
    citations: CitationStream = field(default_factory=lambda: CitationStream({}))
    # Images the run's code displayed that no message shows yet: the next message opens
    # with them, before its text, as OpenAI's does.
    images: list[str] = field(default_factory=list)
    text: list[str] = field(default_factory=list)
    calls: dict[int, Call] = field(default_factory=dict)
    message: Literal["none", "open", "closed"] = "none"
    tool_step: bool = False
    finish_reason: FinishReason | None = None
    usage: Usage | None = None

    def feed(self, chunk: ChatChunk) -> list[Effect]:
        effects: list[Effect] = []
        if chunk.text and not self.tool_step:
            if self.message == "none":
                effects += self._open_message()
            effects += self._text_delta(*self.citations.feed(chunk.text))
        for piece in chunk.tool_calls:
            effects += self._feed_call(piece.index, piece.name, piece.arguments)
        if chunk.finish_reason is not None:
            self.finish_reason = chunk.finish_reason
        if chunk.usage is not None:
            self.usage = chunk.usage
        return effects

    def _open_message(self) -> list[Effect]:
        self.message = "open"
        effects: list[Effect] = [OpenMessage()]
        for i, file_id in enumerate(self.images):
            part = {"type": "image_file", "image_file": {"file_id": file_id}, "index": i}
            effects.append(MessageDelta(part))
        return effects

    def _open_tool_step(self) -> list[Effect]:
        effects: list[Effect] = []
        if self.message != "none":
            effects += self.finish_text()
            closed = self.close_message("completed")
            if closed is not None:
                effects.append(closed)
        self.tool_step = True
        effects.append(OpenToolStep())
        return effects

    def _text_delta(self, shown: str, notes: list[JsonObject]) -> list[Effect]:
        if not shown:
            return []
        text: JsonObject = {"value": shown}
        if not self.text or notes:
            text["annotations"] = notes
        self.text.append(shown)
        return [MessageDelta({"index": len(self.images), "type": "text", "text": text})]

    def finish_text(self) -> list[Effect]:
        """Send the text held back for a possible citation marker (end of a completion)."""
        if self.message == "none":
            return []
        return self._text_delta(*self.citations.flush())

    def _feed_call(self, index: int, name: str | None, arguments: str) -> list[Effect]:
        effects: list[Effect] = []
        if not self.tool_step:
            effects += self._open_tool_step()
        call = self.calls.setdefault(index, Call(id=new_call_id()))
        if name:
            call.name += name
        call.arguments += arguments
        tool = self.builtin.get(call.name)
        if not call.announced:
            if not call.name:
                return effects  # wait for the name before introducing the call
            call.announced = True
            if tool is not None:
                # Built-in calls show their own shape, and only the input the tool shows.
                effects.append(StepDelta({"index": index, **tool.announce(call.id)}))
                return effects + self._builtin_input(index, call, tool)
            effects.append(
                StepDelta(
                    {
                        "index": index,
                        "id": call.id,
                        "type": "function",
                        "function": {"name": call.name, "arguments": "", "output": None},
                    }
                )
            )
            arguments = call.arguments
        if tool is not None:
            return effects + self._builtin_input(index, call, tool)
        if arguments:
            effects.append(
                StepDelta(
                    {"index": index, "type": "function", "function": {"arguments": arguments}}
                )
            )
        return effects

    def _builtin_input(self, index: int, call: Call, tool: Tool) -> list[Effect]:
        shown = tool.input_delta(call.arguments)
        if not shown or not shown.startswith(call.streamed) or shown == call.streamed:
            return []
        piece, call.streamed = shown[len(call.streamed) :], shown
        return [StepDelta({"index": index, "type": tool.type, tool.type: {"input": piece}})]

    def builtin_results(self, done: Mapping[str, ToolCall]) -> list[Effect]:
        """After the built-in calls ran (``done``, by call id): the deltas that finish their
        streamed form (the rest of the input, the outputs), before the step completes."""
        effects: list[Effect] = []
        for index in sorted(self.calls):
            call = self.calls[index]
            tool = self.builtin.get(call.name)
            made = done.get(call.id)
            if made is None or tool is None:
                continue
            delta = tool.result_delta(made, call.streamed)
            if delta is not None:
                effects.append(StepDelta({"index": index, **delta}))
        return effects

    def message_content(self) -> list[JsonObject]:
        # Text still held back (a cancel mid-marker) is kept too.
        value = "".join(self.text) + self.citations.pending
        annotations = list(self.citations.found)
        images = [{"type": "image_file", "image_file": {"file_id": f}} for f in self.images]
        return [*images, {"type": "text", "text": {"value": value, "annotations": annotations}}]

    def close_message(
        self, status: Literal["completed", "incomplete"], reason: str | None = None
    ) -> CloseMessage | None:
        """End the open message (once); None when none is open."""
        if self.message != "open":
            return None
        self.message = "closed"
        content = self.message_content()
        # A completion that also made calls reports usage for both: its message gets an
        # estimate, the tool step the reported usage. (Estimated only when needed: the
        # tokenizer is a visible part of a run's CPU.)
        usage = self.usage
        if self.tool_step or not usage:
            usage = Usage(0, estimate_tokens(content[-1]["text"]["value"], self.model))
        return CloseMessage(status, reason, content, usage)

    def partial_content(self) -> list[JsonObject] | None:
        """The open message's content so far, when the run stops early (cancel, failure)."""
        held = self.text or self.citations.pending
        return self.message_content() if self.message == "open" and held else None

    def outcome(self) -> Outcome:
        text = "".join(self.text) + self.citations.pending
        usage = self.usage or Usage(0, estimate_tokens(text, self.model))
        calls = [self.calls[i] for i in sorted(self.calls)]
        return Outcome(text=text, calls=calls, finish_reason=self.finish_reason, usage=usage)
