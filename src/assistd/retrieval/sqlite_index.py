"""The SQLite ``ChunkIndex``: FTS5 for keywords, in-memory float32 matrices for vectors.

SQLite has no vector search, and decoding 100k BLOBs per query would take seconds, so
each store's vectors are kept in memory as one matrix (100k x 384 float32 is 150 MB),
loaded on the first search and searched with one matrix product and ``argpartition`` in a
worker thread (about 10 ms for 100k chunks).

A loaded matrix is tagged with the store's row in ``chunk_generations``, which ``add`` and
``delete`` bump in the writer's own transaction. A search reads the generation in its own
snapshot and reloads when it differs, so a matrix can never be older than what the
search's transaction sees, even when a load races a write that has not committed yet.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from assistd.retrieval.index import Vectors
from assistd.retrieval.search import (
    DF_CAP,
    HybridChunkIndex,
    KeywordResult,
    Ranked,
    idf,
    pack,
    query_terms,
)
from assistd.store import chunk_index_sqlite as fts
from assistd.store import chunks as stored
from assistd.store.database import Connection


@dataclass
class _Matrix:
    generation: int
    ids: npt.NDArray[np.int64]
    file_codes: npt.NDArray[np.int32]
    files: list[str]
    vectors: Vectors


class SqliteChunkIndex(HybridChunkIndex):
    """``max_bytes`` bounds the matrices kept in memory; the least recently searched
    stores are dropped first (and reloaded from the BLOBs when searched again)."""

    def __init__(self, *, max_bytes: int = 2 << 30) -> None:
        self.max_bytes = max_bytes
        self._matrices: OrderedDict[str, _Matrix] = OrderedDict()
        self._locks: dict[str, asyncio.Lock] = {}

    def _column_values(self, vectors: Vectors) -> Sequence[object]:
        return pack(vectors)

    def _forget(self, vector_store_id: str) -> None:
        self._matrices.pop(vector_store_id, None)

    async def keyword(
        self,
        conn: Connection,
        vector_store_id: str,
        text: str,
        file_ids: set[str] | None,
        limit: int,
    ) -> KeywordResult:
        terms = query_terms(text)
        if not terms:
            return KeywordResult([], {})
        # Each term's chunks, up to DF_CAP: the count weighs the term, and a rare term's
        # list answers term_hits without asking again.
        holders: dict[str, frozenset[int]] = {}
        for term in terms:
            holders[term] = await fts.holders(conn, vector_store_id, term, DF_CAP)
        present = [term for term in terms if holders[term]]
        if not present:
            return KeywordResult([], {})
        # The store's matrix counts its chunks in this snapshot; COUNT(*) scans an index.
        size = int((await self._matrix(conn, vector_store_id)).ids.size)
        # Ranking every chunk that holds a common word costs more than all the rest of
        # the search; the rare terms find the chunks worth ranking.
        selective = [term for term in present if len(holders[term]) < DF_CAP]
        selective = selective or sorted(present, key=lambda term: len(holders[term]))[:2]
        ranked = await fts.keyword_ranked(conn, vector_store_id, selective, file_ids, limit)
        # The common terms left out of the ranking are left out of the relevance too.
        counted = [term for term in terms if term in selective or not holders[term]]
        return KeywordResult(
            ranked,
            {term: idf(len(holders[term]), size) for term in counted},
            frozenset(selective),
            {term: found for term, found in holders.items() if 0 < len(found) < DF_CAP},
        )

    async def term_hits(
        self, conn: Connection, vector_store_id: str, terms: Sequence[str], ids: Sequence[int]
    ) -> dict[int, set[str]]:
        return await fts.term_hits(conn, terms, ids)

    async def similarities(
        self, conn: Connection, vector_store_id: str, vectors: Vectors, ids: Sequence[int]
    ) -> dict[int, Vectors]:
        matrix = await self._matrix(conn, vector_store_id)
        wanted = np.asarray(ids, dtype=np.int64)
        at = np.searchsorted(matrix.ids, wanted)  # loaded in id order
        at = np.minimum(at, max(len(matrix.ids) - 1, 0))
        if matrix.ids.size == 0:
            return {}
        found = matrix.ids[at] == wanted
        products = matrix.vectors[at[found]] @ np.asarray(vectors, dtype=np.float32).T
        return {int(cid): row for cid, row in zip(wanted[found], products, strict=True)}

    async def dense(
        self,
        conn: Connection,
        vector_store_id: str,
        vectors: Vectors,
        file_ids: set[str] | None,
        limit: int,
    ) -> list[Ranked]:
        matrix = await self._matrix(conn, vector_store_id)
        if matrix.ids.size == 0:
            return [[] for _ in range(len(vectors))]
        if matrix.vectors.shape[1] != vectors.shape[1]:
            raise ValueError(
                f"vector store {vector_store_id} holds {matrix.vectors.shape[1]}-dimensional "
                f"vectors; the query has {vectors.shape[1]}"
            )
        return await asyncio.to_thread(_nearest, matrix, vectors, file_ids, limit)

    async def _generation(self, conn: Connection, vector_store_id: str) -> int:
        return await stored.generation(conn, vector_store_id)

    async def _matrix(self, conn: Connection, vector_store_id: str) -> _Matrix:
        generation = await self._generation(conn, vector_store_id)
        cached = self._matrices.get(vector_store_id)
        if cached is not None and cached.generation == generation:
            self._matrices.move_to_end(vector_store_id)
            return cached
        lock = self._locks.setdefault(vector_store_id, asyncio.Lock())
        async with lock:
            cached = self._matrices.get(vector_store_id)
            if cached is not None and cached.generation == generation:
                return cached
            matrix = await self._load(conn, vector_store_id, generation)
            # Keep the newest: a search on an older snapshot must not evict a newer load.
            current = self._matrices.get(vector_store_id)
            if current is None or current.generation <= generation:
                self._matrices[vector_store_id] = matrix
                self._evict(keep=vector_store_id)
            return matrix

    def _evict(self, keep: str) -> None:
        total = sum(m.vectors.nbytes for m in self._matrices.values())
        for store in list(self._matrices):
            if total <= self.max_bytes:
                break
            if store != keep:
                total -= self._matrices.pop(store).vectors.nbytes

    async def _load(self, conn: Connection, vector_store_id: str, generation: int) -> _Matrix:
        rows = await fts.embeddings(conn, vector_store_id)
        return await asyncio.to_thread(_build, generation, rows)


def _build(generation: int, rows: Sequence[tuple[int, str, bytes]]) -> _Matrix:
    files: dict[str, int] = {}
    codes = np.fromiter((files.setdefault(row[1], len(files)) for row in rows), dtype=np.int32)
    ids = np.fromiter((row[0] for row in rows), dtype=np.int64, count=len(rows))
    if not rows:
        vectors = np.zeros((0, 0), dtype=np.float32)
    else:
        width = len(rows[0][2]) // 4
        data = b"".join(row[2] for row in rows)
        vectors = np.frombuffer(data, dtype="<f4").reshape(len(rows), width)
        vectors = vectors.astype(np.float32, copy=False)
    return _Matrix(generation, ids, codes, list(files), vectors)


def _nearest(
    matrix: _Matrix, queries: Vectors, file_ids: set[str] | None, limit: int
) -> list[Ranked]:
    scores = matrix.vectors @ np.asarray(queries, dtype=np.float32).T  # (chunks, queries)
    if file_ids is not None:
        allowed = np.fromiter((name in file_ids for name in matrix.files), dtype=bool)
        keep = allowed[matrix.file_codes]
        scores = np.where(keep[:, None], scores, -np.inf)
        available = int(keep.sum())
    else:
        available = len(matrix.ids)
    take = min(limit, available)
    found: list[Ranked] = []
    for column in scores.T:
        if take == 0:
            found.append([])
            continue
        top = (
            np.argpartition(-column, take - 1)[:take]
            if take < len(column)
            else np.arange(len(column))
        )
        top = top[np.argsort(-column[top], kind="stable")]
        found.append([(int(matrix.ids[i]), float(column[i])) for i in top])
    return found
