"""A new run handed over by its creation (``NewRun``): its claim goes on while the first
turn reads nothing and requests the completion, and nothing of the run is stored or
published before the claim settles. On a real migrated SQLite store, a scripted model
and the in-process bus.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from assistd.backends.base import Usage
from assistd.backends.scripted import Reply, text_reply
from assistd.events.base import CancelRequest, control_channel, run_channel
from assistd.executor.state import transition
from assistd.queue.base import NewRun
from assistd.store.records import Run
from tests.unit.loop_support import (
    TEXT_ANSWER,
    Env,
    delta_texts,
    drain,
    execute,
    handed_over,
    names,
    run_in,
    seed,
    stored,
    until_deltas,
)


def test_a_handed_over_run_answers_as_one_read_from_the_store(tmp_path: Path) -> None:
    async def scenario(env: Env) -> None:
        history = [("user", "Hi"), ("assistant", "Hello"), ("user", "How are you?")]
        read = await seed(env, history=history)
        handed = await seed(env, history=history)
        env.backend.queue(text_reply("Fine, thanks.", usage=Usage(9, 3)))
        env.backend.queue(text_reply("Fine, thanks.", usage=Usage(9, 3)))
        read_events = await execute(env, read)
        handed_events = await execute(env, handed, handed=True)
        assert names(handed_events) == names(read_events) == TEXT_ANSWER
        assert delta_texts(handed_events) == "Fine, thanks."
        # The same request, from the messages handed over as from those read.
        first, second = env.backend.requests
        assert second.messages == first.messages
        assert len(second.messages) == 5  # instructions, history, the user's message
        state = await stored(env, handed.id)
        assert state.run.status == "completed"
        assert state.run.started_at is not None
        assert [m.status for m in state.messages] == ["completed"]

    run_in(tmp_path, scenario)


@pytest.mark.parametrize("status", ["cancelled", "in_progress", "expired"])
def test_a_handed_over_run_that_is_no_longer_queued_is_left_alone(
    tmp_path: Path, status: Any
) -> None:
    async def scenario(env: Env) -> None:
        run = await seed(env)
        created = await handed_over(env, run)
        # Cancelled before its worker took it, or taken by another (at least once).
        async with env.db.write() as conn:
            assert await transition(conn, run.id, status) is not None
        env.backend.queue(text_reply("never shown"))
        async with env.bus.subscribe(run_channel(run.id)) as subscription:
            await env.executor.execute(run.id, created)
            events = drain(subscription)
        assert events == []
        state = await stored(env, run.id)
        assert state.run.status == status
        assert (state.messages, state.steps) == ([], [])

    run_in(tmp_path, scenario)


def test_a_backend_error_before_the_claim_settled_fails_the_run_after_in_progress(
    tmp_path: Path,
) -> None:
    async def scenario(env: Env) -> None:
        run = await seed(env)
        env.backend.queue(Reply(text="never", error="down", error_code="server_error"))
        events = await execute(env, run, handed=True)
        assert names(events) == ["thread.run.in_progress", "thread.run.failed"]
        state = await stored(env, run.id)
        assert state.run.last_error == {"code": "server_error", "message": "down"}
        assert state.run.started_at is not None

    run_in(tmp_path, scenario)


def test_a_prompt_over_budget_ends_a_handed_over_run_incomplete(tmp_path: Path) -> None:
    async def scenario(env: Env) -> None:
        run = await seed(env, user="long " * 300, max_prompt_tokens=40)
        events = await execute(env, run, handed=True)
        assert env.backend.requests == []
        assert names(events) == ["thread.run.in_progress", "thread.run.incomplete"]
        assert (await stored(env, run.id)).run.status == "incomplete"

    run_in(tmp_path, scenario)


def test_an_answer_with_no_chunk_still_waits_for_the_claim(tmp_path: Path) -> None:
    async def scenario(env: Env) -> None:
        run = await seed(env)
        env.backend.queue(Reply(text=""))
        events = await execute(env, run, handed=True)
        assert names(events)[0] == "thread.run.in_progress"
        assert names(events)[-1] == "thread.run.completed"

    run_in(tmp_path, scenario)


def test_a_cancel_of_a_handed_over_run_cancels_it(tmp_path: Path) -> None:
    full = " ".join(f"word{i}" for i in range(40))

    async def scenario(env: Env) -> None:
        run = await seed(env)
        created = await handed_over(env, run)
        env.backend.queue(text_reply(full, delay=0.05))
        async with env.bus.subscribe(run_channel(run.id)) as subscription:
            work = asyncio.create_task(env.executor.execute(run.id, created))
            seen = await until_deltas(subscription, 1)
            await env.bus.publish(control_channel(run.id), CancelRequest())
            await work
            events = seen + drain(subscription)
        assert names(events)[0] == "thread.run.in_progress"
        assert names(events)[-1] == "thread.run.cancelled"
        assert (await stored(env, run.id)).run.status == "cancelled"

    run_in(tmp_path, scenario)


async def _started(env: Env, run: Run) -> tuple[NewRun, asyncio.Future[bool]]:
    """``run`` handed over before its creation committed (``RunQueue.start_now``): stored
    ``in_progress``, as that creation stores it, once the test settles the future."""
    committed: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
    created = await handed_over(env, run)
    return NewRun(run.but(status="in_progress"), created.thread, committed), committed


def test_a_run_started_before_its_creation_committed_publishes_nothing_until_then(
    tmp_path: Path,
) -> None:
    async def scenario(env: Env) -> None:
        run = await seed(env)
        created, committed = await _started(env, run)
        env.backend.queue(text_reply("Right away."))
        async with env.bus.subscribe(run_channel(run.id)) as subscription:
            work = asyncio.create_task(env.executor.execute(run.id, created))
            for _ in range(20):
                await asyncio.sleep(0.01)
            # The completion was requested; nothing of the run is published or stored.
            assert len(env.backend.requests) == 1
            assert drain(subscription) == []
            assert (await stored(env, run.id)).messages == []
            async with env.db.write() as conn:  # the creation commits the run in progress
                assert await transition(conn, run.id, "in_progress") is not None
            committed.set_result(True)
            await work
            events = drain(subscription)
        assert names(events) == TEXT_ANSWER
        assert delta_texts(events) == "Right away."
        state = await stored(env, run.id)
        assert state.run.status == "completed"
        assert [m.status for m in state.messages] == ["completed"]

    run_in(tmp_path, scenario)


def test_a_run_whose_creation_failed_is_left_alone(tmp_path: Path) -> None:
    async def scenario(env: Env) -> None:
        run = await seed(env)
        created, committed = await _started(env, run)
        env.backend.queue(text_reply("never shown", delay=0.05))
        async with env.bus.subscribe(run_channel(run.id)) as subscription:
            work = asyncio.create_task(env.executor.execute(run.id, created))
            await asyncio.sleep(0.02)
            committed.set_result(False)
            await work
            events = drain(subscription)
        assert events == []
        state = await stored(env, run.id)
        # Nothing of the run was written: not the message stored ahead of the answer.
        assert state.run.status == "queued"
        assert (state.messages, state.steps) == ([], [])

    run_in(tmp_path, scenario)
