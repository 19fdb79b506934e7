"""Carrying out a completion's effects: the steps and message it writes, and their events.

The accumulator decides what happens as chunks arrive; the ``Recorder`` of that completion
stores it (through ``store/`` functions, each write committed before its events) and
publishes the events, in the order the effects came.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from assistd import clock, ids
from assistd.executor.accumulator import (
    CloseMessage,
    Effect,
    MessageDelta,
    OpenMessage,
    OpenToolStep,
    usage_dict,
)
from assistd.executor.emitter import Emitter
from assistd.store import messages, run_steps
from assistd.store.database import Connection, Database
from assistd.store.records import JsonObject, Message, Run, RunStep
from assistd.store.tool_calls import ToolCall


@dataclass
class Recorder:
    db: Database
    emit: Emitter
    run: Run
    message: Message | None = None
    message_step: RunStep | None = None
    tool_step: RunStep | None = None

    async def apply(self, effects: Sequence[Effect]) -> None:
        for effect in effects:
            if isinstance(effect, OpenMessage):
                await self._open_message()
            elif isinstance(effect, MessageDelta):
                assert self.message is not None
                await self.emit.message_delta(self.run.id, self.message.id, effect.part)
            elif isinstance(effect, CloseMessage):
                await self.close_message(effect)
            elif isinstance(effect, OpenToolStep):
                await self._open_tool_step()
            else:
                assert self.tool_step is not None
                await self.emit.step_delta(self.run.id, self.tool_step.id, effect.call)

    def _new_step(self, kind: str, details: JsonObject) -> RunStep:
        step_id = ids.new_id("step")
        return RunStep(
            id=step_id,
            sort_key=ids.key_of_own(step_id, "step"),
            project=self.run.project,
            created_at=clock.now(),
            run_id=self.run.id,
            thread_id=self.run.thread_id,
            assistant_id=self.run.assistant_id,
            type=kind,
            status="in_progress",
            step_details=details,
            last_error=None,
            usage=None,
            cancelled_at=None,
            completed_at=None,
            expired_at=None,
            failed_at=None,
            metadata={},
        )

    async def _open_message(self) -> None:
        message_id = ids.new_id("message")
        step = self._new_step(
            "message_creation",
            {"type": "message_creation", "message_creation": {"message_id": message_id}},
        )
        message = Message(
            id=message_id,
            sort_key=ids.key_of_own(message_id, "message"),
            project=self.run.project,
            created_at=clock.now(),
            thread_id=self.run.thread_id,
            role="assistant",
            status="in_progress",
            content=[],
            attachments=[],
            metadata={},
            assistant_id=self.run.assistant_id,
            run_id=self.run.id,
            incomplete_details=None,
            completed_at=None,
            incomplete_at=None,
        )
        async with self.db.write_one() as conn:
            await messages.start_with_step(conn, step, message)
        self.message_step, self.message = step, message
        await self.emit.step_opened(step)
        await self.emit.message_opened(message)

    async def _open_tool_step(self) -> None:
        step = self._new_step("tool_calls", {"type": "tool_calls", "tool_calls": []})
        async with self.db.write_one() as conn:
            await run_steps.start(conn, step)
        self.tool_step = step
        await self.emit.step_opened(step)

    async def close_message(self, effect: CloseMessage) -> None:
        """Store the message's end in its own transaction, then send its events."""
        async with self.db.write() as conn:
            await self.close_message_in(conn, effect)
        await self.emit_closed_message()

    async def close_message_in(self, conn: Connection, effect: CloseMessage) -> None:
        """Store the message's end inside the caller's transaction; the caller sends
        ``emit_closed_message`` once it committed."""
        assert self.message is not None
        assert self.message_step is not None
        now = clock.now()
        if effect.status == "completed":
            message = self.message.but(status="completed", content=effect.content, completed_at=now)
        else:
            message = self.message.but(
                status=effect.status,
                content=effect.content,
                incomplete_at=now,
                incomplete_details={"reason": effect.reason},
            )
        step = self.message_step.but(
            status="completed", completed_at=now, usage=usage_dict(effect.usage)
        )
        await messages.save_ending(conn, message)
        await run_steps.save_ending(conn, step)
        self.message, self.message_step = message, step

    async def emit_closed_message(self) -> None:
        assert self.message is not None
        assert self.message_step is not None
        await self.emit.message(self.message)
        await self.emit.step(self.message_step)

    async def save_partial(self, content: list[JsonObject] | None) -> None:
        """Keep the text streamed so far when the run stops early (cancel, failure)."""
        if content is not None and self.message is not None:
            async with self.db.write() as conn:
                await messages.save_content(conn, self.message.id, content)

    async def finish_tool_step(
        self, calls: Sequence[ToolCall], usage: dict[str, int], *, completed: bool
    ) -> None:
        """Store the step's calls; it stays in_progress while the outputs are awaited."""
        if self.tool_step is None:
            return
        async with self.db.write() as conn:
            self.tool_step = await run_steps.save_tool_calls(
                conn,
                self.tool_step,
                calls,
                usage=usage,
                completed_at=clock.now() if completed else None,
            )
        if completed:
            await self.emit.step(self.tool_step)
