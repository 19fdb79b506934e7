"""Shared by the run loop's tests: a real migrated SQLite store under ``tmp_path``, the
in-process event bus, a scripted model, and a built-in tool fixture.

Rows are made with the store's own functions, as the services would; the run queue is not
involved: tests call ``RunExecutor.execute`` (or ``prepare``/``resolve``) on a queued run.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from assistd import clock
from assistd.backends.registry import BackendRegistry
from assistd.backends.scripted import Reply, ScriptedBackend
from assistd.events.base import run_channel
from assistd.events.memory import MemoryEventBus, MemorySubscription
from assistd.executor.recorder import Recorder
from assistd.executor.run_loop import ExecutorConfig, RunExecutor
from assistd.executor.turn import NextStep
from assistd.protocol.events import StreamEvent
from assistd.queue.base import NewRun
from assistd.store import messages, run_steps, runs
from assistd.store.database import Database
from assistd.store.records import JsonObject, Message, Run, RunStep
from assistd.store.tool_calls import ModelView, ToolCall
from assistd.tools.base import Tool, ToolRegistry, ToolScope
from assistd.tools.citations import MessageSources
from tests.store_support import new_assistant, new_thread, run_record

PROJECT = "proj_loop"
MODEL = "scripted-model"
UPSTREAM = "upstream-model-v1"
# A route with a known context window (as local models have): it bounds prompts and the
# built-in tools' outputs.
WINDOWED = "windowed-model"
WINDOW = 8000
INSTRUCTIONS = "You are terse."
EXPIRES = 600
WEATHER: JsonObject = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
LOOKUP_ENTRY: JsonObject = {"type": "lookup"}


class Lookup(Tool):
    """A built-in tool fixture: looks a word up and gives the model a citation marker for
    it, so a following answer can cite the result."""

    type: ClassVar[str] = "lookup"

    def __init__(
        self, on_execute: Callable[[ToolScope], Coroutine[Any, Any, None]] | None = None
    ) -> None:
        self.executed: list[tuple[str, int, int | None]] = []
        self.on_execute = on_execute

    def definition(self, entry: JsonObject) -> JsonObject:
        params = {"type": "object", "properties": {"word": {"type": "string"}}}
        return {"name": "lookup", "description": "Look a word up.", "parameters": params}

    def announce(self, call_id: str) -> JsonObject:
        return {"id": call_id, "type": "lookup", "lookup": {}}

    async def execute(
        self,
        scope: ToolScope,
        entry: JsonObject,
        call_id: str,
        arguments: str,
        ordinal: int,
        budget: int | None = None,
    ) -> ToolCall:
        self.executed.append((arguments, ordinal, budget))
        if self.on_execute is not None:
            await self.on_execute(scope)
        word = json.loads(arguments)["word"]
        output = f"【{ordinal}:0†{word}.txt】 {word} is a greeting."
        section = {"results": [{"file_id": f"file-{word}"}]}
        return ToolCall(call_id, "lookup", section, ModelView("lookup", arguments, output))

    def annotate(self, calls: Sequence[ToolCall], into: MessageSources) -> None:
        for ordinal, made in enumerate(calls):
            for rank, result in enumerate(made.section["results"]):
                into.sources[(ordinal, rank)] = result["file_id"]


@dataclass
class Env:
    db: Database
    bus: MemoryEventBus
    backend: ScriptedBackend
    executor: RunExecutor
    lookup: Lookup


@asynccontextmanager
async def environment(tmp_path: Path, lookup: Lookup | None = None) -> AsyncIterator[Env]:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'loop.db'}")
    await db.migrate()
    bus = MemoryEventBus()
    backend = ScriptedBackend()
    registry = BackendRegistry()
    registry.add(MODEL, backend, upstream_model=UPSTREAM)
    registry.add(WINDOWED, backend, context_window=WINDOW)
    lookup = lookup or Lookup()
    executor = RunExecutor(
        db, bus, registry, ExecutorConfig(expires_seconds=EXPIRES), ToolRegistry({"lookup": lookup})
    )
    try:
        yield Env(db, bus, backend, executor, lookup)
    finally:
        await db.dispose()


def run_in(
    tmp_path: Path,
    scenario: Callable[[Env], Coroutine[Any, Any, None]],
    lookup: Lookup | None = None,
) -> None:
    """Run ``scenario`` on a fresh environment (no async test plugin: one loop per test)."""

    async def main() -> None:
        async with environment(tmp_path, lookup) as env:
            await scenario(env)

    asyncio.run(main())


def text_part(value: str, annotations: Sequence[JsonObject] = ()) -> JsonObject:
    return {"type": "text", "text": {"value": value, "annotations": list(annotations)}}


def annotation(
    kind: str, text: str, start: int, file_id: str, index: int | None = None
) -> JsonObject:
    """An annotation of ``kind`` (file_citation, file_path) over ``text`` at ``start``; as
    a delta carries it when ``index`` is given."""
    note: JsonObject = {
        "type": kind,
        "text": text,
        "start_index": start,
        "end_index": start + len(text),
        kind: {"file_id": file_id},
    }
    return note if index is None else {**note, "index": index}


async def seed(
    env: Env,
    *,
    history: Sequence[tuple[str, str]] = (),
    user: str = "Hello there",
    **fields: Any,
) -> Run:
    """An assistant, a thread with ``history`` then ``user``, and a queued run on it."""
    async with env.db.write() as conn:
        assistant = await new_assistant(
            conn, PROJECT, model=MODEL, name="Loop", instructions=INSTRUCTIONS
        )
        thread = await new_thread(conn, PROJECT)
        for role, value in [*history, ("user", user)]:
            made = messages.new(
                PROJECT,
                thread.id,
                role=role,
                content=[text_part(value)],
                attachments=[],
                metadata={},
            )
            await messages.add(conn, made)
        now = clock.now()
        run = run_record(
            project=PROJECT,
            created_at=now,
            thread_id=thread.id,
            assistant_id=assistant.id,
            expires_at=now + EXPIRES,
            model=MODEL,
            instructions=INSTRUCTIONS,
        ).but(**fields)
        assert await runs.create(conn, run)
    return run


@dataclass
class Stored:
    run: Run
    steps: list[RunStep]
    messages: list[Message]


async def stored(env: Env, run_id: str) -> Stored:
    async with env.db.read() as conn:
        return Stored(
            await runs.load(conn, run_id),
            await run_steps.of_run(conn, run_id),
            await messages.of_run(conn, run_id),
        )


def drain(subscription: MemorySubscription) -> list[StreamEvent]:
    events: list[StreamEvent] = []
    while (delivery := subscription.get_nowait()) is not None:
        events.append(delivery.event)
    return events


async def until_deltas(subscription: MemorySubscription, count: int) -> list[StreamEvent]:
    """The events received until the ``count``-th ``thread.message.delta``."""
    seen: list[StreamEvent] = []
    while len([e for e in seen if e.event == "thread.message.delta"]) < count:
        received = await subscription.get(10)
        assert received is not None, names(seen)
        seen.append(received.event)
    return seen


async def handed_over(env: Env, run: Run) -> NewRun:
    """``run`` as its creation hands it to an in-process worker, with its thread."""
    async with env.db.read() as conn:
        return NewRun(run, await messages.in_thread(conn, run.thread_id))


async def execute(env: Env, run: Run, *, handed: bool = False) -> list[StreamEvent]:
    """``execute`` the run (``handed``: as handed over by its creation, its claim then
    overlapping with its first turn); the events published on its channel meanwhile."""
    created = await handed_over(env, run) if handed else None
    async with env.bus.subscribe(run_channel(run.id)) as subscription:
        await env.executor.execute(run.id, created)
        return drain(subscription)


# What a run answered with text publishes (``names``, deltas folded).
TEXT_ANSWER = [
    "thread.run.in_progress",
    "thread.run.step.created",
    "thread.run.step.in_progress",
    "thread.message.created",
    "thread.message.in_progress",
    "thread.message.delta",
    "thread.message.completed",
    "thread.run.step.completed",
    "thread.run.completed",
]


def names(events: Sequence[StreamEvent]) -> list[str]:
    """Event names, with runs of deltas folded to one entry (their count varies)."""
    folded: list[str] = []
    for event in events:
        if event.event.endswith(".delta") and folded and folded[-1] == event.event:
            continue
        folded.append(event.event)
    return folded


def delta_texts(events: Sequence[StreamEvent]) -> str:
    return "".join(
        part["text"]["value"]
        for e in events
        if e.event == "thread.message.delta"
        for part in e.data["delta"]["content"]
        if part["type"] == "text"
    )


async def resolve_once(env: Env, run: Run, *replies: Reply) -> NextStep:
    """One turn by hand: ``prepare``, the scripted stream folded and recorded, ``resolve``."""
    env.backend.queue(*replies)
    turn = await env.executor.prepare(run)
    recorder = Recorder(env.db, env.executor.emit, run)
    async for chunk in turn.route.backend.stream(turn.request):
        await recorder.apply(turn.accumulator.feed(chunk))
    await recorder.apply(turn.accumulator.finish_text())
    return await env.executor.resolve(run, turn, recorder, turn.accumulator.outcome())


def usage(prompt: int, completion: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
