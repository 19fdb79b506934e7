"""The object store modules (assistants, threads, messages, files, API keys), the typed
records they return and the cursor pages of ``RecordRepository``, on SQLite and PostgreSQL.

Each test gets its own project in a module-wide database: isolation between projects is
both under test and what keeps the tests independent. The few queries that span projects
(expired files, stored keys) are checked against ids the test made, or a fresh database.
"""

from __future__ import annotations

import dataclasses
import hashlib
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar, cast

import pytest
import sqlalchemy as sa

from assistd import clock, ids
from assistd.errors import InvalidRequestError
from assistd.store import (
    api_keys,
    assistants,
    files,
    messages,
    tables,
    threads,
    vector_store_files,
)
from assistd.store.blobs import LocalBlobStore, StoredBlob
from assistd.store.database import Connection, Database
from assistd.store.records import Assistant, File, Message, Thread
from assistd.store.repository import Order, PageQuery, RecordRepository
from tests.store_support import impatient_writer, migrated_url, new_assistant, new_thread
from tests.store_support import run_on as run

T = TypeVar("T")


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A migrated database shared by this module's tests (each in its own project)."""
    with migrated_url(request.param, tmp_path_factory.mktemp(f"objects-{request.param}")) as made:
        yield made


@pytest.fixture
def project() -> str:
    return "proj_" + secrets.token_hex(6)


# --- records


def _thread(**changes: Any) -> Thread:
    base = Thread(
        id="thread_x", sort_key=7, project="p", created_at=1, tool_resources=None, metadata={}
    )
    return base.but(**changes)


def test_from_row_takes_the_record_fields_and_ignores_other_columns() -> None:
    # Rows of vector_store_files carry parsed_text, which the record leaves out.
    row = {**_thread().values(), "parsed_text": "not a field"}
    assert Thread.from_row(row) == _thread()
    missing = _thread().values()
    del missing["metadata"]
    with pytest.raises(KeyError):
        Thread.from_row(missing)


def test_values_are_every_column_in_field_order() -> None:
    thread = _thread(metadata={"k": "v"})
    assert list(thread.values()) == [f.name for f in dataclasses.fields(Thread)]
    assert thread.values()["metadata"] == {"k": "v"}
    assert Thread.from_row(thread.values()) == thread


def test_but_is_a_new_record_and_records_are_frozen() -> None:
    thread = _thread()
    changed = thread.but(metadata={"a": "b"}, created_at=5)
    assert (changed.metadata, changed.created_at, changed.id) == ({"a": "b"}, 5, "thread_x")
    assert thread.metadata == {}  # the original is untouched
    with pytest.raises(dataclasses.FrozenInstanceError):
        thread.id = "thread_y"  # type: ignore[misc]
    with pytest.raises(TypeError):
        thread.but(no_such_field=1)


def test_a_vector_store_file_is_known_by_its_file_id() -> None:
    attached = vector_store_files.new_file(
        "p", "vs_1", "file-1", chunking_strategy={}, attributes=None, batch_id=None, now=0
    )
    assert attached.id == "file-1"
    assert "id" not in attached.values()  # not a column


# --- assistants


def test_an_assistant_round_trips_every_column(url: str, project: str) -> None:
    async def scenario(db: Database) -> None:
        before = clock.now()
        async with db.write() as conn:
            made = await new_assistant(
                conn,
                project,
                name="n",
                description="d",
                instructions="be brief",
                tools=[{"type": "function", "function": {"name": "f", "parameters": {}}}],
                tool_resources={"file_search": {"vector_store_ids": ["vs_1"]}},
                metadata={"k": "v"},
                temperature=0.5,
                top_p=0.25,
                response_format={"type": "json_object"},
                reasoning_effort="low",
            )
        assert made.id.startswith("asst_")
        assert made.sort_key == ids.sort_key_of(made.id, "assistant")
        assert before <= made.created_at <= clock.now()
        assert made.project == project
        async with db.read() as conn:
            assert await assistants.get_for_project(conn, project, made.id) == made

    run(url, scenario)


def test_patching_an_assistant_returns_it_as_stored(url: str, project: str) -> None:
    async def scenario(db: Database) -> None:
        async with db.write() as conn:
            made = await new_assistant(conn, project, name="old", metadata={"a": "1"})
            patched = await assistants.patch(conn, made, name="new", metadata={"b": "2"})
        assert patched == made.but(name="new", metadata={"b": "2"})
        assert made.name == "old"
        async with db.read() as conn:
            assert await assistants.get_for_project(conn, project, made.id) == patched

    run(url, scenario)


