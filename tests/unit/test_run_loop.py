"""Whole runs through ``RunExecutor.execute``: what a run leaves in the store and the events
it publishes, on a real migrated SQLite store, a scripted model and the in-process bus.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from assistd import clock
from assistd.backends.base import Usage
from assistd.backends.scripted import Reply, ScriptedCall, text_reply, tool_reply
from assistd.events.base import CancelRequest, control_channel, run_channel
from assistd.executor.state import transition
from assistd.store import run_steps
from assistd.store.tool_calls import ToolCall, tool_calls_of
from assistd.tools.base import ToolScope
from tests.unit.loop_support import (
    EXPIRES,
    LOOKUP_ENTRY,
    TEXT_ANSWER,
    WEATHER,
    Env,
    Lookup,
    delta_texts,
    drain,
    execute,
    names,
    run_in,
    seed,
    stored,
    text_part,
    until_deltas,
    usage,
)

# --- execute: the whole run --------------------------------------------------------------


def test_a_text_answer_completes_the_run_with_the_events_clients_expect(tmp_path: Path) -> None:
    async def scenario(env: Env) -> None:
        run = await seed(env)
        env.backend.queue(text_reply("Hello back to you.", usage=Usage(9, 4)))
        events = await execute(env, run)
        assert names(events) == TEXT_ANSWER
        assert delta_texts(events) == "Hello back to you."
        deltas = [e for e in events if e.event == "thread.message.delta"]
        assert len(deltas) == 4  # the scripted model streams word by word
        # Only the first delta carries annotations=[]; each names its content index.
        assert deltas[0].data["delta"]["content"] == [
            {"index": 0, "type": "text", "text": {"value": "Hello ", "annotations": []}}
        ]
        assert deltas[1].data["delta"]["content"] == [
            {"index": 0, "type": "text", "text": {"value": "back "}}
        ]
        state = await stored(env, run.id)
        assert deltas[0].data["id"] == state.messages[0].id
        assert state.run.status == "completed"
        assert state.run.usage == usage(9, 4)
        assert state.run.started_at is not None
        assert state.run.completed_at is not None
        assert (state.run.worker_id, state.run.expires_at) == (None, None)
        (message,) = state.messages
        assert message.status == "completed"
        assert message.content == [text_part("Hello back to you.")]
        assert (message.role, message.run_id) == ("assistant", run.id)
        (step,) = state.steps
        assert (step.type, step.status) == ("message_creation", "completed")
        assert step.step_details["message_creation"]["message_id"] == message.id
        assert step.usage == usage(9, 4)
        # The last events carry the final states.
        assert events[-1].data.status == "completed"
        assert events[-1].data.usage == usage(9, 4)
        assert events[-3].data.content == [text_part("Hello back to you.")]

    run_in(tmp_path, scenario)


def test_function_calls_leave_the_run_requiring_action(tmp_path: Path) -> None:
    async def scenario(env: Env) -> None:
        run = await seed(env, tools=[WEATHER])
        env.backend.queue(
            Reply(
                text="Checking.",
                tool_calls=[ScriptedCall("get_weather", {"city": "Oslo"})],
                usage=Usage(15, 6),
            )
        )
        before = clock.now()
        events = await execute(env, run)
        assert names(events) == [
            "thread.run.in_progress",
            "thread.run.step.created",
            "thread.run.step.in_progress",
            "thread.message.created",
            "thread.message.in_progress",
            "thread.message.delta",
            "thread.message.completed",
            "thread.run.step.completed",
            "thread.run.step.created",
            "thread.run.step.in_progress",
            "thread.run.step.delta",
            "thread.run.requires_action",
        ]
        state = await stored(env, run.id)
        assert state.run.status == "requires_action"
        message_step, tool_step = state.steps
        (made,) = tool_calls_of(tool_step)
        assert state.run.required_action == {
            "type": "submit_tool_outputs",
            "submit_tool_outputs": {
                "tool_calls": [
                    {
                        "id": made.id,
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
                    }
                ]
            },
        }
        assert state.run.usage == usage(15, 6)
        assert state.run.expires_at is not None
        assert state.run.expires_at >= before + EXPIRES
        assert tool_step.status == "in_progress"
        # The step's deltas announce the call under its stored id, then its arguments.
        pieces = [
            e.data["delta"]["step_details"]["tool_calls"][0]
            for e in events
            if e.event == "thread.run.step.delta"
        ]
        assert pieces[0] == {
            "index": 0,
            "id": made.id,
            "type": "function",
            "function": {"name": "get_weather", "arguments": "", "output": None},
        }
        assert "".join(p["function"]["arguments"] for p in pieces) == '{"city": "Oslo"}'
        assert state.messages[0].content == [text_part("Checking.")]
        assert message_step.status == "completed"

    run_in(tmp_path, scenario)


def test_submitted_outputs_complete_the_waiting_step_and_reach_the_model(tmp_path: Path) -> None:
    async def scenario(env: Env) -> None:
        run = await seed(env, tools=[WEATHER])
        env.backend.queue(tool_reply(("get_weather", {"city": "Oslo"}), usage=Usage(10, 5)))
        await execute(env, run)
        # What submitting outputs does: the output into the call, the run queued again.
        async with env.db.write() as conn:
            (step,) = await run_steps.awaiting_outputs(conn, run.id)
            (made,) = tool_calls_of(step)
            answered = ToolCall(made.id, "function", {**made.section, "output": "Sunny"})
            await run_steps.save_tool_calls(conn, step, [answered], usage=step.usage or {})
            assert await transition(conn, run.id, "queued", required_action=None)
        env.backend.queue(text_reply("It is sunny.", usage=Usage(30, 4)))
        events = await execute(env, run)
        assert names(events)[:2] == ["thread.run.in_progress", "thread.run.step.completed"]
        assert events[1].data.id == step.id
        request = env.backend.requests[-1]
        assert request.messages[-2:] == [
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": made.id,
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": made.id, "content": "Sunny"},
        ]
        state = await stored(env, run.id)
        assert state.run.status == "completed"
        assert state.run.usage == usage(40, 9)

    run_in(tmp_path, scenario)


def test_builtin_calls_run_and_the_answer_cites_their_results(tmp_path: Path) -> None:
    async def scenario(env: Env) -> None:
        run = await seed(env, tools=[LOOKUP_ENTRY], tool_choice="required")
        marker = "【0:0†hej.txt】"
        env.backend.queue(
            tool_reply(("lookup", {"word": "hej"}), usage=Usage(10, 3)),
            text_reply(f"It means hello {marker}.", usage=Usage(25, 6)),
        )
        events = await execute(env, run)
        assert names(events) == [
            "thread.run.in_progress",
            "thread.run.step.created",
            "thread.run.step.in_progress",
            "thread.run.step.delta",
            "thread.run.step.completed",
            "thread.run.step.created",
            "thread.run.step.in_progress",
            "thread.message.created",
            "thread.message.in_progress",
            "thread.message.delta",
            "thread.message.completed",
            "thread.run.step.completed",
            "thread.run.completed",
        ]
        first, second = env.backend.requests
        # A forced built-in call must not be forced again, or the run would loop.
        assert (first.tool_choice, second.tool_choice) == ("required", "auto")
        (call_id,) = [m["tool_call_id"] for m in second.messages if m["role"] == "tool"]
        assert second.messages[-1] == {
            "role": "tool",
            "tool_call_id": call_id,
            "content": "【0:0†hej.txt】 hej is a greeting.",
        }
        state = await stored(env, run.id)
        assert [s.type for s in state.steps] == ["tool_calls", "message_creation"]
        answer = f"It means hello {marker}."
        note = {
            "type": "file_citation",
            "text": marker,
            "start_index": len("It means hello "),
            "end_index": len("It means hello ") + len(marker),
            "file_citation": {"file_id": "file-hej"},
        }
        assert state.messages[0].content == [text_part(answer, [note])]
        assert state.run.status == "completed"
        assert state.run.usage == usage(35, 9)

    run_in(tmp_path, scenario)


def test_a_failing_builtin_tool_fails_the_run_with_server_error(tmp_path: Path) -> None:
    async def explode(scope: ToolScope) -> None:
        raise RuntimeError("tool crashed")

    async def scenario(env: Env) -> None:
        run = await seed(env, tools=[LOOKUP_ENTRY])
        env.backend.queue(tool_reply(("lookup", {"word": "x"})))
        events = await execute(env, run)
        state = await stored(env, run.id)
        assert state.run.status == "failed"
        # The internal error is not shown to the client.
        assert state.run.last_error == {
            "code": "server_error",
            "message": "The server had an error while processing the run.",
        }
        (step,) = state.steps
        assert (step.status, step.last_error) == ("failed", state.run.last_error)
        assert names(events)[-2:] == ["thread.run.step.failed", "thread.run.failed"]

    run_in(tmp_path, scenario, Lookup(on_execute=explode))


@pytest.mark.parametrize("code", ["server_error", "rate_limit_exceeded", "invalid_prompt"])
def test_a_backend_error_fails_the_run_with_its_code_and_keeps_the_partial_text(
    tmp_path: Path, code: Any
) -> None:
    async def scenario(env: Env) -> None:
        run = await seed(env)
        reply = Reply(
            text="one two three four", error="upstream said no", error_code=code, fail_after=2
        )
        env.backend.queue(reply)
        events = await execute(env, run)
        state = await stored(env, run.id)
        assert state.run.status == "failed"
        assert state.run.last_error == {"code": code, "message": "upstream said no"}
        assert state.run.failed_at is not None
        (message,) = state.messages
        assert message.status == "incomplete"
        assert message.incomplete_details == {"reason": "run_failed"}
        assert message.content == [text_part("one two ")]
        (step,) = state.steps
        assert step.status == "failed"
        assert names(events)[-3:] == [
            "thread.message.incomplete",
            "thread.run.step.failed",
            "thread.run.failed",
        ]

    run_in(tmp_path, scenario)


def test_a_backend_error_before_any_text_leaves_no_message(tmp_path: Path) -> None:
    async def scenario(env: Env) -> None:
        run = await seed(env)
        env.backend.queue(Reply(text="never", error="down", error_code="server_error"))
        events = await execute(env, run)
        state = await stored(env, run.id)
        assert state.run.last_error == {"code": "server_error", "message": "down"}
        assert (state.messages, state.steps) == ([], [])
        assert names(events) == ["thread.run.in_progress", "thread.run.failed"]

    run_in(tmp_path, scenario)


def test_a_length_cut_ends_the_run_incomplete(tmp_path: Path) -> None:
    async def scenario(env: Env) -> None:
        run = await seed(env, max_completion_tokens=3)
        env.backend.queue(text_reply("one two three four five six", usage=Usage(7, 3)))
        events = await execute(env, run)
        assert env.backend.requests[0].max_tokens == 3
        state = await stored(env, run.id)
        assert state.run.status == "incomplete"
        assert state.run.incomplete_details == {"reason": "max_completion_tokens"}
        assert state.run.usage == usage(7, 3)
        (message,) = state.messages
        assert message.status == "incomplete"
        assert message.incomplete_details == {"reason": "max_tokens"}
        assert message.content == [text_part("one two three ")]
        assert names(events)[-3:] == [
            "thread.message.incomplete",
            "thread.run.step.completed",
            "thread.run.incomplete",
        ]

    run_in(tmp_path, scenario)


def test_a_completion_budget_spent_by_builtin_calls_ends_the_run_incomplete(
    tmp_path: Path,
) -> None:
    async def scenario(env: Env) -> None:
        run = await seed(env, tools=[LOOKUP_ENTRY], max_completion_tokens=20)
        env.backend.queue(tool_reply(("lookup", {"word": "a"}), usage=Usage(5, 20)))
        events = await execute(env, run)
        # The second completion is never requested.
        assert len(env.backend.requests) == 1
        state = await stored(env, run.id)
        assert state.run.status == "incomplete"
        assert state.run.incomplete_details == {"reason": "max_completion_tokens"}
        assert state.run.usage == usage(5, 20)
        assert names(events)[-1] == "thread.run.incomplete"

    run_in(tmp_path, scenario)


def test_a_prompt_over_budget_ends_the_run_incomplete_before_any_request(tmp_path: Path) -> None:
    async def scenario(env: Env) -> None:
        run = await seed(env, user="long " * 300, max_prompt_tokens=40)
        events = await execute(env, run)
        assert env.backend.requests == []
        state = await stored(env, run.id)
        assert state.run.status == "incomplete"
        assert state.run.incomplete_details == {"reason": "max_prompt_tokens"}
        assert names(events) == ["thread.run.in_progress", "thread.run.incomplete"]

    run_in(tmp_path, scenario)


def test_a_cancel_request_during_a_slow_stream_cancels_and_keeps_the_partial_text(
    tmp_path: Path,
) -> None:
    full = " ".join(f"word{i}" for i in range(40))

    async def scenario(env: Env) -> None:
        run = await seed(env)
        env.backend.queue(text_reply(full, delay=0.05))
        async with env.bus.subscribe(run_channel(run.id)) as subscription:
            work = asyncio.create_task(env.executor.execute(run.id))
            seen = await until_deltas(subscription, 1)
            await env.bus.publish(control_channel(run.id), CancelRequest())
            await work
            events = seen + drain(subscription)
        state = await stored(env, run.id)
        assert state.run.status == "cancelled"
        assert state.run.cancelled_at is not None
        (message,) = state.messages
        streamed = delta_texts(events)
        # What was streamed before the cancel is what the thread keeps.
        assert streamed
        assert full.startswith(streamed)
        assert len(streamed) < len(full)
        assert message.content == [text_part(streamed)]
        assert message.status == "incomplete"
        assert message.incomplete_details == {"reason": "run_cancelled"}
        assert [s.status for s in state.steps] == ["cancelled"]
        assert names(events)[-3:] == [
            "thread.message.incomplete",
            "thread.run.step.cancelled",
            "thread.run.cancelled",
        ]

    run_in(tmp_path, scenario)


def test_a_stop_request_past_expires_at_expires_the_run_and_keeps_the_partial_text(
    tmp_path: Path,
) -> None:
    # What the worker's sweep sends for a run still in progress at its expires_at.
    full = " ".join(f"word{i}" for i in range(40))

    async def scenario(env: Env) -> None:
        run = await seed(env, expires_at=clock.now() - 1)
        env.backend.queue(text_reply(full, delay=0.05))
        async with env.bus.subscribe(run_channel(run.id)) as subscription:
            work = asyncio.create_task(env.executor.execute(run.id))
            seen = await until_deltas(subscription, 1)
            await env.bus.publish(control_channel(run.id), CancelRequest())
            await work
            events = seen + drain(subscription)
        state = await stored(env, run.id)
        assert state.run.status == "expired"
        assert (state.run.expires_at, state.run.cancelled_at, state.run.last_error) == (
            None,
            None,
            None,
        )
        (message,) = state.messages
        streamed = delta_texts(events)
        assert streamed
        assert message.content == [text_part(streamed)]
        assert message.status == "incomplete"
        assert message.incomplete_details == {"reason": "run_expired"}
        assert [s.status for s in state.steps] == ["expired"]
        assert names(events)[-3:] == [
            "thread.message.incomplete",
            "thread.run.step.expired",
            "thread.run.expired",
        ]
        # The message's closing event carries the text streamed (clients index into it).
        closing = next(e for e in events if e.event == "thread.message.incomplete")
        assert closing.data.content == [text_part(streamed)]

    run_in(tmp_path, scenario)


def test_a_cancel_while_a_builtin_tool_runs_stops_before_the_next_completion(
    tmp_path: Path,
) -> None:
    async def scenario(env: Env) -> None:

        async def cancel(scope: ToolScope) -> None:
            # What the cancel endpoint writes while the tool is busy (to the run seeded below).
            async with env.db.write() as conn:
                assert await transition(conn, run.id, "cancelling")

        env.lookup.on_execute = cancel
        run = await seed(env, tools=[LOOKUP_ENTRY])
        env.backend.queue(tool_reply(("lookup", {"word": "a"})), text_reply("never"))
        events = await execute(env, run)
        assert len(env.backend.requests) == 1
        state = await stored(env, run.id)
        assert state.run.status == "cancelled"
        # The tool step had completed: it keeps its status.
        assert [s.status for s in state.steps] == ["completed"]
        assert state.messages == []
        assert names(events)[-1] == "thread.run.cancelled"

    run_in(tmp_path, scenario)


@pytest.mark.parametrize("status", ["in_progress", "requires_action", "completed", "cancelling"])
def test_execute_leaves_a_run_that_is_not_queued_alone(tmp_path: Path, status: Any) -> None:
    async def scenario(env: Env) -> None:
        run = await seed(env, status=status)
        events = await execute(env, run)
        assert events == []
        assert env.backend.requests == []
        assert (await stored(env, run.id)).run.status == status

    run_in(tmp_path, scenario)


def test_builtin_tools_stop_being_offered_after_the_per_run_limit(tmp_path: Path) -> None:
    async def scenario(env: Env) -> None:
        run = await seed(env, tools=[WEATHER, LOOKUP_ENTRY])
        calls = [tool_reply(("lookup", {"word": f"w{i}"})) for i in range(8)]
        env.backend.queue(*calls, text_reply("Done."))
        await execute(env, run)
        offered = [[t["function"]["name"] for t in r.tools] for r in env.backend.requests]
        assert offered == [["get_weather", "lookup"]] * 8 + [["get_weather"]]
        # Ordinals count the run's earlier calls: citation markers depend on them.
        assert [ordinal for _, ordinal, _ in env.lookup.executed] == list(range(8))
        assert (await stored(env, run.id)).run.status == "completed"

    run_in(tmp_path, scenario)


def test_the_text_streamed_so_far_is_saved_while_the_message_is_open(tmp_path: Path) -> None:
    # What the worker's maintenance loop does at each lease renewal: a crash then loses
    # only what came after the last save.
    full = " ".join(f"word{i}" for i in range(40))

    async def scenario(env: Env) -> None:
        run = await seed(env)
        env.backend.queue(text_reply(full, delay=0.02))
        async with env.bus.subscribe(run_channel(run.id)) as subscription:
            work = asyncio.create_task(env.executor.execute(run.id))
            seen = await until_deltas(subscription, 3)
            await env.executor.save_streamed()
            saved = await stored(env, run.id)
            await work
        final = await stored(env, run.id)
        (message,) = saved.messages
        assert message.status == "in_progress"
        (part,) = message.content
        text = part["text"]["value"]
        assert text.startswith(delta_texts(seen))
        assert full.startswith(text)
        assert len(text) < len(full)
        # Saving again once the message ended leaves its final content alone.
        await env.executor.save_streamed()
        assert (await stored(env, run.id)).messages == final.messages
        assert final.messages[0].content == [text_part(full)]

    run_in(tmp_path, scenario)
