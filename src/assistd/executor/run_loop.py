"""Executing one run: claim it, loop completions until it finishes or needs tool outputs.

Each turn is ``prepare`` (context, tools, request), the completion's stream folded by the
accumulator (whose effects the recorder writes and publishes), then ``resolve``, which
returns what happens next (``executor.turn``: finish, wait for tool outputs, or go on).
Every failure path ends the run: a backend error fails it with that error's code,
anything unexpected fails it with ``server_error``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from assistd import clock
from assistd.backends.base import BackendError
from assistd.backends.registry import BackendRegistry
from assistd.events.base import EventBus, Subscription, control_channel
from assistd.executor.accumulator import (
    Accumulator,
    Call,
    CloseMessage,
    Effect,
    Outcome,
    usage_dict,
)
from assistd.executor.claim import Claim, FirstTurn, NotClaimed, settled
from assistd.executor.context import PromptBudgetExceeded, build_context
from assistd.executor.emitter import Emitter
from assistd.executor.recorder import Recorder
from assistd.executor.state import Ended, end_run, finish, transition
from assistd.executor.turn import (
    MAX_BUILTIN_CALLS,
    BudgetSpent,
    Finish,
    NextStep,
    RequiresAction,
    RunAgain,
    Turn,
    build_request,
    context_window,
    output_budget,
    tokens_left,
    tool_choice_after,
    total_usage,
)
from assistd.observability import logs, metrics, tracing
from assistd.protocol.runs import TERMINAL_STATUSES, RunStatus
from assistd.queue.base import NewRun
from assistd.store import messages, run_steps, runs, usage
from assistd.store.database import Connection, Database
from assistd.store.records import Message, Run, RunStep
from assistd.store.tool_calls import ToolCall
from assistd.tools.base import ToolRegistry, ToolScope
from assistd.tools.citations import CitationStream

logger = logging.getLogger("assistd.executor")


@dataclass
class ExecutorConfig:
    expires_seconds: int


class _Cancelled(Exception):
    """The run's status moved to ``cancelling`` while we were working on it."""


class _Ended(Exception):
    """The run ended, or was deleted with its thread, while we were working on it: its
    ending was someone else's."""


