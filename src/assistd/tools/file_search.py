"""The ``file_search`` tool: hybrid search over the assistant's and the thread's stores
(only the assistant's for a chat completion).

The model calls it with one or more queries; the results go back to it with citation
markers (``【<call>:<result>†<file name>】``) that it copies into its answer, and which
``citations`` turns into ``file_citation`` annotations. The run step records the call as
OpenAI does: ``ranking_options`` and ``results`` (file, name, score, content).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from typing import Any, ClassVar

from assistd import clock
from assistd.embeddings.base import EmbedderError, EmbedderRegistry
from assistd.retrieval.index import ChunkIndex, SearchHit, SearchQuery
from assistd.store import assistants, threads
from assistd.store import file_search as search_store
from assistd.store.database import Database
from assistd.store.records import JsonObject
from assistd.store.tool_calls import ModelView, ToolCall
from assistd.tokenizer import count_tokens
from assistd.tools.base import Tool, ToolScope
from assistd.tools.citations import MessageSources

NAME = "file_search"
DESCRIPTION = (
    "Search the files the user has provided (their uploaded documents) for passages relevant "
    "to the queries. Use it whenever the answer may be in those files. Cite what you use by "
    "copying the marker before each passage, such as 【0:1†source】, right after the sentence."
)
PARAMETERS = {
    "type": "object",
    "properties": {
        "queries": {
            "type": "array",
            "items": {"type": "string"},
            "description": "One to five short search queries.",
        }
    },
    "required": ["queries"],
}
DEFAULT_RANKER = "default_2024_08_21"
# How long a run waits for the thread's files still being ingested (OpenAI: 60 s).
INGESTION_WAIT_SECONDS = 60.0
# OpenAI's budget for file_search results given to gpt-4* models.
OUTPUT_TOKENS = 16_000


class FileSearchTool(Tool):
    type: ClassVar[str] = "file_search"

    def __init__(
        self,
        db: Database,
        index: ChunkIndex,
        embedders: EmbedderRegistry,
        embedding_model: str,
        *,
        wait_seconds: float = INGESTION_WAIT_SECONDS,
    ) -> None:
        self.db = db
        self.index = index
        self.embedders = embedders
        self.embedding_model = embedding_model
        self.wait_seconds = wait_seconds

    def definition(self, entry: JsonObject) -> JsonObject:
        return {"name": NAME, "description": DESCRIPTION, "parameters": PARAMETERS}

    def announce(self, call_id: str) -> JsonObject:
        return {"id": call_id, "type": "file_search", "file_search": {}}

    def annotate(self, calls: Sequence[ToolCall], into: MessageSources) -> None:
        # Markers name a result by the search's ordinal in the run and its rank.
        for ordinal, call in enumerate(calls):
            for i, result in enumerate(call.section.get("results") or []):
                into.sources[(ordinal, i)] = result["file_id"]

    async def execute(
        self,
        scope: ToolScope,
        entry: JsonObject,
        call_id: str,
        arguments: str,
        ordinal: int,
        budget: int | None = None,
    ) -> ToolCall:
        options = entry.get("file_search") or {}
        ranking = options.get("ranking_options") or {}
        ranking_options = {
            "ranker": ranking.get("ranker")
            if ranking.get("ranker") not in (None, "auto")
            else DEFAULT_RANKER,
            "score_threshold": float(ranking.get("score_threshold") or 0.0),
        }
        limit = int(options.get("max_num_results") or _default_results(scope.model))
        queries = _queries(arguments)
        hits: list[SearchHit] = []
        names: dict[str, str] = {}
        note = ""
        if not queries:
            note = "No query was given: call file_search with a list of queries."
        else:
            store_ids = await self._stores(scope)
            if not store_ids:
                note = "No files are attached to this assistant or thread."
            else:
                try:
                    hits = await self._search(store_ids, queries, limit, ranking_options)
                except EmbedderError as exc:
                    note = f"The search failed: {exc.message}"
                names = await self._file_names({h.file_id for h in hits})
        results = [
            {
                "file_id": h.file_id,
                "file_name": names.get(h.file_id, h.file_id),
                "score": round(min(max(h.score, 0.0), 1.0), 6),
                "content": [{"type": "text", "text": h.text}],
            }
            for h in hits
        ]
        output = note or _render(results, ordinal, scope.model, budget or OUTPUT_TOKENS)
        return ToolCall(
            call_id,
            "file_search",
            {"ranking_options": ranking_options, "results": results},
            ModelView(NAME, arguments, output),
        )

    async def _stores(self, scope: ToolScope) -> list[str]:
        """The assistant's store, then the thread's, after the thread's ingestion settles."""
        async with self.db.read() as conn:
            assistant = await assistants.tool_resources_of(conn, scope.assistant_id)
            thread = (
                await threads.tool_resources_of(conn, scope.thread_id)
                if scope.thread_id is not None
                else None
            )
        ids = [*_store_ids(assistant), *_store_ids(thread)]
        await self._wait_for_ingestion(_store_ids(thread))
        return list(dict.fromkeys(ids))

    async def _wait_for_ingestion(self, store_ids: list[str]) -> None:
        if not store_ids:
            return
        deadline = time.monotonic() + self.wait_seconds
        while time.monotonic() < deadline:
            async with self.db.read() as conn:
                pending = await search_store.count_ingesting(conn, store_ids)
            if not pending:
                return
            await asyncio.sleep(0.25)

    async def _search(
        self, store_ids: list[str], queries: list[str], limit: int, ranking: dict[str, Any]
    ) -> list[SearchHit]:
        route = self.embedders.resolve(self.embedding_model)
        embedded = await route.embedder.embed(queries, model=route.upstream_model)
        query = SearchQuery(
            vector_store_ids=store_ids,
            texts=queries,
            vectors=embedded.vectors,
            limit=limit,
            score_threshold=ranking["score_threshold"],
        )
        async with self.db.read() as conn:
            hits = await self.index.search(conn, query)
        async with self.db.write() as conn:
            await search_store.mark_used(conn, store_ids, clock.now())
        return hits

    async def _file_names(self, file_ids: set[str]) -> dict[str, str]:
        if not file_ids:
            return {}
        async with self.db.read() as conn:
            return await search_store.file_names(conn, file_ids)


def _default_results(model: str) -> int:
    return 5 if model.startswith("gpt-3.5") else 20


def _store_ids(tool_resources: Any) -> list[str]:
    if not isinstance(tool_resources, dict):
        return []
    section = tool_resources.get("file_search") or {}
    return [str(v) for v in section.get("vector_store_ids") or []]


def _queries(arguments: str) -> list[str]:
    """The queries from the model's arguments, tolerating a bare ``query`` string."""
    try:
        parsed = json.loads(arguments or "{}")
    except ValueError:
        return [arguments.strip()] if arguments.strip() else []
    if not isinstance(parsed, dict):
        return []
    raw = parsed.get("queries", parsed.get("query", []))
    values = [raw] if isinstance(raw, str) else raw if isinstance(raw, list) else []
    return [str(q).strip() for q in values if str(q).strip()][:5]


def _render(results: list[dict[str, Any]], ordinal: int, model: str, budget: int) -> str:
    """Results as the model reads them, best first, until the token budget is spent."""
    if not results:
        return "No results found in the files."
    parts: list[str] = []
    spent = 0
    for i, result in enumerate(results):
        text = result["content"][0]["text"]
        block = f"【{ordinal}:{i}†{result['file_name']}】\n{text}"
        cost = count_tokens(block, model)
        if parts and spent + cost > budget:
            break
        parts.append(block)
        spent += cost
    return "\n\n".join(parts)
