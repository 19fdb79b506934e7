"""Executing one run: claim it, loop completions until it finishes or needs tool outputs.

Each turn returns what happens next (finish, wait for tool outputs, or go on), in the
manner of pydantic-ai's agent graph. Every failure path ends the run: a backend error
fails it with that error's code, anything unexpected fails it with ``server_error``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from assistd import clock
from assistd.backends.base import BackendError, ChatRequest
from assistd.backends.registry import BackendRegistry, ModelRoute
from assistd.events.base import EventBus, Subscription, control_channel
from assistd.executor.accumulator import Accumulator, Call, Outcome, usage_dict
from assistd.executor.builtin import BuiltinTools
from assistd.executor.citations import CitationStream, Sources
from assistd.executor.code_interpreter import produced, shown_images
from assistd.executor.context import PromptBudgetExceeded, build_context
from assistd.executor.state import Emitter, end_run, lease_deadline, transition
from assistd.protocol.runs import RunStatus
from assistd.store import repos, tables
from assistd.store.database import Database
from assistd.store.repository import Row

logger = logging.getLogger("assistd.executor")

# Built-in calls one run may make before the model must answer (a small model can keep
# searching forever).
MAX_BUILTIN_CALLS = 8

Next = Literal["continue", "requires_action", "completed", "incomplete"]


@dataclass
class ExecutorConfig:
    worker_id: str
    lease_seconds: float
    expires_seconds: int


class _Cancelled(Exception):
    """The run's status moved to ``cancelling`` while we were working on it."""