def test_another_projects_assistant_is_absent(url: str, project: str) -> None:
    other = project + "_other"
    repo = RecordRepository(tables.assistants, "assistant", Assistant)

    async def scenario(db: Database) -> None:
        async with db.write() as conn:
            mine = await new_assistant(conn, project, name="mine")
            theirs = await new_assistant(conn, other, name="theirs")
            assert await assistants.get_for_project(conn, project, theirs.id) is None
            page = await assistants.list_page(conn, project, PageQuery())
            assert [a.id for a in page.rows] == [mine.id]
            assert await repo.get_many(conn, project, [mine.id, theirs.id]) == {mine.id: mine}
            # Writes through the wrong project touch nothing and say so.
            assert await repo.patch(conn, project, theirs.id, name="taken") is False
            assert await assistants.delete(conn, project, theirs.id) is False
            assert await assistants.get_for_project(conn, other, theirs.id) == theirs

    run(url, scenario)


def test_writes_report_a_missing_id(url: str, project: str) -> None:
    repo = RecordRepository(tables.assistants, "assistant", Assistant)

    async def scenario(db: Database) -> None:
        async with db.write() as conn:
            made = await new_assistant(conn, project)
            assert await assistants.delete(conn, project, made.id) is True
            assert await assistants.delete(conn, project, made.id) is False
            assert await assistants.get_for_project(conn, project, made.id) is None
            assert await repo.patch(conn, project, made.id, name="x") is False
            assert await repo.remove(conn, project, made.id) is False
            assert await repo.get_many(conn, project, []) == {}

    run(url, scenario)


def test_tool_resources_of_an_assistant_and_a_thread(url: str, project: str) -> None:
    resources = {"code_interpreter": {"file_ids": ["file-1"]}}

    async def scenario(db: Database) -> None:
        async with db.write() as conn:
            with_res = await new_assistant(conn, project, tool_resources=resources)
            without = await new_assistant(conn, project)
            assert await assistants.tool_resources_of(conn, with_res.id) == resources
            assert await assistants.tool_resources_of(conn, without.id) is None
            assert await assistants.tool_resources_of(conn, ids.new_id("assistant")) is None
            thread = await threads.create(conn, project, tool_resources=resources, metadata={})
            bare = await threads.create(conn, project, tool_resources=None, metadata={})
            assert await threads.tool_resources_of(conn, thread.id) == resources
            assert await threads.tool_resources_of(conn, bare.id) is None
            assert await threads.tool_resources_of(conn, ids.new_id("thread")) is None

    run(url, scenario)


# --- cursor pages (RecordRepository.page through assistants.list_page)

# (order, after, before, limit, expected, has_more): indexes of five assistants made in order.
PAGES: list[tuple[Order, int | None, int | None, int, list[int], bool]] = [
    ("desc", None, None, 2, [4, 3], True),
    ("desc", None, None, 4, [4, 3, 2, 1], True),
    ("desc", None, None, 5, [4, 3, 2, 1, 0], False),
    ("desc", 3, None, 2, [2, 1], True),
    ("desc", 1, None, 2, [0], False),
    ("desc", 0, None, 2, [], False),
    ("asc", None, None, 2, [0, 1], True),
    ("asc", 1, None, 2, [2, 3], True),
    ("asc", 2, None, 2, [3, 4], False),
    ("asc", 4, None, 2, [], False),
    # Only `before`: the page just before the cursor, still in the requested order.
    ("desc", None, 1, 2, [3, 2], True),
    ("desc", None, 2, 2, [4, 3], False),
    ("desc", None, 4, 2, [], False),
    ("asc", None, 3, 2, [1, 2], True),
    ("asc", None, 2, 2, [0, 1], False),
    ("asc", None, 0, 2, [], False),
    # Both: the items strictly between the cursors.
    ("asc", 0, 4, 20, [1, 2, 3], False),
    ("asc", 0, 4, 2, [1, 2], True),
    ("desc", 4, 0, 20, [3, 2, 1], False),
    ("desc", 4, 0, 2, [3, 2], True),
]


