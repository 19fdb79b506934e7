"""Carrying out a completion's effects: the steps and message it writes, and their events.

The accumulator decides what happens as chunks arrive; the ``Recorder`` of that completion
stores it (through ``store/`` functions, each write committed before its events) and
publishes the events, in the order the effects came.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

from assistd import clock, ids
from assistd.executor.accumulator import (
    CloseMessage,
    Effect,
    MessageDelta,
    OpenMessage,
    OpenToolStep,
    usage_dict,
)
from assistd.executor.claim import Claim
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
    # The message stored ahead of the model's answer, being stored (store_message_ahead).
    _ahead: asyncio.Future[tuple[RunStep, Message] | None] | None = field(
        default=None, init=False, repr=False
    )

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

    def _new_message(self) -> tuple[RunStep, Message]:
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
        return step, message

    def store_message_ahead(self, claim: Claim | None) -> None:
        """Store the message this completion is expected to write while the model's first
        token is awaited (a turn offering no tools writes a message or nothing), after the
        run's ``claim``: the token then waits for no write of its own (on PostgreSQL a
        round trip and a WAL flush). Its events are sent when its first text comes; it is
        dropped if none comes (``drop_unopened``)."""
        self._ahead = asyncio.ensure_future(self._store_message(claim))

    async def _store_message(self, claim: Claim | None) -> tuple[RunStep, Message] | None:
        if claim is not None and not await claim.settle():
            return None  # not this worker's run: nothing of it is stored
        step, message = self._new_message()
        async with self.db.write_one() as conn:
            await messages.start_with_step(conn, step, message)
        return step, message

    async def _stored(self) -> tuple[RunStep, Message] | None:
        """The message being stored (its own task, so that a cancel of the run does not
        cut its write off: ``drop_unopened`` then finds it), once stored."""
        if self._ahead is None:
            return None
        stored = await asyncio.shield(self._ahead)
        self._ahead = None
        return stored

    async def drop_unopened(self) -> None:
        """Remove a message stored but not announced, when the completion ended, failed
        or was cancelled before its text: the thread keeps no empty message that nobody
        saw announced (a poll in between may have seen it in progress)."""
        stored = await self._stored()
        if stored is not None:
            async with self.db.write() as conn:
                await messages.drop_with_step(conn, *stored)

    async def _open_message(self) -> None:
        if self._ahead is None:
            self._ahead = asyncio.ensure_future(self._store_message(None))
        stored = await self._stored()
        assert stored is not None  # the claim has settled before any text
        self.message_step, self.message = stored
        await self.emit.step_opened(self.message_step)
        await self.emit.message_opened(self.message)

    async def _open_tool_step(self) -> None:
        await self.drop_unopened()  # a call where no tool was offered
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
        await messages.end_with_step(conn, *self.end_message(effect))

    def end_message(self, effect: CloseMessage) -> tuple[Message, RunStep]:
        """The open message and its step as ``effect`` ends them, which the caller stores
        (``close_message_in`` does), then sends ``emit_closed_message``."""
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
        self.message, self.message_step = message, step
        return message, step

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
