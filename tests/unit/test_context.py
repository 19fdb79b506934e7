"""The model's context for a run (``executor.context.build_context``).

Threads, messages, runs and steps are real rows in a migrated SQLite store, made through
the store's functions as the services and the recorder make them. Token counts are the
real tokenizer's; ``size`` below is the documented rule (4 framing tokens per message plus
its content and its tool calls) that the budget cases are computed from, and a few
literal counts anchor that rule.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import pytest

from assistd import clock
from assistd.executor.context import (
    MESSAGE_OVERHEAD,
    Context,
    PromptBudgetExceeded,
    build_context,
    estimate_tokens,
)
from assistd.store import messages, run_steps, runs
from assistd.store.database import Database
from assistd.store.records import Message, Run, RunStep, Thread
from assistd.store.tool_calls import ModelView, ToolCall
from assistd.tokenizer import count_tokens
from tests.store_support import (
    message_record,
    migrated_url,
    new_assistant,
    new_thread,
    run_on,
    run_record,
    step_record,
)

PROJECT = "proj_context"
INSTRUCTIONS = "Be brief."  # 3 tokens on both vocabularies
Scenario = Callable[[Database], Coroutine[Any, Any, None]]


@pytest.fixture(scope="module")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with migrated_url("sqlite", tmp_path_factory.mktemp("context"), "assistd.db") as url:
        yield url


def run_scenario(url: str, scenario: Scenario) -> None:
    run_on(url, scenario)


def size(entry: dict[str, Any], model: str = "gpt-4o") -> int:
    content = entry.get("content")
    text = content if isinstance(content, str) else json.dumps(content or "")
    calls = json.dumps(entry["tool_calls"]) if entry.get("tool_calls") else ""
    return MESSAGE_OVERHEAD + count_tokens(text, model) + count_tokens(calls, model)


def text(value: str) -> dict[str, Any]:
    return {"type": "text", "text": {"value": value, "annotations": []}}


# --- rows, through the store ----------------------------------------------------------


class Builder:
    """One thread and its assistant; runs, messages and steps added to it in order."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.thread: Thread
        self.assistant_id = ""

    async def start(self) -> Builder:
        async with self.db.write() as conn:
            assistant = await new_assistant(conn, PROJECT, model="gpt-4o")
            self.thread = await new_thread(conn, PROJECT)
        self.assistant_id = assistant.id
        return self

    async def user(self, *parts: str | dict[str, Any], **fields: Any) -> Message:
        content = [text(p) if isinstance(p, str) else p for p in parts]
        async with self.db.write() as conn:
            return await messages.add(
                conn,
                messages.new(
                    PROJECT,
                    self.thread.id,
                    role="user",
                    content=content,
                    attachments=fields.get("attachments", []),
                    metadata={},
                ),
            )

    async def run(
        self,
        *,
        status: str = "in_progress",
        instructions: str = INSTRUCTIONS,
        model: str = "gpt-4o",
        truncation: dict[str, Any] | None = None,
    ) -> Run:
        run = run_record(
            project=PROJECT,
            created_at=clock.now(),
            thread_id=self.thread.id,
            assistant_id=self.assistant_id,
            status=status,
            started_at=clock.now(),
            model=model,
            instructions=instructions,
            truncation_strategy=truncation or {"type": "auto", "last_messages": None},
        )
        async with self.db.write() as conn:
            assert await runs.create(conn, run)
        return run

    def _step(self, run: Run, kind: str, details: dict[str, Any]) -> RunStep:
        return step_record(run, kind, step_details=details)

    async def reply(self, run: Run, *parts: str, with_step: bool = True) -> Message:
        """An assistant message ``run`` wrote, with its message_creation step."""
        message = message_record(
            run,
            status="completed",
            content=[text(p) for p in parts],
            completed_at=clock.now(),
        )
        message_id = message.id
        details = {"type": "message_creation", "message_creation": {"message_id": message_id}}
        async with self.db.write() as conn:
            if with_step:
                step = self._step(run, "message_creation", details)
                await run_steps.start(conn, step.but(status="completed"))
            await messages.start(conn, message)
        return message

    async def tools(self, run: Run, *calls: ToolCall, completed: bool = True) -> RunStep:
        """A tool_calls step of ``run`` holding ``calls`` (waiting for outputs unless
        ``completed``), stored as the recorder stores one."""
        step = self._step(run, "tool_calls", {"type": "tool_calls", "tool_calls": []})
        async with self.db.write() as conn:
            await run_steps.start(conn, step)
            return await run_steps.save_tool_calls(
                conn,
                step,
                calls,
                usage={"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                completed_at=clock.now() if completed else None,
            )

    async def context(
        self, run: Run, *, budget: int | None = None, window: int | None = None, fresh: bool = False
    ) -> Context:
        async with self.db.read() as conn:
            return await build_context(
                conn, run, prompt_budget=budget, context_window=window, fresh=fresh
            )


def answered(call_id: str, name: str, arguments: str, output: str | None) -> ToolCall:
    return ToolCall(call_id, "function", {"name": name, "arguments": arguments, "output": output})


def call_turn(*calls: tuple[str, str, str]) -> dict[str, Any]:
    return {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": i, "type": "function", "function": {"name": n, "arguments": a}}
            for i, n, a in calls
        ],
    }