@pytest.mark.parametrize("case", PAGES, ids=str)
def test_pages(url: str, project: str, case: tuple[Any, ...]) -> None:
    order, after, before, limit, expected, has_more = case

    async def scenario(db: Database) -> None:
        async with db.write() as conn:
            made = [(await new_assistant(conn, project, name=str(i))).id for i in range(5)]
            query = PageQuery(
                limit=limit,
                order=order,
                after=None if after is None else made[after],
                before=None if before is None else made[before],
            )
            page = await assistants.list_page(conn, project, query)
        assert [a.id for a in page.rows] == [made[i] for i in expected]
        assert page.has_more is has_more
        assert all(isinstance(a, Assistant) for a in page.rows)

    run(url, scenario)


def test_a_cursor_outlives_the_object_it_names(url: str, project: str) -> None:
    # Cursors are decoded from the id, so paging on from a deleted object still works.
    async def scenario(db: Database) -> None:
        async with db.write() as conn:
            made = [(await new_assistant(conn, project)).id for _ in range(4)]
            await assistants.delete(conn, project, made[1])
            page = await assistants.list_page(conn, project, PageQuery(order="asc", after=made[1]))
        assert [a.id for a in page.rows] == made[2:]

    run(url, scenario)


def test_ids_sharing_a_sort_key_page_by_id(url: str, project: str) -> None:
    # Position is (sort_key, id): neither twin may be skipped or repeated at a page boundary.
    repo = RecordRepository(tables.assistants, "assistant", Assistant)

    async def scenario(db: Database) -> None:
        async with db.write() as conn:
            template = await new_assistant(conn, project)
            await assistants.delete(conn, project, template.id)
            # Two ids carrying the template's sort key, told apart by their random part.
            prefix = template.id[: len("asst_") + ids.KEY_CHARS]
            twins = [prefix + "A" * ids.RANDOM_CHARS, prefix + "B" * ids.RANDOM_CHARS]
            for twin in twins:
                await repo.add(conn, template.but(id=twin, sort_key=template.sort_key))
            seen: dict[str, list[str]] = {}
            for order in ("asc", "desc"):
                first = await repo.page(
                    conn, [tables.assistants.c.project == project], PageQuery(limit=1, order=order)
                )
                rest = await repo.page(
                    conn,
                    [tables.assistants.c.project == project],
                    PageQuery(limit=1, order=order, after=first.rows[0].id),
                )
                assert (first.has_more, rest.has_more) == (True, False)
                seen[order] = [first.rows[0].id, rest.rows[0].id]
        assert seen == {"asc": twins, "desc": twins[::-1]}

    run(url, scenario)


BAD_CURSORS = [
    "asst_short",
    "thread_" + "0" * 24,  # another kind's prefix
    "asst_" + "0" * 23 + "!",  # a character outside base62
    "asst_" + "0" * 25,  # one character too many
]


@pytest.mark.parametrize("param", ["after", "before"])
@pytest.mark.parametrize("cursor", BAD_CURSORS)
def test_an_invalid_cursor_is_a_400_naming_the_parameter(
    url: str, project: str, param: str, cursor: str
) -> None:
    async def scenario(db: Database) -> None:
        async with db.read() as conn:
            query = PageQuery(after=cursor) if param == "after" else PageQuery(before=cursor)
            await assistants.list_page(conn, project, query)

    with pytest.raises(InvalidRequestError) as caught:
        run(url, scenario)
    assert (caught.value.param, caught.value.code) == (param, "invalid_value")
    assert caught.value.message == (f"Invalid '{param}': '{cursor}' is not a valid assistant id.")


# --- threads


def test_a_thread_round_trips_patches_and_deletes(url: str, project: str) -> None:
    async def scenario(db: Database) -> None:
        async with db.write() as conn:
            made = await threads.create(
                conn, project, tool_resources={"file_search": {}}, metadata={"a": "1"}
            )
            assert made.id.startswith("thread_")
            assert made.sort_key == ids.sort_key_of(made.id, "thread")
            assert await threads.get_for_project(conn, project, made.id) == made
            assert await threads.get_for_project(conn, project + "x", made.id) is None
            patched = await threads.patch(conn, made, metadata={"b": "2"})
            assert patched == made.but(metadata={"b": "2"})
        async with db.write() as conn:
            assert await threads.get_for_project(conn, project, made.id) == patched
            assert await threads.delete(conn, project + "x", made.id) is False
            assert await threads.delete(conn, project, made.id) is True
            assert await threads.delete(conn, project, made.id) is False

    run(url, scenario)


