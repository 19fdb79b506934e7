"""One turn of the run loop: what ``RunExecutor.prepare`` asks the model, and what
``RunExecutor.resolve`` decides comes next, on a real store and a scripted model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from assistd.backends.base import Usage
from assistd.backends.scripted import Reply, text_reply, tool_reply
from assistd.executor.turn import BudgetSpent, Finish, RequiresAction, RunAgain
from assistd.store.tool_calls import tool_calls_of
from tests.unit.loop_support import (
    INSTRUCTIONS,
    LOOKUP_ENTRY,
    UPSTREAM,
    WEATHER,
    WINDOW,
    WINDOWED,
    Env,
    Lookup,
    resolve_once,
    run_in,
    seed,
    stored,
    usage,
)

# --- prepare -----------------------------------------------------------------------------


def test_prepare_builds_the_request_from_the_run_and_its_thread(tmp_path: Path) -> None:
    async def scenario(env: Env) -> None:
        run = await seed(
            env,
            history=[("user", "Hi"), ("assistant", "Hello!")],
            user="Weather in Oslo?",
            tools=[WEATHER, LOOKUP_ENTRY],
            tool_choice="required",
            response_format={"type": "json_object"},
            temperature=0.2,
            top_p=0.9,
            reasoning_effort="low",
            parallel_tool_calls=False,
        )
        request = (await env.executor.prepare(run)).request
        # The route's upstream name, not the name the client used.
        assert request.model == UPSTREAM
        assert request.messages == [
            {"role": "system", "content": INSTRUCTIONS},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello!"},
            {"role": "user", "content": "Weather in Oslo?"},
        ]
        assert request.tools == [
            WEATHER,
            {"type": "function", "function": Lookup().definition(LOOKUP_ENTRY)},
        ]
        assert request.tool_choice == "required"
        assert request.parallel_tool_calls is False
        assert request.response_format == {"type": "json_object"}
        assert (request.temperature, request.top_p) == (0.2, 0.9)
        assert request.reasoning_effort == "low"
        assert request.max_tokens is None

    run_in(tmp_path, scenario)


def test_prepare_without_instructions_or_tools_sends_no_system_message_or_choice(
    tmp_path: Path,
) -> None:
    async def scenario(env: Env) -> None:
        run = await seed(env, instructions="", user="Hi")
        request = (await env.executor.prepare(run)).request
        assert request.messages == [{"role": "user", "content": "Hi"}]
        assert request.tools == []
        # Upstreams reject tool_choice / parallel_tool_calls without tools.
        assert request.tool_choice is None
        assert request.parallel_tool_calls is None
        # "auto" is no response_format at all upstream.
        assert request.response_format is None

    run_in(tmp_path, scenario)


@pytest.mark.parametrize(
    ("choice", "sent"),
    [
        ("none", "none"),
        ("auto", "auto"),
        (
            {"type": "function", "function": {"name": "get_weather"}},
            {"type": "function", "function": {"name": "get_weather"}},
        ),
        # A named built-in tool is forced as the function it is offered as.
        ({"type": "lookup"}, {"type": "function", "function": {"name": "lookup"}}),
        # A built-in tool the run does not enable cannot be forced.
        ({"type": "file_search"}, "auto"),
    ],
)
def test_prepare_maps_tool_choice(tmp_path: Path, choice: Any, sent: Any) -> None:
    async def scenario(env: Env) -> None:
        run = await seed(env, tools=[WEATHER, LOOKUP_ENTRY], tool_choice=choice)
        assert (await env.executor.prepare(run)).request.tool_choice == sent

    run_in(tmp_path, scenario)


def test_a_builtin_named_like_a_client_function_steps_aside(tmp_path: Path) -> None:
    async def scenario(env: Env) -> None:
        client_lookup = {"type": "function", "function": {"name": "lookup", "parameters": {}}}
        run = await seed(env, tools=[client_lookup, LOOKUP_ENTRY])
        turn = await env.executor.prepare(run)
        offered = [t["function"]["name"] for t in turn.request.tools]
        assert offered == ["lookup", "builtin_lookup"]
        assert set(turn.enabled) == {"builtin_lookup"}
        assert set(turn.accumulator.builtin) == {"builtin_lookup"}

    run_in(tmp_path, scenario)


@pytest.mark.parametrize(
    ("limit", "used", "max_tokens"),
    [(None, None, None), (100, None, 100), (100, 30, 70), (100, 99, 1)],
)
def test_prepare_caps_max_tokens_at_what_is_left_of_the_budget(
    tmp_path: Path, limit: int | None, used: int | None, max_tokens: int | None
) -> None:
    async def scenario(env: Env) -> None:
        spent = None if used is None else usage(10, used)
        run = await seed(env, max_completion_tokens=limit, usage=spent)
        assert (await env.executor.prepare(run)).request.max_tokens == max_tokens

    run_in(tmp_path, scenario)


@pytest.mark.parametrize("used", [100, 120])
def test_prepare_refuses_a_run_whose_completion_budget_is_spent(tmp_path: Path, used: int) -> None:
    async def scenario(env: Env) -> None:
        run = await seed(env, max_completion_tokens=100, usage=usage(10, used))
        with pytest.raises(BudgetSpent) as caught:
            await env.executor.prepare(run)
        assert caught.value.reason == "max_completion_tokens"

    run_in(tmp_path, scenario)


def test_prepare_refuses_a_prompt_over_max_prompt_tokens(tmp_path: Path) -> None:
    async def scenario(env: Env) -> None:
        run = await seed(env, user="word " * 300, max_prompt_tokens=50)
        with pytest.raises(BudgetSpent) as caught:
            await env.executor.prepare(run)
        assert caught.value.reason == "max_prompt_tokens"

    run_in(tmp_path, scenario)


def test_prepare_drops_the_oldest_messages_to_fit_max_prompt_tokens(tmp_path: Path) -> None:
    async def scenario(env: Env) -> None:
        old = [("user", "old " * 200), ("assistant", "older " * 200)]
        run = await seed(env, history=old, user="Newest?", max_prompt_tokens=100)
        request = (await env.executor.prepare(run)).request
        assert request.messages == [
            {"role": "system", "content": INSTRUCTIONS},
            {"role": "user", "content": "Newest?"},
        ]

    run_in(tmp_path, scenario)


def test_a_prompt_too_big_for_the_models_window_is_truncated_not_refused(tmp_path: Path) -> None:
    async def scenario(env: Env) -> None:
        # About 2,000 tokens each: three do not fit the 8,000-token window's prompt share
        # (3/4 of it less 1,024 for the reply), two do.
        old = [("user", "alpha " * 2000), ("assistant", "beta " * 2000), ("user", "gamma " * 2000)]
        run = await seed(env, model=WINDOWED, history=old, user="Newest?")
        request = (await env.executor.prepare(run)).request
        assert request.model == WINDOWED
        # Only the oldest goes; the run set no max_prompt_tokens, so it is not refused.
        contents = [m["content"] for m in request.messages]
        assert contents == [INSTRUCTIONS, "beta " * 2000, "gamma " * 2000, "Newest?"]

    run_in(tmp_path, scenario)


# --- resolve -----------------------------------------------------------------------------


def test_resolve_finishes_a_text_answer(tmp_path: Path) -> None:
    async def scenario(env: Env) -> None:
        run = await seed(env, usage=usage(3, 4))
        following = await resolve_once(env, run, text_reply("Hi!", usage=Usage(11, 2)))
        # The run's usage so far plus this completion's.
        assert following == Finish("completed", usage(14, 6))
        # The message stays open: it ends with the run, in one transaction, after resolve.
        (message,) = (await stored(env, run.id)).messages
        assert message.status == "in_progress"

    run_in(tmp_path, scenario)


def test_resolve_requires_action_for_function_calls(tmp_path: Path) -> None:
    async def scenario(env: Env) -> None:
        run = await seed(env, tools=[WEATHER])
        reply = tool_reply(
            ("get_weather", {"city": "Oslo"}),
            ("get_weather", {"city": "Rome"}),
            usage=Usage(20, 9),
        )
        following = await resolve_once(env, run, reply)
        assert isinstance(following, RequiresAction)
        assert following.usage == usage(20, 9)
        assert [(c.name, json.loads(c.arguments)) for c in following.calls] == [
            ("get_weather", {"city": "Oslo"}),
            ("get_weather", {"city": "Rome"}),
        ]
        (step,) = (await stored(env, run.id)).steps
        # The step waits for the outputs: in progress, calls stored without output.
        assert step.status == "in_progress"
        assert [c.section for c in tool_calls_of(step)] == [
            {"name": "get_weather", "arguments": '{"city": "Oslo"}', "output": None},
            {"name": "get_weather", "arguments": '{"city": "Rome"}', "output": None},
        ]

    run_in(tmp_path, scenario)


def test_resolve_keeps_only_the_first_call_without_parallel_tool_calls(tmp_path: Path) -> None:
    async def scenario(env: Env) -> None:
        run = await seed(env, tools=[WEATHER], parallel_tool_calls=False)
        reply = tool_reply(("get_weather", {"city": "Oslo"}), ("get_weather", {"city": "Rome"}))
        following = await resolve_once(env, run, reply)
        assert isinstance(following, RequiresAction)
        assert [json.loads(c.arguments) for c in following.calls] == [{"city": "Oslo"}]
        (step,) = (await stored(env, run.id)).steps
        assert [c.id for c in tool_calls_of(step)] == [following.calls[0].id]

    run_in(tmp_path, scenario)


@pytest.mark.parametrize(
    "reply",
    [
        text_reply("far too long an answer", finish_reason="length", usage=Usage(5, 5)),
        tool_reply(("get_weather", {"city": "Oslo"}), finish_reason="length", usage=Usage(5, 5)),
    ],
    ids=["text", "call"],
)
def test_resolve_ends_incomplete_when_the_completion_ran_out(tmp_path: Path, reply: Reply) -> None:
    async def scenario(env: Env) -> None:
        run = await seed(env, tools=[WEATHER])
        assert await resolve_once(env, run, reply) == Finish("incomplete", usage(5, 5))
        # A cut call is never asked of the client: its step completes as it is.
        for step in (await stored(env, run.id)).steps:
            assert step.status == "completed"

    run_in(tmp_path, scenario)


def test_resolve_runs_builtin_calls_and_goes_again(tmp_path: Path) -> None:
    async def scenario(env: Env) -> None:
        run = await seed(env, tools=[LOOKUP_ENTRY])
        reply = tool_reply(("lookup", {"word": "hej"}), usage=Usage(8, 3))
        assert await resolve_once(env, run, reply) == RunAgain(usage(8, 3))
        # Executed here, as the first lookup of the run; no context window, no cap.
        assert env.lookup.executed == [('{"word": "hej"}', 0, None)]
        (step,) = (await stored(env, run.id)).steps
        assert step.status == "completed"
        assert step.usage == usage(8, 3)
        (made,) = tool_calls_of(step)
        assert (made.type, made.section) == ("lookup", {"results": [{"file_id": "file-hej"}]})

    run_in(tmp_path, scenario)


def test_builtin_output_is_capped_by_a_known_context_window(tmp_path: Path) -> None:
    async def scenario(env: Env) -> None:
        run = await seed(env, model=WINDOWED, tools=[LOOKUP_ENTRY])
        following = await resolve_once(env, run, tool_reply(("lookup", {"word": "a"})))
        assert isinstance(following, RunAgain)
        # A quarter of the window, so that the outputs leave room for the rest.
        assert env.lookup.executed == [('{"word": "a"}', 0, WINDOW // 4)]

    run_in(tmp_path, scenario)


def test_resolve_with_builtin_and_function_calls_waits_for_the_functions(tmp_path: Path) -> None:
    async def scenario(env: Env) -> None:
        run = await seed(env, tools=[WEATHER, LOOKUP_ENTRY])
        reply = tool_reply(("lookup", {"word": "sol"}), ("get_weather", {"city": "Oslo"}))
        following = await resolve_once(env, run, reply)
        assert isinstance(following, RequiresAction)
        assert [c.name for c in following.calls] == ["get_weather"]
        assert len(env.lookup.executed) == 1
        (step,) = (await stored(env, run.id)).steps
        assert step.status == "in_progress"
        assert [c.type for c in tool_calls_of(step)] == ["lookup", "function"]

    run_in(tmp_path, scenario)
