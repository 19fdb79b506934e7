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
import json
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

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
from assistd.store.tables import chunk_generations
from assistd.store.tables import chunks as chunks_table

_ROWIDS = sa.text("SELECT rowid FROM chunks_fts WHERE chunks_fts MATCH :match LIMIT :cap")
_HELD = sa.text(
    "SELECT j.value FROM json_each(:ids) AS j CROSS JOIN chunks_fts "
    "WHERE chunks_fts.rowid = j.value AND chunks_fts MATCH :match"
)
_KEYWORD = sa.text(
    "SELECT c.id, -bm25(chunks_fts, 1.0, 0.0) AS score "
    "FROM chunks_fts JOIN chunks AS c ON c.id = chunks_fts.rowid "
    "WHERE chunks_fts MATCH :match "
    "AND (:files IS NULL OR c.file_id IN (SELECT value FROM json_each(:files))) "
    "ORDER BY bm25(chunks_fts, 1.0, 0.0) LIMIT :limit"
)


@dataclass
class _Matrix:
    generation: int
    ids: npt.NDArray[np.int64]
    file_codes: npt.NDArray[np.int32]
    files: list[str]
    vectors: Vectors


def fts_query(vector_store_id: str, terms: Sequence[str]) -> str:
    """An FTS5 MATCH expression: any of ``terms`` (from ``query_terms``), within one store.

    Each term is a quoted string, so nothing the user typed is read as FTS5 syntax; a
    quoted "XK-4471" is the phrase of its tokens, which is how the text was indexed.
    """
    phrases = " OR ".join(_phrase(term) for term in terms)
    return f'vector_store_id : "{vector_store_id}" AND text : ({phrases})'


def _phrase(term: str) -> str:
    return '"' + term.replace('"', '""') + '"'


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
        conn: AsyncConnection,
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
            params = {"match": fts_query(vector_store_id, [term]), "cap": DF_CAP}
            holders[term] = frozenset(int(row[0]) for row in await conn.execute(_ROWIDS, params))
        present = [term for term in terms if holders[term]]
        if not present:
            return KeywordResult([], {})
        # The store's matrix counts its chunks in this snapshot; COUNT(*) scans an index.
        size = int((await self._matrix(conn, vector_store_id)).ids.size)
        # Ranking every chunk that holds a common word costs more than all the rest of
        # the search; the rare terms find the chunks worth ranking.
        selective = [term for term in present if len(holders[term]) < DF_CAP]
        selective = selective or sorted(present, key=lambda term: len(holders[term]))[:2]
        files = None if file_ids is None else json.dumps(sorted(file_ids))
        match = fts_query(vector_store_id, selective)
        result = await conn.execute(_KEYWORD, {"match": match, "files": files, "limit": limit})
        # The common terms left out of the ranking are left out of the relevance too.
        counted = [term for term in terms if term in selective or not holders[term]]
        return KeywordResult(
            [(int(row.id), float(row.score)) for row in result],
            {term: idf(len(holders[term]), size) for term in counted},
            frozenset(selective),
            {term: found for term, found in holders.items() if 0 < len(found) < DF_CAP},
        )

    async def term_hits(
        self, conn: AsyncConnection, vector_store_id: str, terms: Sequence[str], ids: Sequence[int]
    ) -> dict[int, set[str]]:
        held: dict[int, set[str]] = {}
        chosen = json.dumps(sorted(ids))
        for term in terms:
            # Each chosen chunk looked up in the term's doclist (CROSS JOIN keeps the chosen
            # ids outermost); the store is implied by the ids.
            params = {"match": f"text : ({_phrase(term)})", "ids": chosen}
            for row in await conn.execute(_HELD, params):
                held.setdefault(int(row[0]), set()).add(term)
        return held

    async def similarities(
        self, conn: AsyncConnection, vector_store_id: str, vectors: Vectors, ids: Sequence[int]
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
        conn: AsyncConnection,
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

    async def _generation(self, conn: AsyncConnection, vector_store_id: str) -> int:
        value = await conn.scalar(
            sa.select(chunk_generations.c.generation).where(
                chunk_generations.c.vector_store_id == vector_store_id
            )
        )
        return int(value or 0)

    async def _matrix(self, conn: AsyncConnection, vector_store_id: str) -> _Matrix:
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

    async def _load(self, conn: AsyncConnection, vector_store_id: str, generation: int) -> _Matrix:
        table = chunks_table
        result = await conn.execute(
            sa.select(table.c.id, table.c.file_id, table.c.embedding)
            .where(table.c.vector_store_id == vector_store_id)
            .order_by(table.c.id)
        )
        rows: list[tuple[int, str, bytes]] = [tuple(row) for row in result]
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