def test_a_locked_thread_keeps_other_writers_out(url: str, project: str) -> None:
    # On PostgreSQL the row lock does it, on SQLite the write transaction itself: either
    # way a second writer of the thread cannot get in while the lock is held.
    async def scenario(db: Database) -> None:
        async with db.write() as conn:
            made = await threads.create(conn, project, tool_resources=None, metadata={})
        async with db.write() as holder:
            assert await threads.lock(holder, project + "x", made.id) is False
            assert await threads.lock(holder, project, ids.new_id("thread")) is False
            assert await threads.lock(holder, project, made.id) is True
            async with impatient_writer(db) as other:
                with pytest.raises(sa.exc.DBAPIError):
                    await threads.patch(other, made, metadata={"late": "1"})
        async with db.write() as conn:
            assert await threads.patch(conn, made, metadata={"after": "1"})
            assert await threads.get_for_project(conn, project, made.id) == made.but(
                metadata={"after": "1"}
            )

    run(url, scenario)


# --- messages (as clients add them)


def test_a_client_message_is_complete_on_arrival(url: str, project: str) -> None:
    content = [{"type": "text", "text": {"value": "hi", "annotations": []}}]
    attachments = [{"file_id": "file-1", "tools": [{"type": "file_search"}]}]

    async def scenario(db: Database) -> None:
        async with db.write() as conn:
            thread = await new_thread(conn, project)
            made = await _user_message(
                conn, project, thread.id, "hi", attachments=attachments, metadata={"k": "v"}
            )
        assert made.id.startswith("msg_")
        assert (made.status, made.completed_at) == ("completed", made.created_at)
        assert (made.incomplete_at, made.incomplete_details) == (None, None)
        assert (made.run_id, made.assistant_id, made.thread_id) == (None, None, thread.id)
        async with db.read() as conn:
            stored = await messages.get_in_thread(conn, project, thread.id, made.id)
        assert stored == made
        assert (stored.content, stored.attachments) == (content, attachments)

    run(url, scenario)


def test_a_message_is_found_only_in_its_thread_and_project(url: str, project: str) -> None:
    async def scenario(db: Database) -> None:
        async with db.write() as conn:
            thread = await new_thread(conn, project)
            elsewhere = await new_thread(conn, project)
            made = await _user_message(conn, project, thread.id, "x")
            assert await messages.get_in_thread(conn, project, elsewhere.id, made.id) is None
            assert await messages.get_in_thread(conn, project + "x", thread.id, made.id) is None
            patched = await messages.patch(conn, made, metadata={"m": "1"})
            assert patched == made.but(metadata={"m": "1"})
            assert await messages.get_in_thread(conn, project, thread.id, made.id) == patched
            assert await messages.delete(conn, project + "x", made.id) is False
            assert await messages.delete(conn, project, made.id) is True
            assert await messages.delete(conn, project, made.id) is False

    run(url, scenario)


def test_message_pages_are_of_one_thread_and_optionally_one_run(url: str, project: str) -> None:
    async def scenario(db: Database) -> None:
        async with db.write() as conn:
            thread = await new_thread(conn, project)
            other = await new_thread(conn, project)
            first = await _user_message(conn, project, thread.id, "1")
            await _user_message(conn, project, other.id, "elsewhere")
            # A message a run wrote, stored the executor's way.
            run_message_id = ids.new_id("message")
            by_run = first.but(
                id=run_message_id,
                sort_key=ids.sort_key_of(run_message_id, "message"),
                role="assistant",
                run_id="run_1",
                assistant_id="asst_1",
            )
            await messages.start(conn, by_run)
            last = await _user_message(conn, project, thread.id, "2")
            everything = await messages.list_page(conn, project, thread.id, PageQuery())
            of_run = await messages.list_page(conn, project, thread.id, PageQuery(), run_id="run_1")
        assert [m.id for m in everything.rows] == [last.id, by_run.id, first.id]
        assert [m.id for m in of_run.rows] == [by_run.id]

    run(url, scenario)