def tool(call_id: str, output: str) -> dict[str, Any]:
    return {"role": "tool", "tool_call_id": call_id, "content": output}


SYSTEM = {"role": "system", "content": INSTRUCTIONS}


# --- counting ---------------------------------------------------------------------------


def test_estimate_tokens_is_the_tokenizer_count() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens("hello world", "gpt-4o") == 2
    sample = "Привет, как дела? 你好世界"
    assert estimate_tokens(sample, "gpt-4o") == count_tokens(sample, "gpt-4o") == 9
    assert estimate_tokens(sample, "gpt-4") == count_tokens(sample, "gpt-4") == 14


def test_prompt_tokens_anchor(database_url: str) -> None:
    async def scenario(db: Database) -> None:
        b = await Builder(db).start()
        await b.user("hello world")
        ctx = await b.context(await b.run())
        # system: 4 + 3 ("Be brief."), user: 4 + 2 ("hello world").
        assert ctx.prompt_tokens == 13
        assert ctx.messages == [SYSTEM, {"role": "user", "content": "hello world"}]

    run_scenario(database_url, scenario)


def test_tokens_are_counted_with_the_runs_model(database_url: str) -> None:
    async def scenario(db: Database) -> None:
        b = await Builder(db).start()
        await b.user("Привет, как дела? 你好世界")
        newer = await b.context(await b.run(status="completed", model="gpt-4o", instructions=""))
        older = await b.context(await b.run(model="gpt-4", instructions=""))
        assert (newer.prompt_tokens, older.prompt_tokens) == (4 + 9, 4 + 14)

    run_scenario(database_url, scenario)


# --- what goes in ---------------------------------------------------------------------


def test_empty_thread_without_instructions(database_url: str) -> None:
    async def scenario(db: Database) -> None:
        b = await Builder(db).start()
        run = await b.run(instructions="")
        assert await b.context(run) == Context(messages=[], prompt_tokens=0, dropped=0)
        # Nothing to drop is not over budget, whatever the budget.
        assert await b.context(run, budget=1) == Context(messages=[], prompt_tokens=0, dropped=0)

    run_scenario(database_url, scenario)


def test_instructions_become_the_system_message(database_url: str) -> None:
    async def scenario(db: Database) -> None:
        b = await Builder(db).start()
        ctx = await b.context(await b.run())
        assert ctx == Context(messages=[SYSTEM], prompt_tokens=4 + 3, dropped=0)

    run_scenario(database_url, scenario)