class RunExecutor:
    def __init__(
        self,
        db: Database,
        bus: EventBus,
        registry: BackendRegistry,
        config: ExecutorConfig,
        tools: ToolRegistry | None = None,
    ) -> None:
        self.db = db
        self.bus = bus
        self.registry = registry
        self.config = config
        self.tools = tools or ToolRegistry({})
        self.emit = Emitter(bus)
        # The completions streaming now, by run: what ``save_streamed`` keeps.
        self._streaming: dict[str, tuple[Recorder, Accumulator]] = {}

    async def execute(self, run_id: str, created: NewRun | None = None) -> None:
        """Run ``run_id`` if it is queued; return when it is terminal or requires action.
        ``created``: the run as it was just stored in this process (handed over by the
        in-process queue); its claim then overlaps with its first turn's context read
        and upstream request instead of preceding them."""
        # Listen for a cancel before claiming: one sent right after the claim commits must
        # not be missed.
        async with self.bus.subscribe(control_channel(run_id)) as control:
            claim: Claim | None = None
            answered: list[RunStep] = []
            thread: Sequence[Message] | None = None
            if created is not None and created.run.usage is None:
                claiming = self._claim(run_id) if created.committed is None else _stored(created)
                claim = Claim(self.emit, claiming)
                run, thread = created.run, created.thread
            else:
                claimed = await self._claim(run_id)
                if claimed is None:
                    return  # not queued any more: another worker has it, or it was cancelled
                run = claimed
                if run.usage is not None:
                    # Resumed with tool outputs (a new run has no usage, and no step): the
                    # step that waited for them completes. Were the process to die in
                    # between, the run, in progress and no longer held, would end as
                    # abandoned runs do.
                    async with self.db.write() as conn:
                        answered = await run_steps.complete_waiting_tool_steps(
                            conn, run_id, clock.now()
                        )
            taken_at = time.perf_counter()
            logs.bind(project=run.project, thread_id=run.thread_id, run_id=run.id)
            if not answered:  # its first start (a resumed run has the waiting step answered)
                metrics.RUN_QUEUE_WAIT.observe(max(0.0, time.time() - run.created_at))
            logger.debug("run %s started (model %s)", run.id, run.model)
            if claim is None:
                await self.emit.run(run)
            # After outputs were submitted, the waiting tool step completes in this stream.
            for step in answered:
                await self.emit.step(step)
            with tracing.agent_span(
                assistant_id=run.assistant_id,
                run_id=run.id,
                thread_id=run.thread_id,
                model=run.model,
                project=run.project,
            ):
                await self._supervise(run, control, FirstTurn(taken_at, claim, thread))

    async def _claim(self, run_id: str) -> Run | None:
        """Take the run from ``queued`` to ``in_progress``; None when it was not queued.
        The queue holds its lease already (from lease_new, reserve or recovery) until the
        worker acks it: claiming is a status change only, one statement."""
        async with self.db.write_one() as conn:
            claimed = await transition(conn, run_id, "in_progress")
        return None if claimed is None else claimed.run

    async def _supervise(self, run: Run, control: Subscription, first: FirstTurn) -> None:
        """Drive the run, in this task, which a cancel request interrupts; end it on any
        failure. (In this task rather than one of its own: a new task would start only
        after what else is ready, such as the response of the request that queued the run,
        on the way to the first token.)"""
        run_id = run.id
        work = asyncio.current_task()
        assert work is not None
        driving, cancel_requested = True, False

        def stop() -> None:
            # Only while driving: once the drive is over, a cancel would hit what follows.
            nonlocal cancel_requested
            if driving:
                cancel_requested = True
                work.cancel()

        watcher = asyncio.create_task(self._watch(control, stop))
        try:
            try:
                await self._drive(run, first)
            finally:
                driving = False
        except asyncio.CancelledError:
            # The watcher's cancel is taken back; any other (shutdown: the lease lapses and
            # recovery ends the run) goes on up.
            if not cancel_requested or work.uncancel() > 0:
                raise
            await self._stopped(run_id, first.claim)
        except NotClaimed:
            logger.debug("run %s was no longer queued when claimed", run_id)
        except _Cancelled:
            await self._end(run_id, "cancelled")
        except _Ended:
            logger.info("run %s ended elsewhere while executing; stopped", run_id)
        except BudgetSpent as exc:
            await self._end(run_id, "incomplete", incomplete_details={"reason": exc.reason})
        except BackendError as exc:
            logger.warning("run %s failed in the model backend: %s", run_id, exc.message)
            await self._end(run_id, "failed", last_error={"code": exc.code, "message": exc.message})
        except Exception:
            if await self._gone(run_id):
                # Deleted with its thread under us (its writes fail): not a fault.
                logger.info("run %s was deleted while executing; stopped", run_id)
                return
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

    async def _watch(self, control: Subscription, stop: Callable[[], None]) -> None:
        while True:
            received = await control.get()
            if received is not None and received.event.event == "cancel":
                stop()
                return

    async def _end(self, run_id: str, to: RunStatus, **fields: Any) -> None:
        if await end_run(self.db, self.emit, run_id, to, **fields) is not None:
            _ended(run_id, to, fields.get("last_error"))

    async def _stopped(self, run_id: str, claim: Claim | None) -> None:
        """End a run that a stop request interrupted (its partial text already kept):
        expired when it is still in progress past its ``expires_at`` (the sweep asked),
        else cancelled; nothing when it ended meanwhile or is gone. (A stop is sent for a
        run in progress: a claim still in flight took, and is published first.)"""
        if claim is not None and not await claim.settle():
            return
        async with self.db.read() as conn:
            run = await runs.get(conn, run_id)
        if run is None:
            return
        overdue = (
            run.status == "in_progress"
            and run.expires_at is not None
            and run.expires_at <= clock.now()
        )
        await self._end(run_id, "expired" if overdue else "cancelled")

    async def _gone(self, run_id: str) -> bool:
        async with self.db.read() as conn:
            return await runs.get(conn, run_id) is None

    async def _drive(self, run: Run, first: FirstTurn) -> None:
        try:
            await self._turns(run, first)
        except Exception:
            # A failure before the claim settled ends the run only if the run is ours.
            if first.claim is not None and not await first.claim.settle():
                raise NotClaimed from None
            raise

    async def _turns(self, run: Run, starting: FirstTurn) -> None:
        first: FirstTurn | None = starting
        while True:
            if first is None:
                async with self.db.read() as conn:
                    current = await runs.get(conn, run.id)
                if current is None or current.status in TERMINAL_STATUSES:
                    raise _Ended
                run = current
                if run.status == "cancelling":
                    raise _Cancelled
            # A run claimed without usage has ended no turn: it never ran, so has no step.
            turn = await self.prepare(
                run,
                fresh=first is not None and run.usage is None,
                thread=first.thread if first is not None else None,
            )
            recorder = Recorder(self.db, self.emit, run)
            self._streaming[run.id] = (recorder, turn.accumulator)
            try:
                with tracing.chat_span(
                    model=run.model,
                    upstream_model=turn.request.model,
                    provider_name=_provider_name(turn),
                    messages=turn.request.messages,
                ) as span:
                    outcome = await self._complete(turn, recorder, first)
                    tracing.chat_result(
                        span,
                        input_tokens=outcome.usage.prompt_tokens,
                        output_tokens=outcome.usage.completion_tokens,
                        finish_reason=outcome.finish_reason,
                        text=outcome.text,
                        tool_calls=[
                            {"id": c.id, "name": c.name, "arguments": c.arguments}
                            for c in outcome.calls
                        ],
                    )
                first = None
            except BaseException:
                with contextlib.suppress(Exception):
                    await recorder.save_partial(turn.accumulator.partial_content())
                raise
            finally:
                self._streaming.pop(run.id, None)
            following = await self.resolve(run, turn, recorder, outcome)
            await self._advance(run, turn, recorder, following, usage_dict(outcome.usage))
            if not isinstance(following, RunAgain):
                return

    async def save_streamed(self) -> None:
        """Store the text of every message being streamed, in one write: deltas are not
        written as they come, so a crash loses only what came since (the message is then
        marked incomplete by recovery)."""
        if not self._streaming:
            return
        async with self.db.write() as conn:
            # Read inside the transaction: what is saved is the text as of its commit.
            contents = {
                recorder.message.id: content
                for recorder, accumulator in list(self._streaming.values())
                if recorder.message is not None
                and (content := accumulator.partial_content()) is not None
            }
            await messages.save_streamed(conn, contents)

    async def prepare(
        self, run: Run, *, fresh: bool = False, thread: Sequence[Message] | None = None
    ) -> Turn:
        """The next completion's request (context, tools, options) and its accumulator;
        ``fresh``: the run's first, with no step stored yet; ``thread``: the thread's
        messages, when known (not read again)."""
        route = self.registry.resolve(run.model)
        prompt_left = tokens_left(run.max_prompt_tokens, run.usage, "prompt_tokens")
        completion_left = tokens_left(run.max_completion_tokens, run.usage, "completion_tokens")
        if completion_left is not None and completion_left <= 0:
            raise BudgetSpent("max_completion_tokens")
        enabled = self.tools.offered(run.tools)
        # One read for all the turn needs (a read is a transaction: on PostgreSQL, round
        # trips of its own).
        async with self.db.read() as conn:
            try:
                context = await build_context(
                    conn,
                    run,
                    prompt_budget=prompt_left,
                    context_window=context_window(route),
                    fresh=fresh,
                    thread=thread,
                )
            except PromptBudgetExceeded:
                raise BudgetSpent("max_prompt_tokens") from None
            # The run's built-in calls so far, read once: they bound further calls and give
            # the citation sources and the files the answer may link.
            made = run_steps.builtin_calls(context.steps)
            sources = self.tools.message_sources(made)
            images = sources.images
            if images:
                written = await messages.of_run(conn, run.id)
                shown = {
                    str(part["image_file"]["file_id"])
                    for message in written
                    for part in message.content or []
                    if part.get("type") == "image_file"
                }
                images = [i for i in images if i not in shown]
        kinds = {item.tool.type for item in enabled.values()}
        prior = [c for c in made if c.type in kinds]
        choice = tool_choice_after(run.tool_choice, prior)
        offered = {} if len(prior) >= MAX_BUILTIN_CALLS else enabled
        accumulator = Accumulator(
            run.model,
            builtin={name: item.tool for name, item in offered.items()},
            citations=CitationStream(sources.sources, files=sources.files),
            images=images,
        )
        request = build_request(run, route, context.messages, offered, choice, completion_left)
        return Turn(route, request, enabled, made, accumulator)

    async def _complete(
        self,
        turn: Turn,
        recorder: Recorder,
        first: FirstTurn | None = None,
    ) -> Outcome:
        """Stream the completion, carrying out the accumulator's effects as they come;
        ``first``: this is the run execution's first completion."""
        acc = turn.accumulator
        taken_at = first.taken_at if first is not None else None
        claim = first.claim if first is not None else None
        stream = turn.route.backend.stream(turn.request)
        if not turn.request.tools or turn.request.tool_choice == "none":
            recorder.store_message_ahead(claim)
        try:
            try:
                async for chunk in stream:
                    if taken_at is not None:  # once per run execution, not per token
                        metrics.RUN_TTFT.observe(time.perf_counter() - taken_at)
                        taken_at = None
                    if claim is not None:
                        await settled(claim)
                        claim = None
                    await recorder.apply(acc.feed(chunk))
            finally:
                await stream.aclose()
        except BaseException:
            with contextlib.suppress(Exception):
                await recorder.drop_unopened()
            raise
        if claim is not None:
            await settled(claim)
        await recorder.drop_unopened()
        await recorder.apply(acc.finish_text())
        return acc.outcome()

    async def resolve(self, run: Run, turn: Turn, recorder: Recorder, outcome: Outcome) -> NextStep:
        """Close what the completion left open, run its built-in calls; what comes next."""
        acc = turn.accumulator
        used = usage_dict(outcome.usage)
        total = total_usage(run, used)
        calls = outcome.calls
        if calls and not run.parallel_tool_calls:
            calls = calls[:1]
        if outcome.finish_reason == "length":
            await recorder.apply(_effects(acc.close_message("incomplete", "max_tokens")))
            await recorder.finish_tool_step(_entries(calls, {}), used, completed=True)
            return Finish("incomplete", total)
        if not calls:
            return Finish("completed", total)
        await recorder.apply(_effects(acc.close_message("completed")))
        builtin = [c for c in calls if c.name in turn.enabled]
        done = await self._run_builtin(run, turn, builtin)
        await recorder.apply(acc.builtin_results(done))
        functions = [c for c in calls if c.name not in turn.enabled]
        if not functions:
            # Only built-in calls: the step is complete and the model goes on.
            await recorder.finish_tool_step(_entries(builtin, done), used, completed=True)
            return RunAgain(total)
        await recorder.finish_tool_step(
            _entries([*builtin, *functions], done), used, completed=False
        )
        return RequiresAction(functions, total)

    async def _advance(
        self,
        run: Run,
        turn: Turn,
        recorder: Recorder,
        following: NextStep,
        used: dict[str, int],
    ) -> None:
        """Move the run as ``resolve`` decided; the turn's ``used`` tokens are counted in
        the project's daily usage in the same transaction (``run.usage`` is cumulative:
        only this turn's tokens are added)."""
        if isinstance(following, RunAgain):
            async with self.db.write() as conn:
                await runs.set_usage(conn, run.id, following.usage)
                await _count(conn, run, used)
        elif isinstance(following, Finish) and following.status == "incomplete":
            async with self.db.write() as conn:
                changes = await transition(
                    conn,
                    run.id,
                    "incomplete",
                    usage=following.usage,
                    incomplete_details={"reason": "max_completion_tokens"},
                )
                await _count(conn, run, used)
            if changes is not None:
                await self.emit.changes(changes)
        elif isinstance(following, Finish):
            # The last turn: the message, its step and the run end in one write.
            closing = turn.accumulator.close_message("completed")
            if closing is None:
                async with self.db.write() as conn:
                    changes = await transition(conn, run.id, "completed", usage=following.usage)
                    await _count(conn, run, used)
            else:
                ended = Ended(*recorder.end_message(closing), _counted(run, used))
                async with self.db.write_one() as conn:
                    changes = await finish(conn, run.id, "completed", ended, usage=following.usage)
                await recorder.emit_closed_message()
            if changes is not None:
                _ended(run.id, "completed", None)
                await self.emit.changes(changes)
        else:
            await self._require_action(run, following, used)

    async def _require_action(
        self, run: Run, following: RequiresAction, used: dict[str, int]
    ) -> None:
        required = {
            "type": "submit_tool_outputs",
            "submit_tool_outputs": {
                "tool_calls": [
                    {
                        "id": c.id,
                        "type": "function",
                        "function": {"name": c.name, "arguments": c.arguments},
                    }
                    for c in following.calls
                ]
            },
        }
        async with self.db.write() as conn:
            changes = await transition(
                conn,
                run.id,
                "requires_action",
                required_action=required,
                usage=following.usage,
                expires_at=clock.now() + self.config.expires_seconds,
            )
            await _count(conn, run, used)
        if changes is None:
            raise _Cancelled
        metrics.TOOL_EXECUTIONS.labels("function", "delegated").inc(len(following.calls))
        logger.debug("run %s requires action (%d call(s))", run.id, len(following.calls))
        await self.emit.run(changes.run)

    async def _run_builtin(self, run: Run, turn: Turn, calls: list[Call]) -> dict[str, ToolCall]:
        """Execute the built-in calls of a completion; their step entries by call id."""
        budget = output_budget(turn.route)
        scope = ToolScope.of_run(run)
        done: dict[str, ToolCall] = {}
        ordinals: dict[str, int] = {}
        if calls:
            for made in turn.made:
                ordinals[made.type] = ordinals.get(made.type, 0) + 1
        for call in calls:
            item = turn.enabled[call.name]
            kind = item.tool.type
            ordinals.setdefault(kind, 0)
            with tracing.tool_span(
                name=call.name, kind=kind, call_id=call.id, arguments=call.arguments
            ) as span:
                try:
                    result = await item.tool.execute(
                        scope, item.entry, call.id, call.arguments, ordinals[kind], budget
                    )
                except Exception:
                    metrics.TOOL_EXECUTIONS.labels(kind, "error").inc()
                    raise
                metrics.TOOL_EXECUTIONS.labels(kind, "success").inc()
                tracing.tool_result(span, result.model.output if result.model else None)
            done[call.id] = result
            ordinals[kind] += 1
        return done