def test_deleting_a_threads_messages_spares_other_threads(url: str, project: str) -> None:
    async def scenario(db: Database) -> None:
        async with db.write() as conn:
            thread = await new_thread(conn, project)
            other = await new_thread(conn, project)
            for text in ("a", "b"):
                await _user_message(conn, project, thread.id, text)
            kept = await _user_message(conn, project, other.id, "c")
            # Another project's call names the thread but may not reach into it.
            await messages.delete_for_thread(conn, project + "x", thread.id)
            assert len(await messages.in_thread(conn, thread.id)) == 2
            await messages.delete_for_thread(conn, project, thread.id)
            assert await messages.in_thread(conn, thread.id) == []
            assert await messages.in_thread(conn, other.id) == [kept]

    run(url, scenario)


def test_attachments_of_a_thread_come_oldest_first(url: str, project: str) -> None:
    async def scenario(db: Database) -> None:
        async with db.write() as conn:
            thread = await new_thread(conn, project)
            for n in range(3):
                attached = [{"file_id": f"file-{n}", "tools": []}] * n
                await _user_message(conn, project, thread.id, str(n), attachments=attached)
            found = await messages.attachments_in_thread(conn, thread.id)
        assert found == [
            [],
            [{"file_id": "file-1", "tools": []}],
            [{"file_id": "file-2", "tools": []}] * 2,
        ]

    run(url, scenario)


async def _user_message(
    conn: Connection, project: str, thread_id: str, text: str, **given: Any
) -> Message:
    """A user's text message; ``given`` may set its attachments and metadata."""
    content = [{"type": "text", "text": {"value": text, "annotations": []}}]
    values: dict[str, Any] = {"attachments": [], "metadata": {}, **given}
    made = messages.new(project, thread_id, role="user", content=content, **values)
    return await messages.add(conn, made)


# --- files


def _file(project: str, *, expires_at: int | None = None, purpose: str = "assistants") -> File:
    file_id = ids.new_id("file")
    stored = StoredBlob(size=3, sha256="0" * 64)
    return files.new_file(project, file_id, "a.txt", purpose, stored, expires_at=expires_at)


def test_new_file_describes_the_stored_bytes() -> None:
    file_id = ids.new_id("file")
    stored = StoredBlob(size=42, sha256="ab" * 32)
    before = clock.now()
    made = files.new_file("p", file_id, "x" * 2000, "vision", stored, content_type="image/png")
    assert (made.id, made.sort_key) == (file_id, ids.sort_key_of(file_id, "file"))
    assert made.filename == "x" * 1024  # the column's width
    assert (made.bytes, made.sha256, made.content_type) == (42, "ab" * 32, "image/png")
    assert (made.status, made.status_details, made.expires_at) == ("processed", None, None)
    assert before <= made.created_at <= clock.now()
    dated = files.new_file("p", file_id, "a", "batch", stored, expires_at=99, created_at=7)
    assert (dated.created_at, dated.expires_at) == (7, 99)


def test_an_expired_file_is_gone_for_readers_but_not_for_get_many(url: str, project: str) -> None:
    now = clock.now()
    live = _file(project)
    later = _file(project, expires_at=now + 3600)
    expired = _file(project, expires_at=now - 1)
    other_purpose = _file(project, purpose="vision")

    async def scenario(db: Database) -> None:
        async with db.write() as conn:
            for f in (live, later, expired, other_purpose):
                await files.create(conn, f)
        async with db.read() as conn:
            assert await files.get_live(conn, project, live.id) == live
            assert await files.get_live(conn, project, later.id) == later
            assert await files.get_live(conn, project, expired.id) is None
            assert await files.get_live(conn, project + "x", live.id) is None
            page = await files.list_live_page(conn, project, PageQuery(order="asc"))
            assert [f.id for f in page.rows] == [live.id, later.id, other_purpose.id]
            vision = await files.list_live_page(conn, project, PageQuery(), purpose="vision")
            assert [f.id for f in vision.rows] == [other_purpose.id]
            wanted = [live.id, expired.id, ids.new_id("file")]
            assert await files.get_many(conn, project, wanted) == {
                live.id: live,
                expired.id: expired,
            }
            assert await files.get_many(conn, project + "x", wanted) == {}
        async with db.write() as conn:
            assert await files.delete(conn, project + "x", live.id) is False
            assert await files.delete(conn, project, live.id) is True
            assert await files.delete(conn, project, live.id) is False
            assert await files.get_many(conn, project, [live.id]) == {}

    run(url, scenario)


