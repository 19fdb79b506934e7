"""The ``ChunkIndex`` interface: where ingested chunks live and how they are searched.

Ingestion (vector store files) adds a file's chunks with their vectors and removes them
again; search asks for the best chunks of some vector stores, restricted to the files an
attribute filter allowed. Implementations keep keyword and vector data next to the rows
(SQLite FTS5 and packed float32 vectors; PostgreSQL full text and pgvector), so a
transaction that deletes a file also deletes what makes it findable.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from assistd.store.database import Connection

Vectors = npt.NDArray[np.float32]


@dataclass(frozen=True)
class ChunkInput:
    """One chunk of a parsed file, in file order (``seq`` from 0)."""

    seq: int
    text: str
    token_count: int


@dataclass(frozen=True)
class SearchHit:
    """A chunk found by a search. ``score`` is in [0, 1], higher is better, comparable
    across the stores and files of one search (it is what ``score_threshold`` cuts)."""

    vector_store_id: str
    file_id: str
    seq: int
    text: str
    score: float


@dataclass(frozen=True)
class SearchQuery:
    """What to look for and where.

    ``texts`` are the query strings (one or more); ``vectors`` their embeddings, one row per
    text, from the same embedder that embedded the chunks. ``file_ids`` restricts the search
    per vector store (``None`` for every file of that store) after attribute filters.
    """

    vector_store_ids: Sequence[str]
    texts: Sequence[str]
    vectors: Vectors
    limit: int
    file_ids: dict[str, set[str]] | None = None
    ranker: str = "auto"
    score_threshold: float = 0.0


class ChunkIndex(Protocol):
    async def add(
        self,
        conn: Connection,
        *,
        vector_store_id: str,
        file_id: str,
        chunks: Sequence[ChunkInput],
        vectors: Vectors,
    ) -> None:
        """Store a file's chunks and vectors (one row of ``vectors`` per chunk), inside the
        caller's write transaction."""
        ...

    async def delete(
        self, conn: Connection, *, vector_store_id: str, file_id: str | None = None
    ) -> int:
        """Remove one file's chunks from a store, or every chunk of the store; return how
        many were removed."""
        ...

    async def search(self, conn: Connection, query: SearchQuery) -> list[SearchHit]:
        """The best ``query.limit`` chunks, best first, none below ``score_threshold``."""
        ...