def test_a_fresh_run_reads_no_steps_and_gets_the_same_context(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[str] = []
    of_run = run_steps.of_run

    async def counted(conn: Any, run_id: str) -> list[RunStep]:
        reads.append(run_id)
        return await of_run(conn, run_id)

    monkeypatch.setattr(run_steps, "of_run", counted)

    async def scenario(db: Database) -> None:
        b = await Builder(db).start()
        await b.user("first question")
        earlier = await b.run(status="completed")
        await b.reply(earlier, "first answer")
        await b.user("second question")
        run = await b.run()
        fresh = await b.context(run, fresh=True)
        assert reads == []
        assert fresh == await b.context(run)
        assert reads == [run.id]
        assert [m["content"] for m in fresh.messages[1:]] == [
            "first question",
            "first answer",
            "second question",
        ]

    run_scenario(database_url, scenario)


def test_history_in_order_with_earlier_runs_replies(database_url: str) -> None:
    async def scenario(db: Database) -> None:
        b = await Builder(db).start()
        await b.user("first question")
        earlier = await b.run(status="completed")
        await b.tools(earlier, answered("call_old", "lookup", "{}", "old result"))
        await b.reply(earlier, "first answer")
        await b.user("second question")
        # Another thread's messages never leak in.
        other = await Builder(db).start()
        await other.user("elsewhere")
        ctx = await b.context(await b.run())
        # An earlier run shows as its reply only: its tool calls are not replayed.
        assert ctx.messages == [
            SYSTEM,
            {"role": "user", "content": "first question"},
            {"role": "assistant", "content": "first answer"},
            {"role": "user", "content": "second question"},
        ]
        assert ctx.prompt_tokens == sum(size(m) for m in ctx.messages)
        assert ctx.dropped == 0

    run_scenario(database_url, scenario)


def test_content_parts_for_the_model(database_url: str) -> None:
    async def scenario(db: Database) -> None:
        b = await Builder(db).start()
        image = {"type": "image_url", "image_url": {"url": "https://x/y.png", "detail": "low"}}
        file_image = {"type": "image_file", "image_file": {"file_id": "file-abc", "detail": "auto"}}
        await b.user("line one", "line two")
        await b.user("look", file_image)
        await b.user("see", image)
        await b.user(file_image, image)
        ctx = await b.context(await b.run(instructions=""))
        assert [m["content"] for m in ctx.messages] == [
            "line one\nline two",  # text parts joined into one string
            "look\n[image file file-abc]",  # file bytes are not sent: a placeholder
            [
                {"type": "text", "text": "see"},
                {"type": "image_url", "image_url": {"url": "https://x/y.png", "detail": "low"}},
            ],
            [
                {"type": "text", "text": "[image file file-abc]"},
                {"type": "image_url", "image_url": {"url": "https://x/y.png", "detail": "low"}},
            ],
        ]
        # A part list is counted as its JSON.
        assert ctx.prompt_tokens == sum(size(m) for m in ctx.messages)

    run_scenario(database_url, scenario)


def test_attachments_do_not_reach_the_messages(database_url: str) -> None:
    async def scenario(db: Database) -> None:
        b = await Builder(db).start()
        attachment = {"file_id": "file-doc", "tools": [{"type": "file_search"}]}
        await b.user("summarise the file", attachments=[attachment])
        ctx = await b.context(await b.run(instructions=""))
        # Attached files reach the model through file_search, not through the message.
        assert ctx.messages == [{"role": "user", "content": "summarise the file"}]

    run_scenario(database_url, scenario)


# --- the run's own turns ----------------------------------------------------------------


def test_own_turns_follow_the_history_in_step_order(database_url: str) -> None:
    async def scenario(db: Database) -> None:
        b = await Builder(db).start()
        await b.user("weather?")
        run = await b.run()
        await b.tools(
            run,
            answered("call_a", "weather", '{"city":"Paris"}', "sunny"),
            answered("call_b", "weather", '{"city":"Rome"}', None),  # no output: empty
        )
        await b.reply(run, "Paris is sunny.")
        await b.user("thanks")  # added after the run's reply, still history
        ctx = await b.context(run)
        assert ctx.messages == [
            SYSTEM,
            {"role": "user", "content": "weather?"},
            {"role": "user", "content": "thanks"},
            call_turn(
                ("call_a", "weather", '{"city":"Paris"}'), ("call_b", "weather", '{"city":"Rome"}')
            ),
            tool("call_a", "sunny"),
            tool("call_b", ""),
            {"role": "assistant", "content": "Paris is sunny."},
        ]
        assert ctx.prompt_tokens == sum(size(m) for m in ctx.messages)

    run_scenario(database_url, scenario)


def test_text_then_calls_of_one_completion_are_one_assistant_turn(database_url: str) -> None:
    async def scenario(db: Database) -> None:
        b = await Builder(db).start()
        run = await b.run(instructions="")
        await b.reply(run, "Let me check.")
        await b.tools(run, answered("call_1", "lookup", "{}", "found"))
        await b.tools(run, answered("call_2", "lookup", '{"more":true}', "more"))
        await b.reply(run, "Done.")
        ctx = await b.context(run)
        merged = {"role": "assistant", "content": "Let me check."} | {
            "tool_calls": call_turn(("call_1", "lookup", "{}"))["tool_calls"]
        }
        # The second call step follows a tool result, so it is a turn of its own.
        assert ctx.messages == [
            merged,
            tool("call_1", "found"),
            call_turn(("call_2", "lookup", '{"more":true}')),
            tool("call_2", "more"),
            {"role": "assistant", "content": "Done."},
        ]
        assert ctx.prompt_tokens == sum(size(m) for m in ctx.messages)

    run_scenario(database_url, scenario)


def test_steps_that_add_nothing(database_url: str) -> None:
    async def scenario(db: Database) -> None:
        b = await Builder(db).start()
        run = await b.run(instructions="")
        await b.reply(run)  # a reply with no content yet
        await b.reply(run, "no step", with_step=False)  # not announced by any step
        # A built-in call stored without its model view, then one waiting for outputs.
        await b.tools(run, ToolCall("call_fs", "file_search", {"results": []}))
        await b.tools(run, answered("call_wait", "lookup", "{}", None), completed=False)
        assert await b.context(run) == Context(messages=[], prompt_tokens=0, dropped=0)

    run_scenario(database_url, scenario)


def test_builtin_calls_replay_as_the_function_call_the_model_made(database_url: str) -> None:
    async def scenario(db: Database) -> None:
        b = await Builder(db).start()
        run = await b.run(instructions="")
        view = ModelView(name="file_search", arguments='{"query":"q"}', output="chunk text")
        await b.tools(
            run,
            ToolCall("call_fs", "file_search", {"ranking_options": {}, "results": []}, view),
            ToolCall("call_none", "code_interpreter", {"input": "1+1", "outputs": []}),
        )
        ctx = await b.context(run)
        assert ctx.messages == [
            call_turn(("call_fs", "file_search", '{"query":"q"}')),
            tool("call_fs", "chunk text"),
        ]

    run_scenario(database_url, scenario)


# --- truncation_strategy: last_messages -----------------------------------------------


@pytest.mark.parametrize(("keep", "kept", "dropped"), [(1, 1, 3), (3, 3, 1), (4, 4, 0), (9, 4, 0)])
def test_last_messages_keeps_the_newest_history(
    database_url: str, keep: int, kept: int, dropped: int
) -> None:
    async def scenario(db: Database) -> None:
        b = await Builder(db).start()
        for n in range(4):
            await b.user(f"message {n}")
        run = await b.run(truncation={"type": "last_messages", "last_messages": keep})
        await b.reply(run, "own reply")
        ctx = await b.context(run)
        history = [{"role": "user", "content": f"message {n}"} for n in range(4)]
        # The run's own turns are not among the "last messages": they always stay.
        own = {"role": "assistant", "content": "own reply"}
        assert ctx.messages == [SYSTEM, *history[4 - kept :], own]
        assert ctx.dropped == dropped
        assert ctx.prompt_tokens == sum(size(m) for m in ctx.messages)

    run_scenario(database_url, scenario)


@pytest.mark.parametrize(
    "strategy",
    [
        {"type": "last_messages", "last_messages": 0},
        {"type": "last_messages", "last_messages": None},
        {"type": "auto", "last_messages": 1},
        {},
    ],
)
def test_strategies_that_keep_everything(database_url: str, strategy: dict[str, Any]) -> None:
    async def scenario(db: Database) -> None:
        b = await Builder(db).start()
        for n in range(3):
            await b.user(f"message {n}")
        # 0 (which the API refuses) and a missing count mean no limit; "auto" ignores it.
        ctx = await b.context(await b.run(instructions="", truncation=strategy))
        assert len(ctx.messages) == 3
        assert ctx.dropped == 0

    run_scenario(database_url, scenario)


# --- budgets: max_prompt_tokens and the context window ----------------------------------


async def five_messages(b: Builder) -> tuple[Run, list[dict[str, Any]]]:
    texts = ["alpha beta", "gamma", "delta epsilon zeta", "eta", "theta iota"]
    for t in texts:
        await b.user(t)
    run = await b.run()
    return run, [{"role": "user", "content": t} for t in texts]


def test_no_limit_keeps_everything(database_url: str) -> None:
    async def scenario(db: Database) -> None:
        b = await Builder(db).start()
        await b.user("word " * 2000)
        ctx = await b.context(await b.run())
        assert len(ctx.messages) == 2
        assert ctx.dropped == 0
        assert ctx.prompt_tokens > 2000

    run_scenario(database_url, scenario)


@pytest.mark.parametrize("limit", ["budget", "window"])
def test_a_prompt_exactly_at_the_limit_is_kept_whole(database_url: str, limit: str) -> None:
    async def scenario(db: Database) -> None:
        b = await Builder(db).start()
        run, history = await five_messages(b)
        total = sum(size(m) for m in [SYSTEM, *history])
        ctx = await b.context(run, **{limit: total})
        assert ctx == Context(messages=[SYSTEM, *history], prompt_tokens=total, dropped=0)

    run_scenario(database_url, scenario)


@pytest.mark.parametrize("limit", ["budget", "window"])
def test_one_token_under_drops_the_oldest(database_url: str, limit: str) -> None:
    async def scenario(db: Database) -> None:
        b = await Builder(db).start()
        run, history = await five_messages(b)
        total = sum(size(m) for m in [SYSTEM, *history])
        ctx = await b.context(run, **{limit: total - 1})
        assert ctx.messages == [SYSTEM, *history[1:]]
        assert (ctx.prompt_tokens, ctx.dropped) == (total - size(history[0]), 1)

    run_scenario(database_url, scenario)


def test_auto_drops_until_it_fits_after_last_messages(database_url: str) -> None:
    async def scenario(db: Database) -> None:
        b = await Builder(db).start()
        texts = ["alpha beta", "gamma", "delta epsilon zeta", "eta", "theta iota"]
        for t in texts:
            await b.user(t)
        run = await b.run(truncation={"type": "last_messages", "last_messages": 3})
        history = [{"role": "user", "content": t} for t in texts]
        fits = size(SYSTEM) + size(history[3]) + size(history[4])
        ctx = await b.context(run, budget=fits + size(history[2]) - 1)
        # Two dropped by last_messages, one more by the budget: both are counted.
        assert ctx.messages == [SYSTEM, history[3], history[4]]
        assert (ctx.prompt_tokens, ctx.dropped) == (fits, 3)

    run_scenario(database_url, scenario)


def test_the_smaller_limit_binds(database_url: str) -> None:
    async def scenario(db: Database) -> None:
        b = await Builder(db).start()
        run, history = await five_messages(b)
        total = sum(size(m) for m in [SYSTEM, *history])
        keep_two = size(SYSTEM) + size(history[3]) + size(history[4])
        for budget, window in [(keep_two, total), (total, keep_two), (keep_two, keep_two)]:
            ctx = await b.context(run, budget=budget, window=window)
            assert ctx.messages == [SYSTEM, *history[3:]]
            assert (ctx.prompt_tokens, ctx.dropped) == (keep_two, 3)

    run_scenario(database_url, scenario)


def test_budget_that_fits_only_the_newest_message(database_url: str) -> None:
    async def scenario(db: Database) -> None:
        b = await Builder(db).start()
        run, history = await five_messages(b)
        newest = size(SYSTEM) + size(history[-1])
        ctx = await b.context(run, budget=newest)
        assert ctx == Context(messages=[SYSTEM, history[-1]], prompt_tokens=newest, dropped=4)
        # One token less and not even the newest message fits: the run cannot go on.
        with pytest.raises(PromptBudgetExceeded):
            await b.context(run, budget=newest - 1)

    run_scenario(database_url, scenario)


def test_budget_smaller_than_instructions_and_own_turns(database_url: str) -> None:
    async def scenario(db: Database) -> None:
        b = await Builder(db).start()
        run = await b.run()
        await b.reply(run, "own reply")
        fixed = size(SYSTEM) + size({"role": "assistant", "content": "own reply"})
        assert (await b.context(run, budget=fixed)).prompt_tokens == fixed
        with pytest.raises(PromptBudgetExceeded):
            await b.context(run, budget=fixed - 1)

    run_scenario(database_url, scenario)


def test_a_context_window_never_ends_the_run(database_url: str) -> None:
    async def scenario(db: Database) -> None:
        b = await Builder(db).start()
        run, _ = await five_messages(b)
        # A window smaller than the instructions alone: every thread message goes, and the
        # oversized rest is sent for the model to refuse (not PromptBudgetExceeded).
        ctx = await b.context(run, window=size(SYSTEM) - 1)
        assert ctx == Context(messages=[SYSTEM], prompt_tokens=size(SYSTEM), dropped=5)
        # With a larger budget the window still binds, and still does not raise.
        ctx = await b.context(run, budget=10_000, window=1)
        assert (ctx.messages, ctx.dropped) == ([SYSTEM], 5)
        # A budget equal to the window is the run's own limit: that one raises.
        with pytest.raises(PromptBudgetExceeded):
            await b.context(run, budget=size(SYSTEM), window=size(SYSTEM))

    run_scenario(database_url, scenario)


def test_truncation_keeps_a_tool_call_with_its_output(database_url: str) -> None:
    async def scenario(db: Database) -> None:
        b = await Builder(db).start()
        for t in ["old one", "old two", "what is 6 times 7?"]:
            await b.user(t)
        run = await b.run()
        await b.tools(run, answered("call_m", "multiply", '{"a":6,"b":7}', "42"))
        own = [call_turn(("call_m", "multiply", '{"a":6,"b":7}')), tool("call_m", "42")]
        newest = {"role": "user", "content": "what is 6 times 7?"}
        budget = size(SYSTEM) + size(newest) + sum(size(m) for m in own)
        ctx = await b.context(run, budget=budget)
        # Only thread history is dropped; the call and its result stay together.
        assert ctx == Context(messages=[SYSTEM, newest, *own], prompt_tokens=budget, dropped=2)
        # One under: the newest question would have to go, so the budget is exceeded.
        with pytest.raises(PromptBudgetExceeded):
            await b.context(run, budget=budget - 1)
        # The same squeeze from a context window drops the question but keeps the pair.
        ctx = await b.context(run, window=budget - 1)
        assert ctx.messages == [SYSTEM, *own]
        assert ctx.dropped == 3

    run_scenario(database_url, scenario)


def test_history_already_emptied_by_last_messages_is_no_excess(database_url: str) -> None:
    async def scenario(db: Database) -> None:
        b = await Builder(db).start()
        run = await b.run(truncation={"type": "last_messages", "last_messages": 1})
        await b.reply(run, "own reply")
        # Only the run's own message in the thread: no history to lose, so a budget that
        # fits the fixed part is enough.
        fixed = size(SYSTEM) + size({"role": "assistant", "content": "own reply"})
        ctx = await b.context(run, budget=fixed)
        assert (ctx.prompt_tokens, ctx.dropped) == (fixed, 0)

    run_scenario(database_url, scenario)
