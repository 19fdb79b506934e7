"""file_search's execute against a migrated SQLite store, its real chunk index and the real
local embedder (loaded once for the module); the store's rows are made by store functions,
and files are ingested as the ingestion worker finishes them."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from assistd.embeddings.base import EmbedderRegistry
from assistd.embeddings.local import MODEL_NAME, LocalEmbedder
from assistd.embeddings.upstream import UpstreamEmbedder
from assistd.retrieval.factory import build_chunk_index
from assistd.retrieval.index import ChunkIndex, ChunkInput
from assistd.store import (
    files,
    ingestion_queue,
    runs,
    vector_store_files,
    vector_stores,
)
from assistd.store.blobs import LocalBlobStore
from assistd.store.database import Database
from assistd.store.records import JsonObject, Run
from assistd.store.tool_calls import ModelView
from assistd.tools.base import ToolScope
from assistd.tools.citations import MessageSources
from assistd.tools.file_search import FileSearchTool
from tests.store_support import attached_file, new_assistant, new_thread
from tests.unit.test_tools import FS, PROJECT, run_async, run_record

CATS = [
    "Cats purr when they are content and sleep most of the day.",
    "A kitten needs several small meals a day.",
]
TAX = [
    "Quarterly tax filings are due on the fifteenth of the month.",
    "Error code XK-4471 means the filing was rejected by the revenue office.",
]


@pytest.fixture(scope="module")
def embedder() -> Iterator[LocalEmbedder]:
    made = LocalEmbedder()
    yield made
    run_async(made.aclose())


@dataclass
class Search:
    """A migrated store with an assistant and a thread, and the tool searching it."""

    db: Database
    index: ChunkIndex
    blobs: LocalBlobStore
    embedder: LocalEmbedder
    tool: FileSearchTool

    async def ingest(self, store_id: str, filename: str, chunks: list[str]) -> str:
        """Upload a file, attach it, and finish its ingestion as the worker does."""
        data = "\n\n".join(chunks).encode()
        file_id = await files.store_bytes(
            self.db, self.blobs, PROJECT, filename, "assistants", data
        )
        attached = attached_file(PROJECT, store_id, file_id)
        async with self.db.write() as conn:
            await vector_store_files.add_many(conn, [attached])
        vectors = (await self.embedder.embed(chunks)).vectors
        now = time.time()
        async with self.db.write() as conn:
            [(key, generation)] = await ingestion_queue.claim_next(
                conn, "worker-1", limit=1, now=now, lease_until=now + 60
            )
            assert key == (store_id, file_id)
            done = await ingestion_queue.finish(
                conn,
                key,
                generation,
                "worker-1",
                parsed_text=data.decode(),
                usage_bytes=len(data),
            )
            assert done
            await self.index.add(
                conn,
                vector_store_id=store_id,
                file_id=file_id,
                chunks=[ChunkInput(i, c, len(c.split())) for i, c in enumerate(chunks)],
                vectors=vectors,
            )
        return file_id

    async def new_store(self) -> str:
        store = vector_stores.new_store(
            PROJECT, name=None, description=None, metadata=None, expires_after=None, now=0
        )
        async with self.db.write() as conn:
            await vector_stores.create(conn, store)
        return store.id

    async def new_run(
        self,
        *,
        assistant_stores: list[str],
        thread_stores: list[str],
        model: str = "gpt-4o",
    ) -> Run:
        def resources(store_ids: list[str]) -> JsonObject | None:
            return {"file_search": {"vector_store_ids": store_ids}} if store_ids else None

        async with self.db.write() as conn:
            assistant = await new_assistant(
                conn, PROJECT, model=model, tools=[FS], tool_resources=resources(assistant_stores)
            )
            thread = await new_thread(conn, PROJECT, resources(thread_stores))
            run = run_record(
                [FS],
                thread_id=thread.id,
                assistant_id=assistant.id,
                model=model,
                tool_resources=assistant.tool_resources or {},
            )
            assert await runs.create(conn, run)
        return run


Scenario = Callable[[Search], Coroutine[Any, Any, None]]


def with_search(tmp_path: Path, embedder: LocalEmbedder, scenario: Scenario) -> None:
    async def main() -> None:
        db = Database(f"sqlite+aiosqlite:///{tmp_path / 'search.db'}")
        try:
            await db.migrate()
            index = build_chunk_index(db.dialect)
            registry = EmbedderRegistry()
            registry.add(MODEL_NAME, embedder)
            # No waiting for ingestion: every file here is ingested before the search.
            tool = FileSearchTool(db, index, registry, MODEL_NAME, wait_seconds=0)
            await scenario(Search(db, index, LocalBlobStore(tmp_path / "blobs"), embedder, tool))
        finally:
            await db.dispose()

    run_async(main())


async def corpus(search: Search) -> tuple[str, str, str]:
    """One store holding cats.txt and tax.md; returns (store, cats id, tax id)."""
    store = await search.new_store()
    cats = await search.ingest(store, "cats.txt", CATS)
    tax = await search.ingest(store, "tax.md", TAX)
    return store, cats, tax


def test_search_finds_the_relevant_chunk_and_renders_markers(
    tmp_path: Path, embedder: LocalEmbedder
) -> None:
    async def scenario(search: Search) -> None:
        store, cats, tax = await corpus(search)
        run = await search.new_run(assistant_stores=[store], thread_stores=[])
        arguments = json.dumps({"queries": ["Why do cats purr?"]})
        call = await search.tool.execute(ToolScope.of_run(run), FS, "call_fs", arguments, 2)
        assert (call.id, call.type) == ("call_fs", "file_search")
        assert call.section["ranking_options"] == {
            "ranker": "default_2024_08_21",
            "score_threshold": 0.0,
        }
        results = call.section["results"]
        # A small store: every chunk is a dense candidate, so all four come back.
        assert len(results) == 4
        assert results[0] == {
            "file_id": cats,
            "file_name": "cats.txt",
            "score": results[0]["score"],
            "content": [{"type": "text", "text": CATS[0]}],
        }
        assert {r["file_id"] for r in results} == {cats, tax}
        scores = [r["score"] for r in results]
        assert scores == sorted(scores, reverse=True)
        assert all(0.0 <= s <= 1.0 and s == round(s, 6) for s in scores)
        # The model reads each result under the marker that cites it: this call's ordinal,
        # then the result's rank.
        assert call.model is not None
        assert call.model.name == "file_search"
        assert call.model.arguments == arguments
        blocks = call.model.output.split("\n\n")
        assert blocks[0] == f"【2:0†cats.txt】\n{CATS[0]}"
        assert [b.split("\n", 1)[0] for b in blocks] == [
            f"【2:{i}†{r['file_name']}】" for i, r in enumerate(results)
        ]
        # What annotate makes of the call matches the markers the model was shown.
        sources = MessageSources()
        search.tool.annotate([call], sources)
        assert sources.sources == {(0, i): r["file_id"] for i, r in enumerate(results)}

    with_search(tmp_path, embedder, scenario)


def test_search_options_limit_threshold_and_ranker(tmp_path: Path, embedder: LocalEmbedder) -> None:
    async def scenario(search: Search) -> None:
        store, cats, _ = await corpus(search)
        run = await search.new_run(assistant_stores=[store], thread_stores=[])
        arguments = json.dumps({"queries": ["kitten meals"]})
        entry = {
            "type": "file_search",
            "file_search": {
                "max_num_results": 1,
                "ranking_options": {"ranker": "auto", "score_threshold": 0.25},
            },
        }
        call = await search.tool.execute(ToolScope.of_run(run), entry, "c", arguments, 0)
        assert call.section["ranking_options"] == {
            "ranker": "default_2024_08_21",  # "auto" is recorded as the ranker it means
            "score_threshold": 0.25,
        }
        [result] = call.section["results"]
        assert (result["file_id"], result["content"][0]["text"]) == (cats, CATS[1])
        assert result["score"] >= 0.25
        named = {"ranking_options": {"ranker": "default_2024_08_21", "score_threshold": 0.99}}
        strict = await search.tool.execute(
            ToolScope.of_run(run), {"type": "file_search", "file_search": named}, "c", arguments, 0
        )
        assert strict.section["ranking_options"]["score_threshold"] == 0.99
        assert strict.section["results"] == []
        assert strict.model is not None
        assert strict.model.output == "No results found in the files."

    with_search(tmp_path, embedder, scenario)


def test_default_result_count_depends_on_the_model(tmp_path: Path, embedder: LocalEmbedder) -> None:
    async def scenario(search: Search) -> None:
        store = await search.new_store()
        await search.ingest(store, "many.txt", [f"Fact {i} about the harbour." for i in range(7)])
        arguments = json.dumps({"queries": ["harbour facts"]})
        gpt4 = await search.new_run(assistant_stores=[store], thread_stores=[])
        gpt35 = await search.new_run(
            assistant_stores=[store], thread_stores=[], model="gpt-3.5-turbo"
        )
        assert (
            len(
                (await search.tool.execute(ToolScope.of_run(gpt4), FS, "c", arguments, 0)).section[
                    "results"
                ]
            )
            == 7
        )
        assert (
            len(
                (await search.tool.execute(ToolScope.of_run(gpt35), FS, "c", arguments, 0)).section[
                    "results"
                ]
            )
            == 5
        )

    with_search(tmp_path, embedder, scenario)


def test_search_covers_the_assistants_and_the_threads_stores(
    tmp_path: Path, embedder: LocalEmbedder
) -> None:
    async def scenario(search: Search) -> None:
        assistant_store = await search.new_store()
        thread_store = await search.new_store()
        cats = await search.ingest(assistant_store, "cats.txt", CATS)
        tax = await search.ingest(thread_store, "tax.md", TAX)
        run = await search.new_run(
            # The assistant's store listed again by the thread is searched once.
            assistant_stores=[assistant_store],
            thread_stores=[thread_store, assistant_store],
        )
        call = await search.tool.execute(
            ToolScope.of_run(run),
            FS,
            "c",
            json.dumps({"queries": ["XK-4471 rejected", "purring cats"]}),
            0,
        )
        found = [(r["file_id"], r["content"][0]["text"]) for r in call.section["results"]]
        assert sorted(found) == sorted(
            [(cats, CATS[0]), (cats, CATS[1]), (tax, TAX[0]), (tax, TAX[1])]
        )
        assert {f for f, _ in found[:2]} == {cats, tax}  # each query's best is near the top
        # Searching counts as using the stores: their expiry clock restarts.
        async with search.db.read() as conn:
            for store_id in (assistant_store, thread_store):
                store = await vector_stores.get_for_project(conn, PROJECT, store_id)
                assert store is not None
                assert store.last_active_at is not None
                assert store.last_active_at > 0  # it was made at 0

    with_search(tmp_path, embedder, scenario)


def test_a_deleted_upload_is_named_by_its_id(tmp_path: Path, embedder: LocalEmbedder) -> None:
    async def scenario(search: Search) -> None:
        store, cats, _ = await corpus(search)
        async with search.db.write() as conn:
            assert await files.delete(conn, PROJECT, cats)
        run = await search.new_run(assistant_stores=[store], thread_stores=[])
        call = await search.tool.execute(
            ToolScope.of_run(run), FS, "c", json.dumps({"query": "cats purr"}), 0
        )
        top = call.section["results"][0]
        assert (top["file_id"], top["file_name"]) == (cats, cats)
        assert call.model is not None
        assert call.model.output.startswith(f"【0:0†{cats}】\n{CATS[0]}")

    with_search(tmp_path, embedder, scenario)


def test_the_token_budget_cuts_rendered_results_not_the_step(
    tmp_path: Path, embedder: LocalEmbedder
) -> None:
    async def scenario(search: Search) -> None:
        store, _, _ = await corpus(search)
        run = await search.new_run(assistant_stores=[store], thread_stores=[])
        arguments = json.dumps({"queries": ["cats"]})
        call = await search.tool.execute(ToolScope.of_run(run), FS, "c", arguments, 0, budget=1)
        results = call.section["results"]
        assert len(results) == 4
        assert call.model is not None
        # The first result always goes in, even over the budget; nothing after it does.
        first = results[0]
        assert call.model.output == f"【0:0†{first['file_name']}】\n{first['content'][0]['text']}"

    with_search(tmp_path, embedder, scenario)


@pytest.mark.parametrize(
    "arguments",
    ["", "{}", '{"queries": []}', '{"queries": ["  ", ""]}', "[1]", '{"queries": 3}', "   "],
)
def test_no_query_is_told_how_to_call(
    tmp_path: Path, embedder: LocalEmbedder, arguments: str
) -> None:
    async def scenario(search: Search) -> None:
        store, _, _ = await corpus(search)
        run = await search.new_run(assistant_stores=[store], thread_stores=[])
        call = await search.tool.execute(ToolScope.of_run(run), FS, "c", arguments, 0)
        assert call.section["results"] == []
        assert call.model == ModelView(
            "file_search", arguments, "No query was given: call file_search with a list of queries."
        )

    with_search(tmp_path, embedder, scenario)


@pytest.mark.parametrize(
    ("arguments", "top"),
    [
        ('{"query": "kitten meals"}', CATS[1]),  # one query under the singular name
        ("kitten meals", CATS[1]),  # not JSON: the text is the query
        ('{"queries": ["", "kitten meals"]}', CATS[1]),  # blanks are dropped
    ],
)
def test_queries_are_read_leniently(
    tmp_path: Path, embedder: LocalEmbedder, arguments: str, top: str
) -> None:
    async def scenario(search: Search) -> None:
        store, _, _ = await corpus(search)
        run = await search.new_run(assistant_stores=[store], thread_stores=[])
        call = await search.tool.execute(ToolScope.of_run(run), FS, "c", arguments, 0)
        assert call.section["results"][0]["content"][0]["text"] == top

    with_search(tmp_path, embedder, scenario)


def test_no_stores_is_said_to_the_model(tmp_path: Path, embedder: LocalEmbedder) -> None:
    async def scenario(search: Search) -> None:
        await corpus(search)  # files exist, but in no store of this assistant or thread
        run = await search.new_run(assistant_stores=[], thread_stores=[])
        call = await search.tool.execute(ToolScope.of_run(run), FS, "c", '{"queries": ["cats"]}', 0)
        assert call.section["results"] == []
        assert call.model is not None
        assert call.model.output == "No files are attached to this assistant or thread."

    with_search(tmp_path, embedder, scenario)


def test_an_embedder_failure_is_said_to_the_model(tmp_path: Path, embedder: LocalEmbedder) -> None:
    # A real upstream embedder on a loopback port nothing listens on.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    async def scenario(search: Search) -> None:
        store, _, _ = await corpus(search)
        run = await search.new_run(assistant_stores=[store], thread_stores=[])
        upstream = UpstreamEmbedder(f"http://127.0.0.1:{port}/v1", max_retries=0, name="emb")
        registry = EmbedderRegistry()
        registry.add("remote", upstream)
        tool = FileSearchTool(search.db, search.index, registry, "remote", wait_seconds=0)
        try:
            call = await tool.execute(ToolScope.of_run(run), FS, "c", '{"queries": ["cats"]}', 0)
        finally:
            await upstream.aclose()
        assert call.section["results"] == []
        assert call.model is not None
        assert call.model.output.startswith("The search failed: Could not reach upstream 'emb' (")

    with_search(tmp_path, embedder, scenario)
