"""Runs, run steps, tool calls and the executor's message writes in the store, and how
``store/wire.py`` shows them, on SQLite and PostgreSQL.

Runs are built as records here (as ``services.runs`` builds them) and stored through the
functions under test. Each test uses its own project and threads in a module-wide database;
the queries that span every run (leases, overdue runs) are checked against the test's ids.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import date
from typing import Any, TypeVar, get_args

import pytest
import sqlalchemy as sa

from assistd import ids
from assistd.protocol.runs import ACTIVE_STATUSES, TERMINAL_STATUSES, RunStatus
from assistd.store import messages, run_state, run_steps, runs, threads, usage
from assistd.store.database import Connection, Database
from assistd.store.records import Message, Run, RunStep
from assistd.store.repository import PageQuery
from assistd.store.tool_calls import (
    ModelView,
    ToolCall,
    from_entry,
    to_entry,
    tool_calls_details,
    tool_calls_of,
)
from assistd.store.wire import MODEL_KEY, message_to_wire, run_to_wire, step_to_wire
from tests import store_support
from tests.store_support import (
    impatient_writer,
    message_record,
    migrated_url,
    run_on,
    run_record,
    step_record,
)

T = TypeVar("T")
ALL_STATUSES: tuple[RunStatus, ...] = get_args(RunStatus)
USAGE = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A migrated database shared by this module's tests (each in its own project)."""
    with migrated_url(request.param, tmp_path_factory.mktemp(f"runs-{request.param}")) as made:
        yield made


@pytest.fixture
def project() -> str:
    return "proj_" + secrets.token_hex(6)


async def new_thread(conn: Connection, project: str) -> str:
    return (await store_support.new_thread(conn, project)).id


def new_run(project: str, thread_id: str, **changes: Any) -> Run:
    """A queued run as ``services.runs`` builds it, with ``changes`` applied."""
    return run_record(
        project=project,
        created_at=1_000,
        thread_id=thread_id,
        assistant_id="asst_1",
        expires_at=1_600,
        model="scripted",
        tools=[{"type": "code_interpreter"}],
    ).but(**changes)


async def stored_run(conn: Connection, project: str, **changes: Any) -> Run:
    """A run stored on a thread of its own (one active run per thread)."""
    made = new_run(project, await new_thread(conn, project), **changes)
    assert await runs.create(conn, made)
    return made


def new_step(run: Run, kind: str = "tool_calls", **changes: Any) -> RunStep:
    """A step as the recorder opens it, with ``changes`` applied."""
    return step_record(run, kind, created_at=1_000).but(**changes)


def new_message(run: Run, **changes: Any) -> Message:
    """An assistant message as the recorder opens it, with ``changes`` applied."""
    return message_record(run, created_at=1_000).but(**changes)


# --- runs


def test_a_run_round_trips_every_column(url: str, project: str) -> None:
    async def scenario(db: Database) -> None:
        async with db.write() as conn:
            made = await stored_run(
                conn,
                project,
                metadata={"k": "v"},
                temperature=0.5,
                top_p=0.75,
                max_prompt_tokens=2_000,
                max_completion_tokens=500,
                response_format={"type": "json_object"},
                tool_choice={"type": "function", "function": {"name": "f"}},
                parallel_tool_calls=False,
                reasoning_effort="high",
                tool_resources={"code_interpreter": {"file_ids": ["file-1"]}},
            )
            other_thread = await new_thread(conn, project)
        async with db.read() as conn:
            # get() and load() are for code that already holds the id: any project.
            assert await runs.get(conn, made.id) == made
            assert await runs.load(conn, made.id) == made
            assert await runs.get(conn, ids.new_id("run")) is None
            assert await runs.get_in_thread(conn, project, made.thread_id, made.id) == made
            assert await runs.get_in_thread(conn, project, other_thread, made.id) is None
            assert await runs.get_in_thread(conn, project + "x", made.thread_id, made.id) is None

    run_on(url, scenario)


