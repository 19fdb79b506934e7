"""Streamed chunks → run steps, messages and their delta events.

One ``Accumulator`` follows one completion. It creates the ``message_creation`` step and
its message on the first text, a ``tool_calls`` step on the first tool call, forwards each
piece as a delta event as soon as it arrives, and stores the final objects at the end.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from assistd import clock, ids
from assistd.backends.base import ChatChunk, FinishReason, Usage
from assistd.executor.builtin import BuiltinTool, StreamedTool
from assistd.executor.citations import CitationStream
from assistd.executor.context import estimate_tokens
from assistd.executor.state import Emitter
from assistd.store import repos
from assistd.store.database import Database
from assistd.store.repository import Row


@dataclass
class Call:
    id: str
    name: str = ""
    arguments: str = ""
    announced: bool = False
    # A built-in call's input streamed so far (``StreamedTool``).
    streamed: str = ""


@dataclass
class Outcome:
    """What one completion produced."""

    text: str
    calls: list[Call]
    finish_reason: FinishReason | None
    usage: Usage
    message: Row | None
    tool_step: Row | None


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
    db: Database
    emit: Emitter
    run: Row
    text: list[str] = field(default_factory=list)
    calls: dict[int, Call] = field(default_factory=dict)
    message: Row | None = None
    message_step: Row | None = None
    tool_step: Row | None = None
    finish_reason: FinishReason | None = None
    usage: Usage | None = None
    # Function names of the built-in tools offered, announced in their own step shape.
    builtin: dict[str, BuiltinTool] = field(default_factory=dict)
    citations: CitationStream = field(default_factory=lambda: CitationStream({}))
    # Images the run's code displayed that no message shows yet: the next message opens
    # with them, before its text, as OpenAI's does.
    images: list[str] = field(default_factory=list)

    def _step_row(self, kind: str, details: dict[str, Any]) -> dict[str, Any]:
        step_id = ids.new_id("step")
        return {
            "id": step_id,
            "sort_key": ids.sort_key_of(step_id, "step"),
            "project": self.run["project"],
            "created_at": clock.now(),
            "run_id": self.run["id"],
            "thread_id": self.run["thread_id"],
            "assistant_id": self.run["assistant_id"],
            "type": kind,
            "status": "in_progress",
            "step_details": details,
            "last_error": None,
            "usage": None,
            "cancelled_at": None,
            "completed_at": None,
            "expired_at": None,
            "failed_at": None,
            "metadata": {},
        }

    async def _open_message(self) -> None:
        message_id = ids.new_id("message")
        step = self._step_row(
            "message_creation",
            {"type": "message_creation", "message_creation": {"message_id": message_id}},
        )
        message = {
            "id": message_id,
            "sort_key": ids.sort_key_of(message_id, "message"),
            "project": self.run["project"],
            "created_at": clock.now(),
            "thread_id": self.run["thread_id"],
            "role": "assistant",
            "status": "in_progress",
            "content": [],
            "attachments": [],
            "metadata": {},
            "assistant_id": self.run["assistant_id"],
            "run_id": self.run["id"],
            "incomplete_details": None,
            "completed_at": None,
            "incomplete_at": None,
        }
        async with self.db.write() as conn:
            await repos.run_steps.insert(conn, step)
            await repos.messages.insert(conn, message)
        self.message_step, self.message = step, message
        await self.emit.step(step, "created")
        await self.emit.step(step, "in_progress")
        await self.emit.message(message, "created")
        await self.emit.message(message, "in_progress")
        for i, file_id in enumerate(self.images):
            part = {"type": "image_file", "image_file": {"file_id": file_id}, "index": i}
            await self._message_delta(part)

    async def _open_tool_step(self) -> None:
        if self.message is not None:
            await self.finish_text()
            await self.close_message("completed")
        step = self._step_row("tool_calls", {"type": "tool_calls", "tool_calls": []})
        async with self.db.write() as conn:
            await repos.run_steps.insert(conn, step)
        self.tool_step = step
        await self.emit.step(step, "created")
        await self.emit.step(step, "in_progress")

    async def feed(self, chunk: ChatChunk) -> None:
        if chunk.text and self.tool_step is None:
            if self.message is None:
                await self._open_message()
            await self._text_delta(*self.citations.feed(chunk.text))
        for piece in chunk.tool_calls:
            await self._feed_call(piece.index, piece.name, piece.arguments)
        if chunk.finish_reason is not None:
            self.finish_reason = chunk.finish_reason
        if chunk.usage is not None:
            self.usage = chunk.usage

    async def _text_delta(self, shown: str, notes: list[dict[str, Any]]) -> None:
        if not shown:
            return
        assert self.message is not None
        text: dict[str, Any] = {"value": shown}
        if not self.text or notes:
            text["annotations"] = notes
        self.text.append(shown)
        await self._message_delta({"index": len(self.images), "type": "text", "text": text})

    async def _message_delta(self, part: dict[str, Any]) -> None:
        assert self.message is not None
        await self.emit.send(
            self.run["id"],
            "thread.message.delta",
            {
                "id": self.message["id"],
                "object": "thread.message.delta",
                "delta": {"content": [part]},
            },
        )

    async def finish_text(self) -> None:
        """Send the text held back for a possible citation marker (end of a completion)."""
        if self.message is not None:
            await self._text_delta(*self.citations.flush())

    async def _feed_call(self, index: int, name: str | None, arguments: str) -> None:
        if self.tool_step is None:
            await self._open_tool_step()
        call = self.calls.setdefault(index, Call(id=new_call_id()))
        if name:
            call.name += name
        call.arguments += arguments
        if not call.announced:
            if not call.name:
                return  # wait for the name before introducing the call
            call.announced = True
            tool = self.builtin.get(call.name)
            if tool is not None:
                # Built-in calls show their own shape, and only the input the tool shows.
                await self._step_delta({"index": index, **tool.announce(call.id)})
                await self._builtin_input(index, call, tool)
                return
            await self._step_delta(
                {
                    "index": index,
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": "", "output": None},
                }
            )
            arguments = call.arguments
        if call.name in self.builtin:
            await self._builtin_input(index, call, self.builtin[call.name])
            return
        if arguments:
            await self._step_delta(
                {"index": index, "type": "function", "function": {"arguments": arguments}}
            )

    async def _builtin_input(self, index: int, call: Call, tool: BuiltinTool) -> None:
        if not isinstance(tool, StreamedTool):
            return
        shown = tool.input_delta(call.arguments)
        if not shown or not shown.startswith(call.streamed) or shown == call.streamed:
            return
        piece, call.streamed = shown[len(call.streamed) :], shown
        await self._step_delta({"index": index, "type": tool.type, tool.type: {"input": piece}})

    async def builtin_results(self, done: dict[str, dict[str, Any]]) -> None:
        """After the built-in calls ran: the deltas that finish their streamed form (the
        rest of the input, the outputs), before the step completes."""
        for index in sorted(self.calls):
            call = self.calls[index]
            tool = self.builtin.get(call.name)
            entry = done.get(call.id)
            if entry is None or not isinstance(tool, StreamedTool):
                continue
            delta = tool.result_delta(entry, call.streamed)
            if delta is not None:
                await self._step_delta({"index": index, **delta})

    async def _step_delta(self, call: dict[str, Any]) -> None:
        assert self.tool_step is not None
        await self.emit.send(
            self.run["id"],
            "thread.run.step.delta",
            {
                "id": self.tool_step["id"],
                "object": "thread.run.step.delta",
                "delta": {"step_details": {"type": "tool_calls", "tool_calls": [call]}},
            },
        )

    def message_content(self) -> list[dict[str, Any]]:
        # Text still held back (a cancel mid-marker) is kept too.
        value = "".join(self.text) + self.citations.pending
        annotations = list(self.citations.found)
        images = [{"type": "image_file", "image_file": {"file_id": f}} for f in self.images]
        return [*images, {"type": "text", "text": {"value": value, "annotations": annotations}}]

    async def close_message(self, status: str, reason: str | None = None) -> None:
        """Store the message text and end the message and its step (once)."""
        async with self.db.write() as conn:
            closed = await self.close_message_in(conn, status, reason)
        if closed:
            await self.emit_closed_message()

    async def close_message_in(
        self, conn: AsyncConnection, status: str, reason: str | None = None
    ) -> bool:
        """``close_message`` inside the caller's transaction; the caller emits after commit.

        Returns whether there was an open message to close.
        """
        if self.message is None or self.message["status"] != "in_progress":
            return False
        assert self.message_step is not None
        now = clock.now()
        content = self.message_content()
        text = content[-1]["text"]["value"]
        message_changes: dict[str, Any] = {"status": status, "content": content}
        if status == "completed":
            message_changes["completed_at"] = now
        else:
            message_changes.update(incomplete_at=now, incomplete_details={"reason": reason})
        completion = estimate_tokens(text, self.run["model"])
        usage = self.usage if self.tool_step is None and self.usage else Usage(0, completion)
        step_changes = {"status": "completed", "completed_at": now, "usage": usage_dict(usage)}
        project = self.run["project"]
        await repos.messages.update(conn, project, self.message["id"], message_changes)
        await repos.run_steps.update(conn, project, self.message_step["id"], step_changes)
        self.message = {**self.message, **message_changes}
        self.message_step = {**self.message_step, **step_changes}
        return True

    async def emit_closed_message(self) -> None:
        assert self.message is not None
        assert self.message_step is not None
        await self.emit.message(self.message)
        await self.emit.step(self.message_step)

    async def save_partial(self) -> None:
        """Keep the text streamed so far when the run stops early (cancel, failure)."""
        held = self.text or self.citations.pending
        if self.message is not None and self.message["status"] == "in_progress" and held:
            async with self.db.write() as conn:
                await repos.messages.update(
                    conn,
                    self.run["project"],
                    self.message["id"],
                    {"content": self.message_content()},
                )

    def outcome(self) -> Outcome:
        text = "".join(self.text) + self.citations.pending
        usage = self.usage or Usage(0, estimate_tokens(text, self.run["model"]))
        calls = [self.calls[i] for i in sorted(self.calls)]
        return Outcome(
            text=text,
            calls=calls,
            finish_reason=self.finish_reason,
            usage=usage,
            message=self.message,
            tool_step=self.tool_step,
        )
