"""Vector store search: check the request, embed the queries, search the chunk index.

Attribute filters are evaluated here over the store's completed files (their attributes
are per store, so the same file can pass in one store and not another) and reach the index
as the allowed file ids. Queries are embedded by the model ingestion used: vectors of two
models are not comparable.

``rewrite_query`` is accepted and not acted on: rewriting needs a language model call per
search, which the embedded model is too small to do well; ``search_query`` reports the
queries as they were searched.
"""

from __future__ import annotations

import logging

from assistd.embeddings.base import EmbedderError, EmbedderRegistry
from assistd.errors import APIError, InvalidRequestError, RateLimitError
from assistd.protocol.vector_store_search import (
    MAX_QUERIES,
    SearchResultContent,
    SearchResultItem,
    SearchResultsPage,
    VectorStoreSearchRequest,
)
from assistd.retrieval.filters import Filter, matches, parse_filter
from assistd.retrieval.index import ChunkIndex, SearchHit, SearchQuery, Vectors
from assistd.retrieval.ingestion import EMBEDDING_MODEL
from assistd.services.vector_stores import require_store
from assistd.store import vector_store_files
from assistd.store.database import Connection, Database

logger = logging.getLogger(__name__)

DEFAULT_RESULTS = 10


class VectorStoreSearchService:
    def __init__(
        self,
        db: Database,
        embedders: EmbedderRegistry,
        chunk_index: ChunkIndex | None,
        *,
        embedding_model: str = EMBEDDING_MODEL,
    ) -> None:
        self.db = db
        self.embedders = embedders
        self.chunk_index = chunk_index
        self.embedding_model = embedding_model

    async def search(
        self, project: str, vector_store_id: str, request: VectorStoreSearchRequest
    ) -> SearchResultsPage:
        """The best chunks of the store for the query, best first.

        Raises:
            NotFoundError: No such store in this project.
            InvalidRequestError: An empty query, too many queries, or a malformed filter.
            APIError: The embedder failed (RateLimitError when it was rate limited).
        """
        queries = _queries(request.query)
        node = None if request.filters is None else parse_filter(request.filters)
        options = request.ranking_options
        ranker = options.ranker if options is not None and options.ranker else "auto"
        threshold = options.score_threshold if options is not None else None
        async with self.db.read() as conn:
            await require_store(conn, project, vector_store_id)
            allowed = None if node is None else await _allowed(conn, vector_store_id, node)
        hits: list[SearchHit] = []
        if allowed is None or allowed:
            vectors = await self._embed(queries)
            query = SearchQuery(
                vector_store_ids=[vector_store_id],
                texts=queries,
                vectors=vectors,
                limit=request.max_num_results or DEFAULT_RESULTS,
                file_ids=None if allowed is None else {vector_store_id: allowed},
                ranker=ranker,
                score_threshold=threshold or 0.0,
            )
            async with self.db.read() as conn:
                hits = await self._index().search(conn, query)
                names, attributes = await _describe(conn, project, vector_store_id, hits)
        else:
            names, attributes = {}, {}
        return SearchResultsPage(
            search_query=queries,
            data=[
                SearchResultItem(
                    file_id=hit.file_id,
                    filename=names.get(hit.file_id, ""),
                    score=round(hit.score, 6),
                    attributes=attributes.get(hit.file_id),
                    content=[SearchResultContent(text=hit.text)],
                )
                for hit in hits
            ],
        )

    def _index(self) -> ChunkIndex:
        if self.chunk_index is None:
            raise APIError("Vector store search is not available on this server.")
        return self.chunk_index

    async def _embed(self, queries: list[str]) -> Vectors:
        route = self.embedders.resolve(self.embedding_model)
        try:
            result = await route.embedder.embed(queries, model=route.upstream_model)
        except EmbedderError as exc:
            if exc.code == "rate_limit_exceeded":
                raise RateLimitError(exc.message, code="rate_limit_exceeded") from None
            logger.warning("embedding a search query failed: %s", exc.message)
            raise APIError(exc.message) from None
        return result.vectors


def _queries(value: str | list[str]) -> list[str]:
    queries = [value] if isinstance(value, str) else list(value)
    if not queries:
        raise InvalidRequestError(
            "Invalid 'query': expected a non-empty array of strings, but got an empty array.",
            param="query",
            code="invalid_value",
        )
    if len(queries) > MAX_QUERIES:
        raise InvalidRequestError(
            f"Invalid 'query': array too long. Expected an array with maximum length "
            f"{MAX_QUERIES}, but got an array with length {len(queries)} instead.",
            param="query",
            code="array_above_max_length",
        )
    for at, text in enumerate(queries):
        if not text.strip():
            param = "query" if isinstance(value, str) else f"query[{at}]"
            raise InvalidRequestError(
                f"Invalid '{param}': the query cannot be empty.",
                param=param,
                code="invalid_value",
            )
    return queries


async def _allowed(conn: Connection, vector_store_id: str, node: Filter) -> set[str]:
    completed = await vector_store_files.completed_attributes(conn, vector_store_id)
    return {file_id for file_id, attributes in completed if matches(node, attributes)}


async def _describe(
    conn: Connection, project: str, vector_store_id: str, hits: list[SearchHit]
) -> tuple[dict[str, str], dict[str, dict[str, str | bool | int | float] | None]]:
    """Filenames and attributes of the files the hits came from."""
    ids = sorted({hit.file_id for hit in hits})
    if not ids:
        return {}, {}
    names = await vector_store_files.filenames(conn, project, ids)
    attributes = await vector_store_files.attributes_of(conn, vector_store_id, ids)
    return names, attributes