@pytest.mark.parametrize("first", ALL_STATUSES)
def test_a_second_active_run_on_a_thread_is_refused(url: str, project: str, first: str) -> None:
    # The unique index lets a thread hold one active run; refusal leaves the caller's
    # transaction usable (the insert ran in a savepoint).
    async def scenario(db: Database) -> None:
        async with db.write() as conn:
            thread_id = await new_thread(conn, project)
            earlier = new_run(project, thread_id, status=first)
            assert await runs.create(conn, earlier)
            second = new_run(project, thread_id)
            accepted = await runs.create(conn, second)
            assert accepted is (first not in ACTIVE_STATUSES)
            assert await runs.get(conn, earlier.id) == earlier
        async with db.read() as conn:
            assert await runs.get(conn, earlier.id) == earlier
            assert (await runs.get(conn, second.id) is not None) is accepted

    run_on(url, scenario)


@pytest.mark.parametrize("status", ALL_STATUSES)
def test_active_in_thread_sees_only_active_statuses(
    url: str, project: str, status: RunStatus
) -> None:
    async def scenario(db: Database) -> None:
        async with db.write() as conn:
            made = await stored_run(conn, project, status=status)
            assert await runs.active_in_thread(conn, ids.new_id("thread")) is None
            found = await runs.active_in_thread(conn, made.thread_id)
        assert found == (made.id if status in ACTIVE_STATUSES else None)

    run_on(url, scenario)


def test_run_pages_are_of_one_thread(url: str, project: str) -> None:
    async def scenario(db: Database) -> None:
        async with db.write() as conn:
            thread_id = await new_thread(conn, project)
            made = [new_run(project, thread_id, status="completed") for _ in range(3)]
            for r in made:
                assert await runs.create(conn, r)
            await stored_run(conn, project)  # on another thread
            newest_first = await runs.list_page(conn, project, thread_id, PageQuery())
            oldest_two = await runs.list_page(conn, project, thread_id, PageQuery(2, "asc"))
            foreign = await runs.list_page(conn, project + "x", thread_id, PageQuery())
        assert newest_first.rows == made[::-1]
        assert (oldest_two.rows, oldest_two.has_more) == (made[:2], True)
        assert (foreign.rows, foreign.has_more) == ([], False)

    run_on(url, scenario)


def test_patching_a_run_returns_it_as_stored(url: str, project: str) -> None:
    async def scenario(db: Database) -> None:
        async with db.write() as conn:
            made = await stored_run(conn, project)
            patched = await runs.patch(conn, made, metadata={"a": "1"}, status="in_progress")
            await runs.set_usage(conn, made.id, USAGE)
        assert patched == made.but(metadata={"a": "1"}, status="in_progress")
        async with db.read() as conn:
            assert await runs.load(conn, made.id) == patched.but(usage=USAGE)

    run_on(url, scenario)


def test_a_locked_run_makes_other_writers_wait(url: str, project: str) -> None:
    # PostgreSQL: the row lock; SQLite: the write transaction (the lock is a no-op there).
    async def scenario(db: Database) -> None:
        async with db.write() as conn:
            made = await stored_run(conn, project)
        async with db.write() as holder:
            await runs.lock(holder, made.id)
            async with impatient_writer(db) as other:
                with pytest.raises(sa.exc.DBAPIError):
                    await runs.patch(other, made, metadata={"late": "1"})
        async with db.write() as conn:
            await runs.patch(conn, made, metadata={"after": "1"})
            assert (await runs.load(conn, made.id)).metadata == {"after": "1"}

    run_on(url, scenario)


def test_overdue_runs(url: str, project: str) -> None:
    now = 10_000

    async def scenario(db: Database) -> None:
        async with db.write() as conn:
            late = await stored_run(conn, project, status="requires_action", expires_at=now - 1)
            due = await stored_run(conn, project, status="requires_action", expires_at=now)
            early = await stored_run(conn, project, status="requires_action", expires_at=now + 1)
            forever = await stored_run(conn, project, status="requires_action", expires_at=None)
            # Queued and executing runs expire too; a cancelling one is ending already.
            waiting = await stored_run(conn, project, status="queued", expires_at=now - 1)
            busy = await stored_run(conn, project, status="in_progress", expires_at=now - 1)
            ending = await stored_run(conn, project, status="cancelling", expires_at=now - 1)
            ended = [
                await stored_run(conn, project, status=status, expires_at=now - 1)
                for status in TERMINAL_STATUSES
            ]
            made = [late, due, early, forever, waiting, busy, ending]
            mine = {r.id for r in made} | {r.id for r in ended}
            overdue = set(await runs.overdue(conn, now)) & mine
        assert overdue == {late.id, due.id, waiting.id, busy.id}

    run_on(url, scenario)


