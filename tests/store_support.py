"""Set-up shared by the store, executor and tool tests: databases (SQLite under a
directory, or a throwaway PostgreSQL one), migrated stores, and records built as the
services and the recorder build them.

Builders take every field a test cares about as a keyword; the defaults are the plain
values of a fresh queued run, open step or open message, so a test names only what it pins.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, TypeVar

from assistd import clock, ids
from assistd.protocol.runs import RunObject, RunStepObject
from assistd.store import assistants, threads, vector_store_files
from assistd.store.database import Connection, Database
from assistd.store.records import (
    Assistant,
    JsonObject,
    Message,
    Run,
    RunStep,
    Thread,
    VectorStoreFile,
)
from tests.conftest import _postgres_database

T = TypeVar("T")

# A throwaway PostgreSQL database (skipped with its reason when unreachable, failed in CI).
postgres_url = contextmanager(_postgres_database)


@contextmanager
def database_url(kind: str, directory: Path, name: str = "store.db") -> Iterator[str]:
    """The URL of an empty database of ``kind``: a file under ``directory``, or PostgreSQL's."""
    if kind == "sqlite":
        yield f"sqlite+aiosqlite:///{directory / name}"
        return
    with postgres_url() as url:
        yield url


def run_on(url: str, scenario: Callable[[Database], Awaitable[T]]) -> T:
    """Run ``scenario`` on its own handle of the database (one per event loop)."""

    async def main() -> T:
        db = Database(url)
        try:
            return await scenario(db)
        finally:
            await db.dispose()

    return asyncio.run(main())


@asynccontextmanager
async def impatient_writer(db: Database) -> AsyncIterator[Connection]:
    """A second writing connection (beside ``db.write``'s) that gives up waiting for a
    lock after 50 ms instead of the default."""
    if db.dialect == "sqlite":
        async with db.read() as conn:  # its own connection, which may write
            await conn.exec_driver_sql("PRAGMA busy_timeout = 50")
            yield conn
        return
    # PostgreSQL's reads run without a transaction (and SET LOCAL needs one).
    async with db.engine.begin() as conn:
        await conn.exec_driver_sql("SET LOCAL lock_timeout = '50ms'")
        yield conn


async def _migrate(db: Database) -> None:
    await db.migrate()


@contextmanager
def migrated_url(kind: str, directory: Path, name: str = "store.db") -> Iterator[str]:
    """``database_url``, migrated: what a module-wide database fixture yields."""
    with database_url(kind, directory, name) as url:
        run_on(url, _migrate)
        yield url


# --- rows through the store -------------------------------------------------------------


async def new_assistant(conn: Connection, project: str, **overrides: Any) -> Assistant:
    values: dict[str, Any] = {
        "model": "scripted",
        "name": None,
        "description": None,
        "instructions": None,
        "tools": [],
        "tool_resources": None,
        "metadata": {},
        "temperature": None,
        "top_p": None,
        "response_format": "auto",
        "reasoning_effort": None,
        **overrides,
    }
    return await assistants.create(conn, project, **values)


async def new_thread(
    conn: Connection, project: str, tool_resources: JsonObject | None = None
) -> Thread:
    return await threads.create(conn, project, tool_resources=tool_resources, metadata={})


# --- records ----------------------------------------------------------------------------

# The fields a run has on the wire and in the store alike, as a fresh queued run has them.
_RUN_FIELDS: dict[str, Any] = {
    "created_at": 0,
    "assistant_id": "asst_none",
    "thread_id": "thread_none",
    "status": "queued",
    "started_at": None,
    "expires_at": None,
    "cancelled_at": None,
    "failed_at": None,
    "completed_at": None,
    "required_action": None,
    "last_error": None,
    "model": "gpt-4o",
    "instructions": "",
    "tools": [],
    "tool_resources": {},
    "metadata": {},
    "temperature": None,
    "top_p": None,
    "max_completion_tokens": None,
    "max_prompt_tokens": None,
    "truncation_strategy": {"type": "auto", "last_messages": None},
    "incomplete_details": None,
    "usage": None,
    "response_format": "auto",
    "tool_choice": "auto",
    "parallel_tool_calls": True,
    "reasoning_effort": None,
}


def run_record(**fields: Any) -> Run:
    """A queued run as ``services.runs`` builds one (a fresh id unless given), with
    ``fields`` applied."""
    run_id = fields.pop("id", None) or ids.new_id("run")
    key = ids.sort_key_of(run_id, "run")
    assert key is not None
    values = {
        "id": run_id,
        "sort_key": key,
        "project": "proj",
        **_RUN_FIELDS,
        "worker_id": None,
        "lease_until": None,
    }
    return Run(**(values | fields))


def run_object(**fields: Any) -> RunObject:
    """A run as the API shows it, with ``fields`` applied."""
    return RunObject(**(_RUN_FIELDS | {"id": "run_1"} | fields))


def _details(kind: str, message_id: str) -> JsonObject:
    if kind == "tool_calls":
        return {"type": "tool_calls", "tool_calls": []}
    return {"type": "message_creation", "message_creation": {"message_id": message_id}}


def step_record(
    run: Run, kind: str = "tool_calls", message_id: str = "msg_1", **fields: Any
) -> RunStep:
    """An open step of ``run`` as the recorder opens it, with ``fields`` applied."""
    step_id = ids.new_id("step")
    values: dict[str, Any] = {
        "id": step_id,
        "sort_key": ids.sort_key_of(step_id, "step") or 0,
        "project": run.project,
        "created_at": clock.now(),
        "run_id": run.id,
        "thread_id": run.thread_id,
        "assistant_id": run.assistant_id,
        "type": kind,
        "status": "in_progress",
        "step_details": _details(kind, message_id),
        "last_error": None,
        "usage": None,
        "cancelled_at": None,
        "completed_at": None,
        "expired_at": None,
        "failed_at": None,
        "metadata": {},
    }
    return RunStep(**(values | fields))


def step_object(**fields: Any) -> RunStepObject:
    """A message_creation step as the API shows it, with ``fields`` applied."""
    values: dict[str, Any] = {
        "id": "step_1",
        "created_at": 1,
        "run_id": "run_1",
        "assistant_id": "asst_1",
        "thread_id": "thread_1",
        "type": "message_creation",
        "status": "in_progress",
        "cancelled_at": None,
        "completed_at": None,
        "expired_at": None,
        "failed_at": None,
        "last_error": None,
        "step_details": _details("message_creation", "msg_1"),
        "usage": None,
        "metadata": {},
    }
    return RunStepObject(**(values | fields))


def message_record(run: Run, message_id: str | None = None, **fields: Any) -> Message:
    """An open assistant message of ``run`` as the recorder opens it, with ``fields``
    applied."""
    message_id = message_id or ids.new_id("message")
    values: dict[str, Any] = {
        "id": message_id,
        "sort_key": ids.sort_key_of(message_id, "message") or 0,
        "project": run.project,
        "created_at": clock.now(),
        "thread_id": run.thread_id,
        "role": "assistant",
        "status": "in_progress",
        "content": [],
        "attachments": [],
        "metadata": {},
        "assistant_id": run.assistant_id,
        "run_id": run.id,
        "incomplete_details": None,
        "completed_at": None,
        "incomplete_at": None,
    }
    return Message(**(values | fields))


def attached_file(project: str, store_id: str, file_id: str) -> VectorStoreFile:
    """A file attached to a vector store with the default chunking, waiting for ingestion."""
    return vector_store_files.new_file(
        project,
        store_id,
        file_id,
        chunking_strategy={"type": "auto"},
        attributes=None,
        batch_id=None,
        now=0,
    )