class RunExecutor:
    def __init__(
        self,
        db: Database,
        bus: EventBus,
        registry: BackendRegistry,
        config: ExecutorConfig,
        tools: BuiltinTools | None = None,
    ) -> None:
        self.db = db
        self.bus = bus
        self.registry = registry
        self.config = config
        self.tools = tools or BuiltinTools({})
        self.emit = Emitter(bus)

    async def execute(self, run_id: str) -> None:
        """Run ``run_id`` if it is queued; return when it is terminal or requires action."""
        # Listen for a cancel before claiming: one sent right after the claim commits must
        # not be missed.
        async with self.bus.subscribe(control_channel(run_id)) as control:
            async with self.db.write() as conn:
                claimed = await transition(
                    conn,
                    run_id,
                    "in_progress",
                    started_at=sa.func.coalesce(tables.runs.c.started_at, clock.now()),
                    worker_id=self.config.worker_id,
                    lease_until=lease_deadline(self.config.lease_seconds),
                )
                answered = await _complete_answered_tool_steps(conn, run_id) if claimed else []
            if claimed is None:
                return  # not queued any more: another worker has it, or it was cancelled
            run = claimed.run
            await self.emit.run(run)
            # After outputs were submitted, the waiting tool step completes in this stream.
            for step in answered:
                await self.emit.step(step)
            await self._supervise(run, control)

    async def _supervise(self, run: Row, control: Subscription) -> None:
        """Drive the run in a task that a cancel request interrupts; end it on any failure."""
        run_id = run["id"]
        cancel_requested = asyncio.Event()
        work = asyncio.create_task(self._drive(run), name=f"run-{run_id}")
        watcher = asyncio.create_task(self._watch(control, work, cancel_requested))
        try:
            await work
        except asyncio.CancelledError:
            if not cancel_requested.is_set() or not work.cancelled():
                # Shutdown: stop the work too; the lease lapses and recovery ends the run.
                work.cancel()
                raise
            await self._end(run_id, "cancelled")
        except _Cancelled:
            await self._end(run_id, "cancelled")
        except _BudgetSpent as exc:
            await self._end(run_id, "incomplete", incomplete_details={"reason": exc.reason})
        except BackendError as exc:
            logger.warning("run %s failed in the model backend: %s", run_id, exc.message)
            await self._end(run_id, "failed", last_error={"code": exc.code, "message": exc.message})
        except Exception:
            logger.exception("run %s failed unexpectedly", run_id)
            await self._end(
                run_id,
                "failed",
                last_error={
                    "code": "server_error",
                    "message": "The server had an error while processing the run.",
                },
            )
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    async def _watch(
        self, control: Subscription, work: asyncio.Task[None], cancel_requested: asyncio.Event
    ) -> None:
        while True:
            event = await control.get()
            if event is not None and event.event == "cancel":
                cancel_requested.set()
                work.cancel()
                return

    async def _end(self, run_id: str, to: RunStatus, **fields: Any) -> None:
        await end_run(self.db, self.emit, run_id, to, **fields)

    async def _drive(self, run: Row) -> None:
        first = True
        while True:
            if not first:
                run = await self._reload(run["id"])
                if run["status"] == "cancelling":
                    raise _Cancelled
            first = False
            acc = Accumulator(self.db, self.emit, run)
            try:
                outcome = await self._turn(run, acc)
            except BaseException:
                with contextlib.suppress(Exception):
                    await acc.save_partial()
                raise
            following = await self._settle(run, acc, outcome)
            if following != "continue":
                return

    async def _reload(self, run_id: str) -> Row:
        async with self.db.read() as conn:
            row = await conn.execute(sa.select(tables.runs).where(tables.runs.c.id == run_id))
            return dict(row.mappings().one())

    def _budget(self, run: Row, key: str, used: str) -> int | None:
        limit = run[key]
        if limit is None:
            return None
        return int(limit) - int((run["usage"] or {}).get(used, 0))

    async def _turn(self, run: Row, acc: Accumulator) -> Outcome:
        route = self.registry.resolve(run["model"])
        prompt_left = self._budget(run, "max_prompt_tokens", "prompt_tokens")
        completion_left = self._budget(run, "max_completion_tokens", "completion_tokens")
        if completion_left is not None and completion_left <= 0:
            raise _BudgetSpent("max_completion_tokens")
        try:
            async with self.db.read() as conn:
                context = await build_context(
                    conn, run, prompt_budget=prompt_left, context_window=_window(route)
                )
        except PromptBudgetExceeded:
            raise _BudgetSpent("max_prompt_tokens") from None
        offered = self.tools.offered(run)
        # The run's built-in calls so far, read once: they bound further calls and give
        # the citation sources and the files the answer may link.
        made = await self._builtin_calls(run["id"])
        kinds = {t.type for t, _ in offered.values()}
        prior = [c for c in made if c["type"] in kinds]
        choice = run["tool_choice"]
        if prior and (choice == "required" or isinstance(choice, dict)):
            # A built-in call runs here, not at the client: forcing it again would loop.
            choice = (
                "auto" if not isinstance(choice, dict) or choice["type"] != "function" else choice
            )
        if len(prior) >= MAX_BUILTIN_CALLS:
            offered = {}
        acc.builtin = {name: tool for name, (tool, _) in offered.items()}
        files, images = produced([c for c in made if c["type"] == "code_interpreter"])
        acc.citations = CitationStream(_sources(made), files=files)
        if images:
            shown = await shown_images(self.db, run["id"])
            acc.images = [i for i in images if i not in shown]
        functions = [t["function"] for t in run["tools"] if t["type"] == "function"]
        for name, (tool, entry) in offered.items():
            functions.append({**tool.definition(entry), "name": name})
        request = ChatRequest(
            model=route.upstream_model,
            messages=context.messages,
            tools=[{"type": "function", "function": f} for f in functions],
            tool_choice=_tool_choice(choice, offered) if functions else None,
            parallel_tool_calls=run["parallel_tool_calls"] if functions else None,
            response_format=(
                run["response_format"] if isinstance(run["response_format"], dict) else None
            ),
            temperature=run["temperature"],
            top_p=run["top_p"],
            max_tokens=completion_left,
            reasoning_effort=run["reasoning_effort"],
        )
        stream = route.backend.stream(request)
        try:
            async for chunk in stream:
                await acc.feed(chunk)
        finally:
            await stream.aclose()
        await acc.finish_text()
        return acc.outcome()

    async def _builtin_calls(self, run_id: str) -> list[dict[str, Any]]:
        """Every built-in call entry of the run's tool steps, in step order."""
        steps = tables.run_steps
        async with self.db.read() as conn:
            result = await conn.execute(
                sa.select(steps.c.step_details)
                .where(steps.c.run_id == run_id, steps.c.type == "tool_calls")
                .order_by(steps.c.sort_key, steps.c.id)
            )
            details = [row[0] for row in result]
        return [c for d in details for c in d.get("tool_calls", []) if c.get("type") != "function"]

    async def _run_builtin(
        self, run: Row, calls: list[Call], budget: int | None
    ) -> dict[str, dict[str, Any]]:
        """Execute the built-in calls of a completion; their step entries by call id."""
        offered = self.tools.offered(run)
        done: dict[str, dict[str, Any]] = {}
        ordinals: dict[str, int] = {}
        if calls:
            for made in await self._builtin_calls(run["id"]):
                ordinals[made["type"]] = ordinals.get(made["type"], 0) + 1
        for call in calls:
            tool, entry = offered[call.name]
            ordinals.setdefault(tool.type, 0)
            result = await tool.call(
                run, entry, call.id, call.arguments, ordinals[tool.type], budget
            )
            ordinals[tool.type] += 1
            done[call.id] = result.details
        return done

    async def _settle(self, run: Row, acc: Accumulator, outcome: Outcome) -> Next:
        usage = dict(run["usage"] or {"prompt_tokens": 0, "completion_tokens": 0})
        turn = usage_dict(outcome.usage)
        total = {k: int(usage.get(k, 0)) + turn[k] for k in ("prompt_tokens", "completion_tokens")}
        total["total_tokens"] = total["prompt_tokens"] + total["completion_tokens"]
        truncated = outcome.finish_reason == "length"
        calls = outcome.calls
        if calls and not run["parallel_tool_calls"]:
            calls = calls[:1]
        if truncated:
            await acc.close_message("incomplete", "max_tokens")
            await self._finish_tool_step(acc, calls, outcome, status="completed")
            await self._end(
                run["id"],
                "incomplete",
                usage=total,
                incomplete_details={"reason": "max_completion_tokens"},
            )
            return "incomplete"
        if not calls:
            # The last turn: the message, its step and the run end in one transaction.
            async with self.db.write() as conn:
                closed = await acc.close_message_in(conn, "completed")
                changes = await transition(conn, run["id"], "completed", usage=total)
            if closed:
                await acc.emit_closed_message()
            if changes is not None:
                await self.emit.changes(changes)
            return "completed"
        await acc.close_message("completed")
        offered = self.tools.offered(run)
        builtin = [c for c in calls if c.name in offered]
        done = await self._run_builtin(run, builtin, _output_budget(run, self.registry))
        await acc.builtin_results(done)
        calls = [c for c in calls if c.name not in offered]
        if not calls:
            # Only built-in calls: the step is complete and the model goes on.
            await self._finish_tool_step(acc, builtin, outcome, status="completed", done=done)
            async with self.db.write() as conn:
                await repos.runs.update(conn, run["project"], run["id"], {"usage": total})
            return "continue"
        await self._finish_tool_step(
            acc, [*builtin, *calls], outcome, status="in_progress", done=done
        )
        required = {
            "type": "submit_tool_outputs",
            "submit_tool_outputs": {
                "tool_calls": [
                    {
                        "id": c.id,
                        "type": "function",
                        "function": {"name": c.name, "arguments": c.arguments},
                    }
                    for c in calls
                ]
            },
        }
        async with self.db.write() as conn:
            changes = await transition(
                conn,
                run["id"],
                "requires_action",
                required_action=required,
                usage=total,
                expires_at=clock.now() + self.config.expires_seconds,
                worker_id=None,
                lease_until=None,
            )
        if changes is None:
            raise _Cancelled
        await self.emit.run(changes.run)
        return "requires_action"

    async def _finish_tool_step(
        self,
        acc: Accumulator,
        calls: list[Any],
        outcome: Outcome,
        *,
        status: str,
        done: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        """Store the step's calls; it stays in_progress while the outputs are awaited.

        ``done`` holds the entries of built-in calls already executed, by call id."""
        if acc.tool_step is None:
            return
        done = done or {}
        details = {
            "type": "tool_calls",
            "tool_calls": [
                done.get(c.id)
                or {
                    "id": c.id,
                    "type": "function",
                    "function": {"name": c.name, "arguments": c.arguments, "output": None},
                }
                for c in calls
            ],
        }
        changes: dict[str, Any] = {"step_details": details, "usage": usage_dict(outcome.usage)}
        if status == "completed":
            changes.update(status="completed", completed_at=clock.now())
        async with self.db.write() as conn:
            await repos.run_steps.update(conn, acc.run["project"], acc.tool_step["id"], changes)
        acc.tool_step = {**acc.tool_step, **changes}
        if status == "completed":
            await self.emit.step(acc.tool_step)


async def _complete_answered_tool_steps(conn: AsyncConnection, run_id: str) -> list[Row]:
    steps = tables.run_steps
    result = await conn.execute(
        sa.update(steps)
        .where(
            steps.c.run_id == run_id,
            steps.c.type == "tool_calls",
            steps.c.status == "in_progress",
        )
        .values(status="completed", completed_at=clock.now())
        .returning(*steps.c)
    )
    return [dict(r) for r in result.mappings()]


class _BudgetSpent(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _window(route: ModelRoute) -> int | None:
    """Prompt tokens (counted with OpenAI's tokenizer) that fit the route's context window.

    A quarter of the window is kept back because the model's own tokenizer may count more
    tokens than OpenAI's, and room is left for the reply.
    """
    if route.context_window is None:
        return None
    return route.context_window * 3 // 4 - min(1024, route.context_window // 4)


def _sources(made: list[dict[str, Any]]) -> Sources:
    """(call ordinal, result index) → file id for the run's file_search results so far."""
    searches = [c for c in made if c["type"] == "file_search"]
    return {
        (ordinal, i): result["file_id"]
        for ordinal, call in enumerate(searches)
        for i, result in enumerate(call["file_search"].get("results") or [])
    }


def _output_budget(run: Row, registry: BackendRegistry) -> int | None:
    """Tokens a built-in tool's output may take: a quarter of a known context window."""
    window = registry.resolve(run["model"]).context_window
    return window // 4 if window else None


def _tool_choice(value: Any, offered: dict[str, tuple[Any, dict[str, Any]]]) -> Any:
    if value is None or isinstance(value, str):
        return value
    if value.get("type") == "function":
        return {"type": "function", "function": {"name": value["function"]["name"]}}
    # A named built-in tool is forced as the function it is offered as.
    for name, (tool, _) in offered.items():
        if tool.type == value.get("type"):
            return {"type": "function", "function": {"name": name}}
    return "auto"