@pytest.mark.parametrize("status", ALL_STATUSES)
def test_only_a_queued_run_is_leased(url: str, project: str, status: RunStatus) -> None:
    async def scenario(db: Database) -> None:
        async with db.write() as conn:
            made = await stored_run(conn, project, status=status)
            leased = await runs.lease_queued(conn, made.id, worker_id="w1", until=1234.5)
            after = await runs.load(conn, made.id)
        assert leased is (status == "queued")
        expected = ("w1", 1234.5) if leased else (None, None)
        assert (after.worker_id, after.lease_until) == expected

    run_on(url, scenario)


def test_renewing_leases_extends_queued_and_executing_runs(url: str, project: str) -> None:
    async def scenario(db: Database) -> None:
        async with db.write() as conn:
            made = {
                status: await stored_run(conn, project, status=status, worker_id="old")
                for status in ALL_STATUSES
            }
            await runs.renew_leases(conn, [r.id for r in made.values()], worker_id="w2", until=9.5)
            await runs.renew_leases(conn, [], worker_id="w3", until=1.0)  # nothing to do
            assert not await runs.lease_queued(conn, ids.new_id("run"), worker_id="w", until=1)
            after = {status: await runs.load(conn, r.id) for status, r in made.items()}
        renewed = {s for s, r in after.items() if (r.worker_id, r.lease_until) == ("w2", 9.5)}
        assert renewed == {"queued", "in_progress"}
        assert all(r.worker_id == "old" for s, r in after.items() if s not in renewed)

    run_on(url, scenario)


def test_runs_with_a_lapsed_lease(url: str, project: str) -> None:
    now = 5_000.0

    # name: (status, lease_until)
    table: dict[str, tuple[RunStatus, float | None]] = {
        "unleased": ("queued", None),
        "lapsed": ("in_progress", now - 0.5),
        "lapsed cancelling": ("cancelling", now - 1),
        "ends now": ("queued", now),
        "held": ("in_progress", now + 1),
        "waiting": ("requires_action", None),
        "done": ("completed", None),
    }

    async def scenario(db: Database) -> None:
        async with db.write() as conn:
            made = {
                name: await stored_run(conn, project, status=status, lease_until=lease)
                for name, (status, lease) in table.items()
            }
            names = {r.id: name for name, r in made.items()}
            lapsed = await runs.with_lapsed_lease(conn, now=now)
            every = await runs.with_lapsed_lease(conn, now=None)
        mine = [r for r in lapsed if r.id in names]
        assert {names[r.id] for r in mine} == {"unleased", "lapsed", "lapsed cancelling"}
        assert sorted(mine, key=lambda r: r.sort_key) == [made[n] for n in list(table)[:3]]
        assert {names[r.id] for r in every if r.id in names} == set(list(table)[:5])

    run_on(url, scenario)


def test_a_thread_starts_with_its_messages_and_run_in_one_write_or_not_at_all(
    url: str, project: str
) -> None:
    async def scenario(db: Database) -> None:
        for count in (0, 1, 3):
            thread = threads.new(project, tool_resources={}, metadata={"n": str(count)})
            made = [
                messages.new(
                    project,
                    thread.id,
                    role="user",
                    content=[{"type": "text", "text": {"value": f"m{i}", "annotations": []}}],
                    attachments=[],
                    metadata={},
                )
                for i in range(count)
            ]
            run = new_run(project, thread.id)
            async with db.write_one() as conn:
                await threads.create_with_run(conn, thread, made, run)
            async with db.read() as conn:
                assert await threads.get_for_project(conn, project, thread.id) == thread
                assert await messages.in_thread(conn, thread.id) == made
                assert await runs.get(conn, run.id) == run
        # A run id already taken: the thread and its messages are refused with it.
        thread = threads.new(project, tool_resources={}, metadata={})
        first = messages.new(
            project, thread.id, role="user", content=[], attachments=[], metadata={}
        )
        with pytest.raises(sa.exc.IntegrityError):
            async with db.write_one() as conn:
                await threads.create_with_run(conn, thread, [first], run.but(thread_id=thread.id))
        async with db.read() as conn:
            assert await threads.get_for_project(conn, project, thread.id) is None
            assert await messages.in_thread(conn, thread.id) == []

    run_on(url, scenario)