async def _stored(created: NewRun) -> Run | None:
    """The claim of a run its creation stored ``in_progress`` for this worker (handed
    over before it committed, ``RunQueue.start_now``): the run, once committed; None
    when that write failed."""
    assert created.committed is not None
    return created.run if await asyncio.shield(created.committed) else None


async def _count(conn: Connection, run: Run, used: dict[str, int]) -> None:
    """Add a model call's tokens to the project's usage, whether or not the run's own
    transition took (a run cancelled meanwhile still spent them)."""
    await usage.add(conn, _counted(run, used))


def _counted(run: Run, used: dict[str, int]) -> dict[str, Any]:
    return usage.counted(
        run.project,
        run.model,
        usage.day_of(clock.now()),
        prompt_tokens=used["prompt_tokens"],
        completion_tokens=used["completion_tokens"],
    )


def _provider_name(turn: Turn) -> str:
    """The backend's name for traces (an upstream's configured name, else its owner)."""
    name = getattr(turn.route.backend, "name", None)
    return name if isinstance(name, str) else turn.route.owned_by


def _ended(run_id: str, status: RunStatus, last_error: Any) -> None:
    """Log the run's end and put it on its span (the current one, where traced)."""
    logger.debug("run %s ended %s", run_id, status)
    span = tracing.current()
    if span.is_recording():
        span.set_attribute("assistd.run.status", status)
        if status == "failed":
            code = last_error.get("code") if isinstance(last_error, dict) else None
            tracing.failed(span, str(code or "server_error"))


def _effects(effect: CloseMessage | None) -> list[Effect]:
    return [] if effect is None else [effect]


def _entries(calls: list[Call], done: Mapping[str, ToolCall]) -> list[ToolCall]:
    """The step's calls: the built-in ones as they ran, the rest as function calls."""
    return [done.get(c.id) or ToolCall.function(c.id, c.name, c.arguments) for c in calls]
