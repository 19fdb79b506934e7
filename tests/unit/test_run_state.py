"""The run state machine (``executor.state``) over its store writes (``store.run_state``).

Every case runs against a real migrated database, SQLite and PostgreSQL, with the rows
made through the store's own functions. The transition table is pinned twice: as data
(``TRANSITIONS`` equals the spec below) and as behaviour (every (from, to) pair of run
statuses moves exactly when the spec allows it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, get_args

import pytest

from assistd import clock, ids
from assistd.events.base import run_channel
from assistd.events.memory import MemoryEventBus, MemorySubscription
from assistd.executor.emitter import Emitter
from assistd.executor.state import TRANSITIONS, end_run, transition
from assistd.protocol.events import MessageEvent, RunEvent, RunStepEvent, StreamEvent
from assistd.protocol.runs import ACTIVE_STATUSES, TERMINAL_STATUSES, RunStatus
from assistd.store import messages, run_steps, runs
from assistd.store.database import Database
from assistd.store.records import Message, Run, RunStep
from tests.store_support import (
    message_record,
    migrated_url,
    new_assistant,
    new_thread,
    run_on,
    run_record,
    step_record,
)

PROJECT = "proj_run_state"
STATUSES: tuple[RunStatus, ...] = get_args(RunStatus)
STARTED = 1_000  # a started_at far in the past, so a fresh stamp is told apart from it
EARLIER = 2_000  # when the children that already finished did
ERROR = {"code": "server_error", "message": "The model backend failed."}
REQUIRED_ACTION = {
    "type": "submit_tool_outputs",
    "submit_tool_outputs": {"tool_calls": [{"id": "call_1", "type": "function"}]},
}

# The spec, written out independently of the code: to-status -> statuses it is entered from.
EXPECTED_TRANSITIONS: dict[RunStatus, set[RunStatus]] = {
    "queued": {"requires_action"},  # tool outputs submitted
    "in_progress": {"queued"},  # a worker picked it up
    "requires_action": {"in_progress"},
    "cancelling": {"queued", "in_progress", "requires_action"},
    "cancelled": set(ACTIVE_STATUSES),
    "completed": {"in_progress", "cancelling"},
    "incomplete": {"in_progress", "cancelling"},
    "failed": set(ACTIVE_STATUSES),
    "expired": set(ACTIVE_STATUSES),
}
ALLOWED = {(frm, to) for to, froms in EXPECTED_TRANSITIONS.items() for frm in froms}
ALL_PAIRS = [(frm, to) for frm in STATUSES for to in STATUSES]
TERMINAL_PAIRS = sorted((f, t) for f, t in ALLOWED if t in TERMINAL_STATUSES)
NON_TERMINAL_PAIRS = sorted((f, t) for f, t in ALLOWED if t not in TERMINAL_STATUSES)
# The run's own timestamp each terminal status stamps (runs have no expired/incomplete_at).
STAMP: dict[str, str | None] = {
    "cancelled": "cancelled_at",
    "completed": "completed_at",
    "failed": "failed_at",
    "incomplete": None,
    "expired": None,
}
STAMPS = ("cancelled_at", "completed_at", "failed_at")
# What an open step becomes, and why an open message ended, per terminal status.
STEP_END = {
    "cancelled": "cancelled",
    "failed": "failed",
    "expired": "expired",
    "completed": "completed",
    "incomplete": "completed",
}
MESSAGE_REASON = {
    "cancelled": "run_cancelled",
    "failed": "run_failed",
    "expired": "run_expired",
    "completed": "max_tokens",
    "incomplete": "max_tokens",
}


def pair_ids(pairs: list[tuple[RunStatus, RunStatus]]) -> list[str]:
    return [f"{frm}->{to}" for frm, to in pairs]


Scenario = Callable[[Database], Coroutine[Any, Any, None]]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """One migrated database per dialect for the module; each test makes its own threads."""
    with migrated_url(request.param, tmp_path_factory.mktemp("run-state"), "assistd.db") as url:
        yield url


def run_scenario(url: str, scenario: Scenario) -> None:
    run_on(url, scenario)


# --- building rows through the store ---------------------------------------------------


async def make_run(db: Database, status: RunStatus, **overrides: Any) -> Run:
    """A run in ``status`` on a fresh thread (one active run per thread is enforced), with
    every field a terminal move clears set, so clearing it shows."""
    now = clock.now()
    async with db.write() as conn:
        assistant = await new_assistant(conn, PROJECT, model="gpt-4o", instructions="Be brief.")
        thread = await new_thread(conn, PROJECT)
        run = run_record(
            project=PROJECT,
            created_at=now,
            thread_id=thread.id,
            assistant_id=assistant.id,
            status=status,
            started_at=None if status == "queued" else STARTED,
            expires_at=now + 600,
            required_action=REQUIRED_ACTION,
            instructions="Be brief.",
            temperature=1.0,
            top_p=1.0,
            worker_id="worker-1",
            lease_until=now + 60.5,
        ).but(**overrides)
        assert await runs.create(conn, run)
    return run


async def add_step(db: Database, run: Run, kind: str, status: str = "in_progress") -> RunStep:
    step = step_record(
        run, kind, "msg_x", status=status, completed_at=EARLIER if status == "completed" else None
    )
    async with db.write() as conn:
        await run_steps.start(conn, step)
    return step


async def add_message(db: Database, run: Run, status: str = "in_progress") -> Message:
    message = message_record(
        run,
        status=status,
        content=[{"type": "text", "text": {"value": "partial", "annotations": []}}],
        completed_at=EARLIER if status == "completed" else None,
    )
    async with db.write() as conn:
        await messages.start(conn, message)
    return message


async def load(db: Database, run_id: str) -> Run:
    async with db.read() as conn:
        return await runs.load(conn, run_id)


async def steps_of(db: Database, run_id: str) -> dict[str, RunStep]:
    async with db.read() as conn:
        return {s.id: s for s in await run_steps.of_run(conn, run_id)}


async def messages_of(db: Database, run_id: str) -> dict[str, Message]:
    async with db.read() as conn:
        return {m.id: m for m in await messages.of_run(conn, run_id)}


def drain(subscription: MemorySubscription) -> list[StreamEvent]:
    """Everything published so far (the memory bus delivers synchronously on publish)."""
    events: list[StreamEvent] = []
    while (delivery := subscription.get_nowait()) is not None:
        events.append(delivery.event)
    return events


def kind_of(event: StreamEvent) -> type[StreamEvent]:
    return next(k for k in (MessageEvent, RunStepEvent, RunEvent) if isinstance(event, k))


# --- the table -----------------------------------------------------------------------


def test_transitions_table_is_the_spec() -> None:
    assert {to: set(froms) for to, froms in TRANSITIONS.items()} == EXPECTED_TRANSITIONS
    assert set(TRANSITIONS) == set(STATUSES)
    # Once a run ended nothing moves it again, and no status is entered from itself.
    assert all(frm not in TERMINAL_STATUSES and frm != to for frm, to in ALLOWED)


@pytest.mark.parametrize(("from_status", "to_status"), ALL_PAIRS, ids=pair_ids(ALL_PAIRS))
def test_transition_applies_exactly_when_allowed(
    database_url: str, from_status: RunStatus, to_status: RunStatus
) -> None:
    async def scenario(db: Database) -> None:
        run = await make_run(db, from_status)
        async with db.write() as conn:
            changes = await transition(conn, run.id, to_status)
        stored = await load(db, run.id)
        if (from_status, to_status) in ALLOWED:
            assert changes is not None
            assert stored.status == to_status
            # The record handed back is the row as committed, not a guess at it.
            assert changes.run == stored
            assert changes.steps == []
            assert changes.messages == []
        else:
            assert changes is None
            assert stored == run  # not a single column written

    run_scenario(database_url, scenario)


@pytest.mark.parametrize("to_status", STATUSES)
def test_transition_of_an_unknown_run_is_none(database_url: str, to_status: RunStatus) -> None:
    async def scenario(db: Database) -> None:
        async with db.write() as conn:
            assert await transition(conn, ids.new_id("run"), to_status) is None

    run_scenario(database_url, scenario)


# --- what each move writes -----------------------------------------------------------


@pytest.mark.parametrize(("from_status", "to_status"), TERMINAL_PAIRS, ids=pair_ids(TERMINAL_PAIRS))
def test_terminal_move_stamps_and_clears(
    database_url: str, from_status: RunStatus, to_status: RunStatus
) -> None:
    async def scenario(db: Database) -> None:
        run = await make_run(db, from_status)
        before = clock.now()
        async with db.write() as conn:
            changes = await transition(conn, run.id, to_status)
        after = clock.now()
        assert changes is not None
        stored = await load(db, run.id)
        assert stored.status == to_status
        # A finished run waits for nothing and belongs to no worker.
        assert stored.expires_at is None
        assert stored.required_action is None
        assert stored.worker_id is None
        assert stored.lease_until is None
        for field in STAMPS:
            value = getattr(stored, field)
            if field == STAMP[to_status]:
                assert value is not None
                assert before <= value <= after
            else:
                assert value is None, field
        assert stored.started_at == run.started_at
        assert stored.last_error is None
        assert stored.incomplete_details is None

    run_scenario(database_url, scenario)


@pytest.mark.parametrize(
    ("from_status", "to_status"), NON_TERMINAL_PAIRS, ids=pair_ids(NON_TERMINAL_PAIRS)
)
def test_non_terminal_move_changes_only_the_status(
    database_url: str, from_status: RunStatus, to_status: RunStatus
) -> None:
    async def scenario(db: Database) -> None:
        run = await make_run(db, from_status)
        step = await add_step(db, run, "tool_calls")
        message = await add_message(db, run)
        before = clock.now()
        async with db.write() as conn:
            changes = await transition(conn, run.id, to_status)
        after = clock.now()
        assert changes is not None
        assert changes.steps == []
        assert changes.messages == []
        stored = await load(db, run.id)
        started = stored.started_at
        if to_status == "in_progress" and run.started_at is None:
            assert started is not None
            assert before <= started <= after
        else:
            assert started == run.started_at
        # Lease, deadline and required action are the caller's to change on these moves.
        assert stored == run.but(status=to_status, started_at=started)
        assert (await steps_of(db, run.id)) == {step.id: step}
        assert (await messages_of(db, run.id)) == {message.id: message}

    run_scenario(database_url, scenario)


def test_entering_in_progress_stamps_started_at_only_the_first_time(database_url: str) -> None:
    async def scenario(db: Database) -> None:
        fresh = await make_run(db, "queued")
        resumed = await make_run(db, "queued", started_at=STARTED)  # back from tool outputs
        before = clock.now()
        async with db.write() as conn:
            assert await transition(conn, fresh.id, "in_progress") is not None
            assert await transition(conn, resumed.id, "in_progress") is not None
        after = clock.now()
        first = (await load(db, fresh.id)).started_at
        assert first is not None
        assert before <= first <= after
        assert (await load(db, resumed.id)).started_at == STARTED

    run_scenario(database_url, scenario)


@pytest.mark.parametrize("to_status", ["cancelling", "cancelled", "failed", "expired"])
def test_leaving_queued_elsewhere_never_stamps_started_at(
    database_url: str, to_status: RunStatus
) -> None:
    async def scenario(db: Database) -> None:
        run = await make_run(db, "queued")
        async with db.write() as conn:
            assert await transition(conn, run.id, to_status) is not None
        assert (await load(db, run.id)).started_at is None

    run_scenario(database_url, scenario)


def test_fields_are_written_with_the_move(database_url: str) -> None:
    async def scenario(db: Database) -> None:
        waiting = await make_run(db, "in_progress", required_action=None, expires_at=None)
        failing = await make_run(db, "in_progress")
        ending = await make_run(db, "cancelling")
        details = {"reason": "max_prompt_tokens"}
        async with db.write() as conn:
            await transition(
                conn, waiting.id, "requires_action", required_action=REQUIRED_ACTION, expires_at=7
            )
            # The caller's timestamp wins over the stamp; the lease is cleared regardless.
            await transition(
                conn, failing.id, "failed", last_error=ERROR, failed_at=42, worker_id="worker-2"
            )
            await transition(conn, ending.id, "incomplete", incomplete_details=details)
        stored = await load(db, waiting.id)
        assert (stored.required_action, stored.expires_at) == (REQUIRED_ACTION, 7)
        stored = await load(db, failing.id)
        assert (stored.last_error, stored.failed_at, stored.worker_id) == (ERROR, 42, None)
        stored = await load(db, ending.id)
        assert stored.incomplete_details == details
        assert stored.status == "incomplete"

    run_scenario(database_url, scenario)


def test_resuming_after_tool_outputs_keeps_what_the_caller_does_not_clear(
    database_url: str,
) -> None:
    async def scenario(db: Database) -> None:
        kept = await make_run(db, "requires_action")
        cleared = await make_run(db, "requires_action")
        async with db.write() as conn:
            await transition(conn, kept.id, "queued")
            await transition(conn, cleared.id, "queued", required_action=None)
        assert (await load(db, kept.id)).required_action == REQUIRED_ACTION
        assert (await load(db, cleared.id)).required_action is None

    run_scenario(database_url, scenario)


# --- closing the run's children ---------------------------------------------------------


@pytest.mark.parametrize("to_status", TERMINAL_STATUSES)
def test_terminal_move_closes_open_children_only(database_url: str, to_status: RunStatus) -> None:
    async def scenario(db: Database) -> None:
        run = await make_run(db, "in_progress")
        done_step = await add_step(db, run, "message_creation", "completed")
        done_message = await add_message(db, run, "completed")
        open_text = await add_step(db, run, "message_creation")
        open_tools = await add_step(db, run, "tool_calls")
        open_message = await add_message(db, run)
        # Another run's open children are not this run's to close.
        other = await make_run(db, "in_progress")
        other_step = await add_step(db, other, "tool_calls")
        other_message = await add_message(db, other)

        before = clock.now()
        async with db.write() as conn:
            # last_error goes with every status, so only "failed" copying it shows.
            changes = await transition(conn, run.id, to_status, last_error=ERROR)
        after = clock.now()
        assert changes is not None

        steps = await steps_of(db, run.id)
        assert steps[done_step.id] == done_step
        status = STEP_END[to_status]
        for opened in (open_text, open_tools):
            step = steps[opened.id]
            assert step.status == status
            stamp = getattr(step, f"{status}_at")
            assert stamp is not None
            assert before <= stamp <= after
            assert step.last_error == (ERROR if status == "failed" else None)
            others = {"cancelled_at", "completed_at", "expired_at", "failed_at"} - {f"{status}_at"}
            assert all(getattr(step, f) is None for f in others)
        assert {s.id: s for s in changes.steps} == {
            open_text.id: steps[open_text.id],
            open_tools.id: steps[open_tools.id],
        }

        stored = await messages_of(db, run.id)
        assert stored[done_message.id] == done_message
        closed = stored[open_message.id]
        assert closed.status == "incomplete"
        assert closed.incomplete_details == {"reason": MESSAGE_REASON[to_status]}
        assert closed.incomplete_at is not None
        assert before <= closed.incomplete_at <= after
        assert closed.completed_at is None
        assert closed.content == open_message.content  # what was written so far stays
        assert changes.messages == [closed]

        assert (await steps_of(db, other.id)) == {other_step.id: other_step}
        assert (await messages_of(db, other.id)) == {other_message.id: other_message}

    run_scenario(database_url, scenario)


def test_closing_is_part_of_the_callers_transaction(database_url: str) -> None:
    async def scenario(db: Database) -> None:
        run = await make_run(db, "in_progress")
        step = await add_step(db, run, "tool_calls")
        message = await add_message(db, run)

        async def cancel_then_fail() -> None:
            async with db.write() as conn:
                assert await transition(conn, run.id, "cancelled") is not None
                raise RuntimeError("abort")

        with pytest.raises(RuntimeError, match="abort"):
            await cancel_then_fail()
        # Rolled back as one: the run, its step and its message all as they were.
        assert await load(db, run.id) == run
        assert await steps_of(db, run.id) == {step.id: step}
        assert await messages_of(db, run.id) == {message.id: message}

    run_scenario(database_url, scenario)


# --- only_from -------------------------------------------------------------------------

ONLY_FROM_CASES: list[tuple[RunStatus, RunStatus, list[RunStatus], bool]] = [
    ("in_progress", "cancelled", ["requires_action"], False),
    ("requires_action", "cancelled", ["requires_action"], True),
    ("cancelling", "cancelled", ["queued", "cancelling"], True),
    ("in_progress", "expired", ["queued", "requires_action"], False),
    ("queued", "failed", [], False),  # nothing to move from
    # only_from narrows the table; it never widens it.
    ("completed", "in_progress", ["completed", "queued"], False),
    ("in_progress", "queued", ["in_progress"], False),
]


@pytest.mark.parametrize(("current", "to_status", "only_from", "moves"), ONLY_FROM_CASES)
def test_only_from_narrows_the_allowed_statuses(
    database_url: str,
    current: RunStatus,
    to_status: RunStatus,
    only_from: list[RunStatus],
    moves: bool,
) -> None:
    async def scenario(db: Database) -> None:
        run = await make_run(db, current)
        step = await add_step(db, run, "tool_calls")
        async with db.write() as conn:
            changes = await transition(conn, run.id, to_status, only_from=only_from)
        stored = await load(db, run.id)
        if moves:
            assert changes is not None
            assert stored.status == to_status
        else:
            assert changes is None
            assert stored == run
            assert await steps_of(db, run.id) == {step.id: step}  # nothing closed either

    run_scenario(database_url, scenario)


# --- end_run: one transaction, then its events --------------------------------------


@pytest.mark.parametrize("to_status", TERMINAL_STATUSES)
def test_end_run_publishes_messages_then_steps_then_the_run(
    database_url: str, to_status: RunStatus
) -> None:
    async def scenario(db: Database) -> None:
        bus = MemoryEventBus()
        run = await make_run(db, "in_progress")
        await add_step(db, run, "message_creation", "completed")
        await add_message(db, run, "completed")
        open_text = await add_step(db, run, "message_creation")
        open_message = await add_message(db, run)
        open_tools = await add_step(db, run, "tool_calls")
        other = await make_run(db, "in_progress")
        async with (
            bus.subscribe(run_channel(run.id)) as subscription,
            bus.subscribe(run_channel(other.id)) as elsewhere,
        ):
            changes = await end_run(db, Emitter(bus), run.id, to_status, last_error=ERROR)
            events = drain(subscription)
            assert drain(elsewhere) == []
        assert changes is not None
        # Committed before it was announced: a fresh read sees what the events say.
        assert (await load(db, run.id)).status == to_status

        assert [kind_of(e) for e in events] == [
            MessageEvent,
            RunStepEvent,
            RunStepEvent,
            RunEvent,
        ]
        message_event, *step_events, run_event = events
        assert message_event.event == "thread.message.incomplete"
        assert message_event.data.id == open_message.id
        assert message_event.data.incomplete_details is not None
        assert message_event.data.incomplete_details.reason == MESSAGE_REASON[to_status]
        step_status = STEP_END[to_status]
        assert {e.event for e in step_events} == {f"thread.run.step.{step_status}"}
        assert {e.data.id for e in step_events} == {open_text.id, open_tools.id}
        assert all(e.data.status == step_status for e in step_events)
        assert run_event.event == f"thread.run.{to_status}"
        assert run_event.data.id == run.id
        assert run_event.data.status == to_status
        assert run_event.data.expires_at is None
        assert run_event.data.required_action is None

    run_scenario(database_url, scenario)


@pytest.mark.parametrize(
    ("current", "to_status"),
    [("completed", "cancelled"), ("queued", "completed"), ("failed", "expired")],
)
def test_end_run_publishes_nothing_when_the_move_does_not_apply(
    database_url: str, current: RunStatus, to_status: RunStatus
) -> None:
    async def scenario(db: Database) -> None:
        bus = MemoryEventBus()
        run = await make_run(db, current)
        step = await add_step(db, run, "tool_calls")
        async with bus.subscribe(run_channel(run.id)) as subscription:
            assert await end_run(db, Emitter(bus), run.id, to_status) is None
            assert drain(subscription) == []
        assert await load(db, run.id) == run
        assert await steps_of(db, run.id) == {step.id: step}

    run_scenario(database_url, scenario)


def test_end_run_into_a_non_terminal_status_sends_only_the_run(database_url: str) -> None:
    async def scenario(db: Database) -> None:
        bus = MemoryEventBus()
        run = await make_run(db, "in_progress")
        await add_step(db, run, "tool_calls")
        await add_message(db, run)
        async with bus.subscribe(run_channel(run.id)) as subscription:
            changes = await end_run(db, Emitter(bus), run.id, "cancelling")
            events = drain(subscription)
        assert changes is not None
        assert [e.event for e in events] == ["thread.run.cancelling"]
        assert events[0].data.status == "cancelling"

    run_scenario(database_url, scenario)


def test_racing_ends_apply_once(database_url: str) -> None:
    async def scenario(db: Database) -> None:
        bus = MemoryEventBus()
        run = await make_run(db, "in_progress")
        step = await add_step(db, run, "tool_calls")
        emit = Emitter(bus)
        async with bus.subscribe(run_channel(run.id)) as subscription:
            results = await asyncio.gather(
                end_run(db, emit, run.id, "completed"),
                end_run(db, emit, run.id, "cancelled"),
                end_run(db, emit, run.id, "expired"),
            )
            events = drain(subscription)
        winners = [r for r in results if r is not None]
        # A compare-and-set: exactly one ending applies and only its events go out.
        assert len(winners) == 1
        status = winners[0].run.status
        assert (await load(db, run.id)).status == status
        assert [e.event for e in events] == [
            f"thread.run.step.{STEP_END[status]}",
            f"thread.run.{status}",
        ]
        assert events[0].data.id == step.id

    run_scenario(database_url, scenario)