# --- run steps


def test_a_step_starts_and_ends(url: str, project: str) -> None:
    async def scenario(db: Database) -> None:
        async with db.write() as conn:
            made = await stored_run(conn, project)
            step = new_step(made, "message_creation")
            await run_steps.start(conn, step)
            assert await run_steps.get_in_run(conn, project, made.id, step.id) == step
            ended = step.but(status="completed", completed_at=1_100, usage=USAGE)
            await run_steps.save_ending(conn, ended)
            other = await stored_run(conn, project)
            assert await run_steps.get_in_run(conn, project, other.id, step.id) is None
            assert await run_steps.get_in_run(conn, project + "x", made.id, step.id) is None
            assert await run_steps.get_in_run(conn, project, made.id, step.id) == ended

    run_on(url, scenario)


def test_a_message_starts_with_its_step_in_one_write_or_not_at_all(url: str, project: str) -> None:
    async def scenario(db: Database) -> None:
        async with db.write() as conn:
            made = await stored_run(conn, project)
        message = new_message(made)
        step = new_step(made, "message_creation")
        async with db.write_one() as conn:
            await messages.start_with_step(conn, step, message)
        # Again with the same message id: the message is refused, and its new step with it.
        again = new_step(made, "message_creation")
        with pytest.raises(sa.exc.IntegrityError):
            async with db.write_one() as conn:
                await messages.start_with_step(conn, again, message)
        async with db.read() as conn:
            assert await run_steps.of_run(conn, made.id) == [step]
            assert await messages.of_run(conn, made.id) == [message]

    run_on(url, scenario)


@pytest.mark.parametrize("moves", [True, False])
def test_a_run_finishes_with_its_message_step_and_tokens_in_one_write(
    url: str, project: str, moves: bool
) -> None:
    # The message and step the last completion wrote end, the tokens are counted, and the
    # run moves with whatever else was open closed (returned for its events); a run that
    # had already ended stays as it was, the message and tokens are still stored.
    async def scenario(db: Database) -> None:
        async with db.write() as conn:
            made = await stored_run(conn, project, status="in_progress" if moves else "cancelled")
        message, step = new_message(made), new_step(made, "message_creation")
        other_step, other_message = new_step(made), new_message(made)
        async with db.write() as conn:
            await messages.start_with_step(conn, step, message)
            await run_steps.start(conn, other_step)
            await messages.start(conn, other_message)
        content = [{"type": "text", "text": {"value": "done", "annotations": []}}]
        ended = run_state.Ended(
            message.but(status="completed", content=content, completed_at=1_100),
            step.but(status="completed", completed_at=1_100, usage=USAGE),
            usage.counted(project, "m", date(2026, 12, 5), prompt_tokens=10, completion_tokens=5),
        )
        async with db.write_one() as conn:
            changes = await run_state.finish(
                conn,
                made.id,
                "completed",
                allowed=("in_progress", "cancelling"),
                fields={"usage": USAGE, "completed_at": 1_100, "worker_id": None},
                closing=run_state.Closing("completed", "max_tokens", 1_100),
                ended=ended,
            )
        async with db.read() as conn:
            stored_steps = {s.id: s for s in await run_steps.of_run(conn, made.id)}
            stored_messages = {m.id: m for m in await messages.of_run(conn, made.id)}
            (day,) = await usage.daily(conn, project)
            run = await runs.get(conn, made.id)
        assert stored_steps[step.id] == ended.step
        assert stored_messages[message.id] == ended.message
        assert (day.prompt_tokens, day.completion_tokens, day.requests) == (10, 5, 1)
        if not moves:
            assert changes is None
            assert run == made
            assert stored_steps[other_step.id].status == "in_progress"
            return
        assert changes is not None
        assert changes.run == run
        assert (changes.run.status, changes.run.usage, changes.run.completed_at) == (
            "completed",
            USAGE,
            1_100,
        )
        closed_step = other_step.but(status="completed", completed_at=1_100)
        closed_message = other_message.but(
            status="incomplete", incomplete_at=1_100, incomplete_details={"reason": "max_tokens"}
        )
        assert changes.steps == [closed_step] == [stored_steps[other_step.id]]
        assert changes.messages == [closed_message] == [stored_messages[other_message.id]]

    run_on(url, scenario)