def test_the_sweeper_removes_expired_files_of_every_project(url: str, project: str) -> None:
    now = clock.now()
    expired = [_file(project, expires_at=now - 5), _file(project + "x", expires_at=now - 1)]
    kept = [_file(project), _file(project, expires_at=now + 3600)]

    async def scenario(db: Database) -> None:
        async with db.write() as conn:
            for f in expired + kept:
                await files.create(conn, f)
            removed = await files.delete_expired(conn)
        assert {f.id for f in expired} <= set(removed)
        assert not {f.id for f in kept} & set(removed)
        async with db.read() as conn:
            found = await files.get_many(conn, project, [f.id for f in expired + kept])
        assert set(found) == {f.id for f in kept}

    run(url, scenario)


def test_live_among_keeps_the_asked_order(url: str, project: str) -> None:
    a, b = _file(project), _file(project, expires_at=1_000)
    c, foreign = _file(project), _file(project + "x")

    async def scenario(db: Database) -> None:
        async with db.write() as conn:
            for f in (a, b, c, foreign):
                await files.create(conn, f)
        asked = [c.id, foreign.id, b.id, ids.new_id("file"), a.id]
        async with db.read() as conn:
            # b expires at 1000: alive at 999, gone at exactly 1000.
            assert await files.live_among(conn, project, asked, 999) == [c, b, a]
            assert await files.live_among(conn, project, asked, 1_000) == [c, a]
            assert await files.live_among(conn, project, [], 0) == []

    run(url, scenario)


def test_stored_bytes_read_back(url: str, project: str, tmp_path: Path) -> None:
    blobs = LocalBlobStore(tmp_path / "blobs")
    data = b"col\n1\n" * 1000

    async def scenario(db: Database) -> None:
        file_id = await files.store_bytes(
            db, blobs, project, "out.csv", "assistants_output", data, content_type="text/csv"
        )
        async with db.read() as conn:
            made = await files.get_live(conn, project, file_id)
        assert made is not None
        assert (made.filename, made.content_type) == ("out.csv", "text/csv")
        assert (made.purpose, made.project) == ("assistants_output", project)
        assert (made.bytes, made.sha256) == (len(data), hashlib.sha256(data).hexdigest())
        assert await files.read_bytes(blobs, file_id) == data

    run(url, scenario)


def test_a_blob_whose_row_fails_is_removed(url: str, project: str, tmp_path: Path) -> None:
    root = tmp_path / "blobs"
    blobs = LocalBlobStore(root)

    async def scenario(db: Database) -> None:
        # A NULL purpose breaks the row on every database, after the blob was written.
        await files.store_bytes(db, blobs, project, "a.txt", cast(str, None), b"data")

    with pytest.raises(sa.exc.IntegrityError):
        run(url, scenario)
    assert [p for p in root.rglob("*") if p.is_file()] == []


# --- API keys


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated database of the test's own, for queries about every row of a table."""
    with migrated_url(request.param, tmp_path) as made:
        yield made


def test_api_keys_map_hashes_to_projects(empty_url: str) -> None:
    digest = hashlib.sha256(b"sk-one").hexdigest()

    async def scenario(db: Database) -> None:
        async with db.read() as conn:
            assert await api_keys.any_stored(conn) is False
        before = clock.now()
        async with db.write() as conn:
            key = await api_keys.create(conn, "proj_a", key_hash=digest, prefix="sk-one")
        assert key.id.startswith("key_")
        assert (key.project, key.key_hash, key.prefix) == ("proj_a", digest, "sk-one")
        assert before <= key.created_at <= clock.now()
        async with db.read() as conn:
            assert await api_keys.any_stored(conn) is True
            assert await api_keys.project_of(conn, digest) == "proj_a"
            assert await api_keys.project_of(conn, hashlib.sha256(b"other").hexdigest()) is None

    run(empty_url, scenario)


def test_a_key_hash_is_stored_once(url: str, project: str) -> None:
    digest = hashlib.sha256(secrets.token_bytes(16)).hexdigest()

    async def scenario(db: Database) -> None:
        async with db.write() as conn:
            await api_keys.create(conn, project, key_hash=digest, prefix="sk-a")
        async with db.write() as conn:
            await api_keys.create(conn, project + "x", key_hash=digest, prefix="sk-b")

    with pytest.raises(sa.exc.IntegrityError):
        run(url, scenario)

    async def owner(db: Database) -> str | None:
        async with db.read() as conn:
            return await api_keys.project_of(conn, digest)

    assert run(url, owner) == project