def test_saving_tool_calls_with_and_without_completing(url: str, project: str) -> None:
    calls = [ToolCall.function("call_1", "f", '{"x": 1}')]

    async def scenario(db: Database) -> None:
        async with db.write() as conn:
            made = await stored_run(conn, project)
            waiting, done = new_step(made), new_step(made)
            for step in (waiting, done):
                await run_steps.start(conn, step)
            kept = await run_steps.save_tool_calls(conn, waiting, calls, usage=USAGE)
            closed = await run_steps.save_tool_calls(
                conn, done, calls, usage=USAGE, completed_at=1_200
            )
            stored = {s.id: s for s in await run_steps.of_run(conn, made.id)}
        details = tool_calls_details(calls)
        assert kept == waiting.but(step_details=details, usage=USAGE)
        assert closed == done.but(
            step_details=details, usage=USAGE, status="completed", completed_at=1_200
        )
        assert stored == {kept.id: kept, closed.id: closed}

    run_on(url, scenario)


def test_submitted_outputs_complete_only_the_runs_waiting_tool_steps(
    url: str, project: str
) -> None:
    async def scenario(db: Database) -> None:
        async with db.write() as conn:
            made = await stored_run(conn, project)
            other = await stored_run(conn, project)
            waiting = new_step(made)
            finished = new_step(made, status="completed", completed_at=1_050)
            writing = new_step(made, "message_creation")
            elsewhere = new_step(other)
            for step in (waiting, finished, writing, elsewhere):
                await run_steps.start(conn, step)
            assert await run_steps.awaiting_outputs(conn, made.id) == [waiting]
            completed = await run_steps.complete_waiting_tool_steps(conn, made.id, 1_300)
            assert completed == [waiting.but(status="completed", completed_at=1_300)]
            assert await run_steps.awaiting_outputs(conn, made.id) == []
            assert await run_steps.of_run(conn, made.id) == [completed[0], finished, writing]
            assert await run_steps.awaiting_outputs(conn, other.id) == [elsewhere]

    run_on(url, scenario)


def test_step_pages_and_order(url: str, project: str) -> None:
    async def scenario(db: Database) -> None:
        async with db.write() as conn:
            made = await stored_run(conn, project)
            steps = [new_step(made, kind) for kind in ("tool_calls", "message_creation") * 2]
            for step in steps:
                await run_steps.start(conn, step)
            desc = await run_steps.list_page(conn, project, made.id, PageQuery())
            asc = await run_steps.list_page(conn, project, made.id, PageQuery(3, "asc"))
            rest = await run_steps.list_page(
                conn, project, made.id, PageQuery(3, "asc", after=steps[2].id)
            )
            foreign = await run_steps.list_page(conn, project + "x", made.id, PageQuery())
            details = {"type": "tool_calls", "tool_calls": [to_entry(_search_call("c"))]}
            updated = await run_steps.set_details(conn, steps[0], details)
            stored = await run_steps.get_in_run(conn, project, made.id, steps[0].id)
        assert desc.rows == steps[::-1]
        assert (asc.rows, asc.has_more) == (steps[:3], True)
        assert (rest.rows, rest.has_more) == (steps[3:], False)
        assert foreign.rows == []
        assert stored == updated == steps[0].but(step_details=details)

    run_on(url, scenario)


# --- tool calls


def _search_call(call_id: str, **model: Any) -> ToolCall:
    view = ModelView("file_search", '{"query": "q"}', "[1] result", **model)
    return ToolCall(call_id, "file_search", {"ranking_options": {}, "results": []}, view)


CALLS = [
    ToolCall.function("call_f", "lookup", '{"id": 3}'),
    ToolCall("call_done", "function", {"name": "g", "arguments": "{}", "output": "42"}),
    _search_call("call_s"),
    ToolCall(
        "call_ci",
        "code_interpreter",
        {"input": "print(1)", "outputs": [{"type": "logs", "logs": "1"}]},
        ModelView(
            "python",
            "print(1)",
            "1",
            files={"/mnt/data/a.png": "file-a"},
            staged={"file-b": "b.csv"},
        ),
    ),
]


@pytest.mark.parametrize("call", CALLS, ids=lambda c: c.id)
def test_a_tool_call_survives_its_entry(call: ToolCall) -> None:
    entry = to_entry(call)
    assert entry["id"] == call.id
    assert entry["type"] == call.type
    assert entry[call.type] == call.section
    assert (MODEL_KEY in entry) is (call.model is not None)
    assert from_entry(entry) == call


def test_the_hidden_entry_holds_the_model_view() -> None:
    plain, busy = _search_call("a"), CALLS[3]
    assert to_entry(plain)[MODEL_KEY] == {
        "name": "file_search",
        "arguments": '{"query": "q"}',
        "output": "[1] result",
    }
    assert to_entry(busy)[MODEL_KEY]["files"] == {"/mnt/data/a.png": "file-a"}
    assert to_entry(busy)[MODEL_KEY]["staged"] == {"file-b": "b.csv"}


def test_the_model_sees_a_call_as_a_function_call() -> None:
    waiting, answered, search = CALLS[0], CALLS[1], CALLS[2]
    assert waiting.as_model_call() == ModelView("lookup", '{"id": 3}', "")
    assert answered.as_model_call() == ModelView("g", "{}", "42")
    assert search.as_model_call() == search.model
    # An entry of an unknown shape reads back without a section rather than failing.
    assert from_entry({"id": "call_x", "type": "retrieval"}) == ToolCall("call_x", "retrieval", {})


def test_tool_calls_survive_storage(url: str, project: str) -> None:
    async def scenario(db: Database) -> None:
        async with db.write() as conn:
            made = await stored_run(conn, project)
            step, writing = new_step(made), new_step(made, "message_creation")
            await run_steps.start(conn, step)
            await run_steps.start(conn, writing)
            await run_steps.save_tool_calls(conn, step, CALLS, usage=USAGE)
            stored = await run_steps.of_run(conn, made.id)
        assert tool_calls_of(stored[0]) == CALLS
        assert tool_calls_of(stored[1]) == []

    run_on(url, scenario)


def test_builtin_calls_of_a_run_and_of_a_thread(url: str, project: str) -> None:
    async def scenario(db: Database) -> None:
        async with db.write() as conn:
            thread_id = await new_thread(conn, project)
            first = new_run(project, thread_id, status="completed")
            second = new_run(project, thread_id)
            assert await runs.create(conn, first)
            assert await runs.create(conn, second)
            elsewhere = await stored_run(conn, project)
            plan = [
                (first, [CALLS[0], _search_call("a1")]),
                (second, [_search_call("b1")]),
                (first, [_search_call("a2"), CALLS[1]]),
                (elsewhere, [_search_call("z")]),
            ]
            for owner, calls in plan:
                step = new_step(owner)
                await run_steps.start(conn, step)
                await run_steps.save_tool_calls(conn, step, calls, usage=USAGE)
            await run_steps.start(conn, new_step(first, "message_creation"))
            of_first = run_steps.builtin_calls(await run_steps.of_run(conn, first.id))
            of_thread = await run_steps.builtin_calls_of_thread(conn, thread_id)
        assert [c.id for c in of_first] == ["a1", "a2"]
        assert [c.id for c in of_thread] == ["a1", "b1", "a2"]
        assert of_first[0] == _search_call("a1")

    run_on(url, scenario)


def test_the_wire_never_shows_the_model_key(url: str, project: str) -> None:
    async def scenario(db: Database) -> None:
        async with db.write() as conn:
            made = await stored_run(conn, project)
            step = new_step(made)
            await run_steps.start(conn, step)
            await run_steps.save_tool_calls(conn, step, CALLS, usage=USAGE, completed_at=1_100)
            stored = (await run_steps.of_run(conn, made.id))[0]
        wire = step_to_wire(stored).model_dump()
        entries = wire["step_details"]["tool_calls"]
        assert entries == [{k: v for k, v in to_entry(c).items() if k != MODEL_KEY} for c in CALLS]
        assert MODEL_KEY not in repr(wire)
        # The record keeps what only the model sees: it is needed for the next completion.
        assert tool_calls_of(stored) == CALLS

    run_on(url, scenario)


# --- messages the executor writes


def test_a_run_writes_a_message(url: str, project: str) -> None:
    text = [{"type": "text", "text": {"value": "Hel", "annotations": []}}]
    final = [{"type": "text", "text": {"value": "Hello", "annotations": []}}]

    async def scenario(db: Database) -> None:
        async with db.write() as conn:
            made = await stored_run(conn, project)
            message = new_message(made)
            await messages.start(conn, message)
            assert await messages.get_in_thread(conn, project, made.thread_id, message.id) == (
                message
            )
            await messages.save_content(conn, message.id, text)
            assert await messages.of_run(conn, made.id) == [message.but(content=text)]
            ended = message.but(status="completed", content=final, completed_at=1_100)
            await messages.save_ending(conn, ended)
            assert await messages.of_run(conn, made.id) == [ended]
            # An incomplete ending keeps its time and reason.
            cut = new_message(made)
            await messages.start(conn, cut)
            reason = {"reason": "max_tokens"}
            cut = cut.but(status="incomplete", incomplete_at=1_050, incomplete_details=reason)
            await messages.save_ending(conn, cut)
            of_run = await messages.of_run(conn, made.id)
            assert sorted(of_run, key=lambda m: m.sort_key) == [ended, cut]

    run_on(url, scenario)


def test_a_threads_messages_come_oldest_first(url: str, project: str) -> None:
    async def scenario(db: Database) -> None:
        async with db.write() as conn:
            thread_id = await new_thread(conn, project)
            first = new_run(project, thread_id, status="completed")
            assert await runs.create(conn, first)
            asked = await messages.add(
                conn,
                messages.new(
                    project, thread_id, role="user", content=[], attachments=[], metadata={}
                ),
            )
            answer = new_message(first)
            await messages.start(conn, answer)
            second = new_run(project, thread_id)
            assert await runs.create(conn, second)
            again = new_message(second)
            await messages.start(conn, again)
            other = await stored_run(conn, project)
            await messages.start(conn, new_message(other))
            in_thread = await messages.in_thread(conn, thread_id)
            of_first = await messages.of_run(conn, first.id)
        assert in_thread == [asked, answer, again]
        assert of_first == [answer]

    run_on(url, scenario)


# --- wire shapes


@pytest.mark.parametrize("status", ALL_STATUSES)
def test_run_usage_is_shown_only_once_the_run_is_over(status: RunStatus) -> None:
    made = new_run("p", "thread_1", status=status, usage=USAGE, worker_id="w", lease_until=1.0)
    wire = run_to_wire(made)
    assert wire.usage == (USAGE if status in TERMINAL_STATUSES else None)
    assert wire.status == status
    dumped = wire.model_dump()
    # Bookkeeping columns stay in the store.
    assert not {"project", "sort_key", "worker_id", "lease_until"} & set(dumped)
    assert dumped["object"] == "thread.run"


@pytest.mark.parametrize("status", ["in_progress", "completed", "failed", "cancelled", "expired"])
def test_step_usage_is_hidden_while_the_step_is_in_progress(status: str) -> None:
    made = new_run("p", "thread_1")
    wire = step_to_wire(new_step(made, status=status, usage=USAGE))
    assert wire.usage == (None if status == "in_progress" else USAGE)
    assert wire.status == status
    assert not {"project", "sort_key"} & set(wire.model_dump())


def test_stored_run_usage_reaches_the_wire_when_it_ends(url: str, project: str) -> None:
    async def scenario(db: Database) -> tuple[Any, Any]:
        async with db.write() as conn:
            made = await stored_run(conn, project, status="in_progress")
            await runs.set_usage(conn, made.id, USAGE)
            during = run_to_wire(await runs.load(conn, made.id)).usage
            await runs.patch(conn, made, status="completed", completed_at=1_500)
            after = run_to_wire(await runs.load(conn, made.id)).usage
        return during, after

    assert run_on(url, scenario) == (None, USAGE)


def test_a_message_on_the_wire() -> None:
    made = new_run("p", "thread_1")
    content = [{"type": "text", "text": {"value": "x", "annotations": []}}]
    message = new_message(made, content=content, metadata={"k": "v"})
    dumped = message_to_wire(message).model_dump()
    assert dumped["object"] == "thread.message"
    assert [dumped[k] for k in ("id", "run_id", "thread_id")] == [message.id, made.id, "thread_1"]
    assert (dumped["content"], dumped["metadata"]) == (content, {"k": "v"})
    assert not {"project", "sort_key"} & set(dumped)
